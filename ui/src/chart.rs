//! Charts as SVG, drawn here so every page reads without JavaScript and nothing is fetched from
//! elsewhere: a line chart (fire lag p50 and p99 per minute) and stacked daily bars (a task's
//! runs per day by outcome). Each chart is a `<figure>` with a caption and a `<title>` per
//! point or bar, and the page shows the same numbers in a table beside it.
//!
//! Hand-written rather than a plotting crate: two chart kinds, a few dozen lines each, with
//! colours from the stylesheet's classes (so dark mode follows) and sizes from CSS.

use std::fmt::Write as _;

/// One series of a line chart: a CSS class and (x label, value) points.
pub struct Series<'a> {
    pub class: &'a str,
    pub label: &'a str,
    pub points: Vec<(String, f64)>,
}

const W: f64 = 640.0;
const H: f64 = 180.0;
const LEFT: f64 = 46.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 8.0;

/// A line chart of `series` over the same x positions, y from 0 to the largest value.
pub fn lines(id: &str, title: &str, unit: &str, series: &[Series<'_>]) -> String {
    let n = series.iter().map(|s| s.points.len()).max().unwrap_or(0);
    let y_max = nice_max(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0, f64::max));
    let mut svg = open(id, title);
    axes(&mut svg, y_max, unit);
    let x_of = |i: usize| LEFT + (W - LEFT - 8.0) * if n > 1 { i as f64 / (n - 1) as f64 } else { 0.5 };
    let y_of = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - v / y_max);
    for s in series {
        let pts: Vec<String> =
            s.points.iter().enumerate().map(|(i, (_, v))| format!("{:.1},{:.1}", x_of(i), y_of(*v))).collect();
        let _ = write!(
            svg,
            r#"<polyline class="{}" points="{}"><title>{}</title></polyline>"#,
            s.class,
            pts.join(" "),
            esc(s.label)
        );
        for (i, (x, v)) in s.points.iter().enumerate() {
            let _ = write!(
                svg,
                r#"<circle class="{}" cx="{:.1}" cy="{:.1}" r="2"><title>{} {}: {} {unit}</title></circle>"#,
                s.class,
                x_of(i),
                y_of(*v),
                esc(s.label),
                esc(x),
                v
            );
        }
    }
    if let Some(first) = series.first() {
        for (i, (x, _)) in first.points.iter().enumerate() {
            if i == 0 || i + 1 == n || (n > 6 && i % (n / 4).max(1) == 0 && i + (n / 8).max(1) < n) {
                let _ =
                    write!(svg, r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#, x_of(i), H - 6.0, esc(x));
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// One bar of a stacked bar chart: its x label and (CSS class, label, value) parts.
pub struct Bar<'a> {
    pub label: String,
    pub parts: Vec<(&'a str, &'a str, f64)>,
}

/// Stacked bars, y from 0 to the tallest bar.
pub fn bars(id: &str, title: &str, bars: &[Bar<'_>]) -> String {
    let y_max = nice_max(bars.iter().map(|b| b.parts.iter().map(|p| p.2).sum::<f64>()).fold(0.0, f64::max));
    let mut svg = open(id, title);
    axes(&mut svg, y_max, "");
    let n = bars.len().max(1) as f64;
    let slot = (W - LEFT - 8.0) / n;
    let width = (slot * 0.8).max(1.0);
    for (i, b) in bars.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - width) / 2.0;
        let mut y = H - BOTTOM;
        let total: f64 = b.parts.iter().map(|p| p.2).sum();
        let detail: Vec<String> = b.parts.iter().map(|(_, l, v)| format!("{l} {v}")).collect();
        let _ = write!(svg, "<g><title>{}: {}</title>", esc(&b.label), esc(&detail.join(", ")));
        for (class, _, v) in &b.parts {
            let h = (H - TOP - BOTTOM) * v / y_max;
            y -= h;
            if h > 0.0 {
                let _ =
                    write!(svg, r#"<rect class="{class}" x="{x:.1}" y="{y:.1}" width="{width:.1}" height="{h:.1}"/>"#);
            }
        }
        if total == 0.0 {
            let _ = write!(
                svg,
                r#"<rect class="grid" x="{x:.1}" y="{:.1}" width="{width:.1}" height="1"/>"#,
                H - BOTTOM - 1.0
            );
        }
        svg.push_str("</g>");
        let every = (bars.len() / 6).max(1);
        if i % every == 0 || i + 1 == bars.len() {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x + width / 2.0,
                H - 6.0,
                esc(&b.label)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn open(id: &str, title: &str) -> String {
    format!(
        r#"<svg id="{id}" class="chart" viewBox="0 0 {W} {H}" role="img" aria-labelledby="{id}-title" xmlns="http://www.w3.org/2000/svg"><title id="{id}-title">{}</title>"#,
        esc(title)
    )
}

fn axes(svg: &mut String, y_max: f64, unit: &str) {
    for k in 0..=4 {
        let v = y_max * k as f64 / 4.0;
        let y = TOP + (H - TOP - BOTTOM) * (1.0 - k as f64 / 4.0);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text x="{}" y="{:.1}" text-anchor="end">{}{}</text>"#,
            W - 8.0,
            LEFT - 4.0,
            y + 4.0,
            short(v),
            if k == 4 { unit } else { "" }
        );
    }
}

/// The axis top: 1, 2 or 5 × a power of ten, at least the largest value (and at least 1).
fn nice_max(v: f64) -> f64 {
    if v <= 1.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * p).find(|c| *c >= v).unwrap_or(10.0 * p)
}

fn short(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.1}M", v / 1_000_000.0)
    } else if v >= 1_000.0 {
        format!("{:.1}k", v / 1_000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round_and_cover_the_data() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(42.0), 50.0);
        assert_eq!(nice_max(100.0), 100.0);
        assert_eq!(nice_max(101.0), 200.0);
    }

    #[test]
    fn a_chart_is_one_svg_with_a_title_per_point() {
        let s = lines(
            "c",
            "Lag <ms>",
            "ms",
            &[Series { class: "p50", label: "p50", points: vec![("a".into(), 1.0), ("b".into(), 3.0)] }],
        );
        assert!(s.starts_with("<svg id=\"c\"") && s.ends_with("</svg>"));
        assert!(s.contains("Lag &lt;ms&gt;"));
        assert_eq!(s.matches("<circle").count(), 2);
        let b = bars(
            "d",
            "Runs",
            &[Bar { label: "12-01".into(), parts: vec![("ok", "success", 2.0), ("bad", "failed", 1.0)] }],
        );
        assert_eq!(b.matches("<rect class=\"ok\"").count(), 1);
        assert!(b.contains("success 2, failed 1"));
    }
}

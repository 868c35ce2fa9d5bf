//! A real browser for the console's tests: Debian's headless Chromium, driven through
//! chromedriver with `fantoccini`, plus the few helpers every page test needs (open a page, wait
//! for an element or a text with a deadline, take a screenshot of the whole page at a width, post
//! a forged form).
//!
//! # Why it looks this way
//!
//! - **Debian's packages, found where Debian puts them.** `/usr/bin/chromedriver` (package
//!   `chromium-driver`) and `/usr/bin/chromium` (package `chromium`); `.ci/run` installs them.
//!   Nothing is downloaded at run time. When either is missing, [`Browser::start`] panics naming
//!   the packages: a browser test never passes without a browser.
//! - **Port 0, then a poll.** chromedriver takes a port, not a socket, so the kit binds
//!   `127.0.0.1:0` to learn a free port, releases it and passes `--port=N`; it is ready when
//!   `GET /status` says so (polled with a deadline, never a bare sleep). If the port was taken in
//!   between, chromedriver exits and the kit tries another.
//! - **A fixed time zone.** The console localizes `<time>` elements in the browser's zone, so
//!   chromedriver (and the Chromium it starts) runs with `TZ=America/New_York`: a test can tell a
//!   localized time from a UTC one, and a screenshot reads the same on every machine.
//! - **Its own process group and profile.** chromedriver starts Chromium and its helpers; all of
//!   them share the process group the kit creates, so dropping the [`Browser`] kills exactly
//!   those processes (`kill(-pgid)`), and the throw-away profile directory goes with it.
//! - **rustls only**: fantoccini's `rustls-tls` feature (no OpenSSL, as everywhere in this
//!   repository); the driver itself is plain HTTP on loopback.
//! - **Screenshots are files in the repository.** [`Browser::screenshot`] writes
//!   `docs/ui/<name>-<width>.png` under the workspace root, the whole page tall, so the docs show
//!   what the tests saw.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// Where Debian's `chromium-driver` puts the driver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Where Debian's `chromium` puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The browser's time zone (pages localize times in it).
pub const TIME_ZONE: &str = "America/New_York";
/// The window the browser opens with (the wide screenshot's width).
pub const WIDE: u32 = 1440;
/// The narrow screenshot's width (a small phone).
pub const NARROW: u32 = 375;
/// How long [`Browser::wait_for`] and [`Browser::wait_text`] wait by default.
pub const PATIENCE: Duration = Duration::from_secs(20);
/// The tallest screenshot taken (a page longer than this is cut, and the cut is logged).
const TALLEST: u32 = 12_000;
/// How long chromedriver may take to answer `/status` as ready.
const DRIVER_START: Duration = Duration::from_secs(30);
/// How often a condition is checked.
const POLL: Duration = Duration::from_millis(100);

/// One chromedriver with one headless Chromium session. Dropping it kills both.
pub struct Browser {
    /// The WebDriver session, for whatever the helpers do not cover.
    pub client: Client,
    /// How long the waiting helpers wait.
    pub patience: Duration,
    driver: Child,
    /// The driver's URL (`http://127.0.0.1:N`).
    driver_url: String,
    /// The driver's log and Chromium's profile; removed on drop.
    scratch: tempfile::TempDir,
}

/// Panics unless both Debian packages are installed.
fn require_packages() {
    for (path, package) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
        if !Path::new(path).exists() {
            panic!(
                "{path} is missing: the browser tests need Debian's packages `chromium` and `chromium-driver` \
                 (apt-get install chromium chromium-driver; .ci/run installs them); missing package: {package}"
            );
        }
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session 1440 × 900 in [`TIME_ZONE`].
    pub async fn start() -> Browser {
        require_packages();
        let scratch = tempfile::tempdir().expect("temp dir for the browser");
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log = scratch.path().join(format!("chromedriver-{port}.log"));
            let mut driver = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .env("TZ", TIME_ZONE)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start {CHROMEDRIVER} ({e}); the browser tests need Debian's packages `chromium` and `chromium-driver`")
                });
            let driver_url = format!("http://127.0.0.1:{port}");
            match wait_driver_ready(&driver_url, &mut driver).await {
                Ok(()) => {
                    let client = match new_session(&driver_url, scratch.path()).await {
                        Ok(c) => c,
                        Err(e) => {
                            kill_group(&mut driver);
                            let log = std::fs::read_to_string(&log).unwrap_or_default();
                            let tail: String = log.lines().rev().take(30).collect::<Vec<_>>().join("\n");
                            panic!("chromedriver could not start Chromium ({CHROMIUM}, package `chromium`): {e}\nlast driver log lines (newest first):\n{tail}");
                        }
                    };
                    return Browser { client, patience: PATIENCE, driver, driver_url, scratch };
                }
                Err(e) => {
                    kill_group(&mut driver);
                    last = e;
                }
            }
        }
        panic!("chromedriver did not become ready on three ports: {last}");
    }

    /// The driver's URL (for a test that wants to talk WebDriver itself).
    pub fn driver_url(&self) -> &str {
        &self.driver_url
    }

    /// Opens `url` and waits until the document has loaded.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
        self.wait_loaded().await;
    }

    /// Waits until `document.readyState` is `complete` (after a navigation a click started).
    pub async fn wait_loaded(&self) {
        self.until("the document to load", || async {
            let state = self.client.execute("return document.readyState", vec![]).await.ok()?;
            (state == "complete").then_some(())
        })
        .await
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.client.current_url().await.expect("current url").to_string()
    }

    /// The current URL's path (`/tasks/3`).
    pub async fn path(&self) -> String {
        self.client.current_url().await.expect("current url").path().to_string()
    }

    /// Waits until the current path satisfies `want`; returns it.
    pub async fn wait_path(&self, what: &str, want: impl Fn(&str) -> bool) -> String {
        self.until(&format!("the page's path to be {what}"), || async {
            let url = self.client.current_url().await.ok()?;
            want(url.path()).then(|| url.path().to_string())
        })
        .await
    }

    /// Polls `check` every 100 ms until it returns `Some`, or panics after [`Browser::patience`]
    /// naming `what`, the page's URL and the start of its text.
    pub async fn until<T, F, Fut>(&self, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        self.until_within(what, self.patience, check).await
    }

    /// [`Browser::until`] with its own deadline.
    pub async fn until_within<T, F, Fut>(&self, what: &str, limit: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if Instant::now() >= deadline {
                let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
                let text = self.body_text().await;
                let text: String = text.chars().take(1_500).collect();
                panic!("timed out after {limit:?} waiting for {what}\npage: {url}\ntext: {text}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The page's visible text (empty if it cannot be read).
    pub async fn body_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(b) => b.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until an element matches `css`; returns the first.
    pub async fn wait_for(&self, css: &str) -> Element {
        self.until(&format!("an element `{css}`"), || async { self.client.find(Locator::Css(css)).await.ok() }).await
    }

    /// Waits until no element matches `css`.
    pub async fn wait_gone(&self, css: &str) {
        self.until(&format!("no element `{css}`"), || async { (!self.exists(css).await).then_some(()) }).await
    }

    /// Waits until the first element matching `css` has a text `pred` accepts; returns the text.
    pub async fn wait_text(&self, css: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_text_within(css, self.patience, pred).await
    }

    /// [`Browser::wait_text`] with its own deadline.
    pub async fn wait_text_within(&self, css: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let what = format!("the text of `{css}` to be as wanted");
        self.until_within(&what, limit, || async {
            let text = self.client.find(Locator::Css(css)).await.ok()?.text().await.ok()?;
            pred(&text).then_some(text)
        })
        .await
    }

    /// Waits until the number of elements matching `css` satisfies `pred`; returns it.
    pub async fn wait_count(&self, css: &str, what: &str, pred: impl Fn(usize) -> bool) -> usize {
        self.until(&format!("the number of `{css}` to be {what}"), || async {
            let n = self.count(css).await;
            pred(n).then_some(n)
        })
        .await
    }

    /// Whether an element matches `css` now.
    pub async fn exists(&self, css: &str) -> bool {
        self.count(css).await > 0
    }

    /// How many elements match `css` now.
    pub async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.map(|v| v.len()).unwrap_or(0)
    }

    /// The texts of every element matching `css` now, in document order.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.client.find_all(Locator::Css(css)).await.unwrap_or_default() {
            out.push(e.text().await.unwrap_or_default());
        }
        out
    }

    /// The attribute `name` of every element matching `css` now.
    pub async fn attrs(&self, css: &str, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.client.find_all(Locator::Css(css)).await.unwrap_or_default() {
            if let Ok(Some(v)) = e.attr(name).await {
                out.push(v);
            }
        }
        out
    }

    /// Replaces the value of the input or textarea `css` with `text`, typed as keys (so the
    /// page's input handlers run).
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.wait_for(css).await;
        e.clear().await.unwrap_or_else(|err| panic!("clear `{css}`: {err}"));
        e.send_keys(text).await.unwrap_or_else(|err| panic!("type into `{css}`: {err}"));
    }

    /// Sets the value of an input or textarea directly (no key events), then fires `input` and
    /// `change`: for long texts (JSON parameters) that typing would make slow.
    pub async fn set_value(&self, css: &str, value: &str) {
        self.wait_for(css).await;
        let script = "const e = document.querySelector(arguments[0]); e.value = arguments[1];\
                      e.dispatchEvent(new Event('input', {bubbles: true}));\
                      e.dispatchEvent(new Event('change', {bubbles: true}));";
        self.client
            .execute(script, vec![json!(css), json!(value)])
            .await
            .unwrap_or_else(|e| panic!("set `{css}`: {e}"));
    }

    /// Chooses the option with value `value` in the select `css`.
    pub async fn select(&self, css: &str, value: &str) {
        let e = self.wait_for(css).await;
        e.select_by_value(value).await.unwrap_or_else(|err| panic!("select {value:?} in `{css}`: {err}"));
    }

    /// Clicks the first element matching `css` (waiting for it first).
    pub async fn click(&self, css: &str) {
        let e = self.wait_for(css).await;
        e.click().await.unwrap_or_else(|err| panic!("click `{css}`: {err}"));
    }

    /// Clicks `css`, which submits a form or follows a link, and waits for the next page to load
    /// (a new document: the old `body` is gone).
    pub async fn click_and_wait(&self, css: &str) {
        let marker = "window.__cronraft_old_page";
        self.client.execute(&format!("{marker} = true"), vec![]).await.expect("mark the page");
        self.click(css).await;
        self.until(&format!("a new page after clicking `{css}`"), || async {
            let v = self
                .client
                .execute(&format!("return document.readyState === 'complete' && !{marker}"), vec![])
                .await
                .ok()?;
            (v == Value::Bool(true)).then_some(())
        })
        .await
    }

    /// The value of cookie `name` (HttpOnly ones too: WebDriver sees every cookie).
    pub async fn cookie(&self, name: &str) -> Option<String> {
        self.client.get_named_cookie(name).await.ok().map(|c| c.value().to_string())
    }

    /// Posts `fields` (form-encoded) to `url` from inside the current page with `fetch()`: the
    /// browser sends its own cookies and its own `Origin`, exactly as a form of this page would,
    /// but the fields are whatever the test forges (no `csrf`, a wrong one). Returns the status
    /// (after redirects) and the body.
    pub async fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let fields: Vec<Value> = fields.iter().map(|(k, v)| json!([k, v])).collect();
        let script = "const [url, fields, done] = arguments;\
                      fetch(url, {method: 'POST', body: new URLSearchParams(fields), credentials: 'same-origin'})\
                        .then(r => r.text().then(t => done([r.status, t])))\
                        .catch(e => done([0, String(e)]));";
        let out = self
            .client
            .execute_async(script, vec![json!(url), Value::Array(fields)])
            .await
            .unwrap_or_else(|e| panic!("fetch POST {url}: {e}"));
        let status = out[0].as_u64().unwrap_or(0) as u16;
        (status, out[1].as_str().unwrap_or_default().to_string())
    }

    /// Posts `fields` to `url` from outside the browser (reqwest) with the browser's cookies and
    /// `headers` (e.g. a cross-site `Origin`), following no redirect. Returns the status and body.
    pub async fn post_outside(&self, url: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> (u16, String) {
        let cookies: Vec<String> = self
            .client
            .get_all_cookies()
            .await
            .unwrap_or_default()
            .iter()
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect();
        let http =
            reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let mut req = http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", cookies.join("; "))
            .body(form_encode(fields));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Runs `script` in the page and returns its value.
    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// Resizes the window to `width` and the page's full height, and writes what it shows to
    /// `docs/ui/<name>-<width>.png` under the workspace root; returns the path. The window goes
    /// back to 1440 × 900 afterwards.
    pub async fn screenshot(&self, name: &str, width: u32) -> PathBuf {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("create docs/ui");
        let path = dir.join(format!("{name}-{width}.png"));
        self.resize_viewport(width, 900).await;
        // The page's height at this width (it reflows when the width changes).
        let height =
            self.js("return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)").await;
        let mut height = height.as_u64().unwrap_or(900) as u32;
        if height > TALLEST {
            eprintln!("screenshot {name}-{width}: the page is {height} px tall; cut at {TALLEST}");
            height = TALLEST;
        }
        self.resize_viewport(width, height.max(200)).await;
        let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self.resize_viewport(WIDE, 900).await;
        path
    }

    /// Makes the page's viewport `width` × `height` CSS pixels. Chromium's windows are at least
    /// 500 px wide, so the size is set with the DevTools protocol's device metrics override (what
    /// DevTools' device toolbar does), which the screenshot then captures whole.
    pub async fn resize_viewport(&self, width: u32, height: u32) {
        let params = json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false});
        self.cdp("Emulation.setDeviceMetricsOverride", params).await;
        let got = self.js("return window.innerWidth").await.as_u64().unwrap_or(0) as u32;
        assert_eq!(got, width, "the browser would not make its viewport {width} px wide");
    }

    /// Sends a DevTools protocol command through chromedriver (`goog/cdp/execute`); returns its
    /// result.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        let session = self.client.session_id().await.ok().flatten().expect("a WebDriver session");
        let url = format!("{}/session/{session}/goog/cdp/execute", self.driver_url);
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().expect("client");
        let resp = http
            .post(&url)
            .json(&json!({"cmd": cmd, "params": params}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{cmd}: {e}"));
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or_default();
        assert!(status.is_success(), "{cmd} answered {status}: {body}");
        body["value"].clone()
    }

    /// Ends the WebDriver session politely (Chromium exits), then the driver is killed on drop.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
        // The profile directory goes with `scratch`.
        let _ = &self.scratch;
    }
}

/// `docs/ui` under the workspace root (this crate is `<root>/testkit`).
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").join("docs/ui")
}

/// Kills the driver's process group (the driver, Chromium and its helpers) and reaps the driver.
fn kill_group(driver: &mut Child) {
    let pid = driver.id() as i32;
    // SAFETY: kill(2) with a negative pid signals that process group: the one created for this
    // driver (`process_group(0)`), whose id is the driver's pid.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let _ = driver.kill();
    let _ = driver.wait();
}

/// Polls the driver's `/status` until it says `ready`; `Err` if the driver exits or time is up.
async fn wait_driver_ready(url: &str, driver: &mut Child) -> Result<(), String> {
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build().expect("client");
    let deadline = Instant::now() + DRIVER_START;
    loop {
        if let Ok(Some(status)) = driver.try_wait() {
            return Err(format!("chromedriver exited with {status} (port taken?)"));
        }
        if let Ok(resp) = http.get(format!("{url}/status")).send().await {
            if let Ok(v) = resp.json::<Value>().await {
                if v["value"]["ready"] == Value::Bool(true) {
                    return Ok(());
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("chromedriver at {url} not ready within {DRIVER_START:?}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A new headless session: Chromium with a profile in `scratch`, 1440 × 900.
async fn new_session(driver_url: &str, scratch: &Path) -> Result<Client, String> {
    let profile = scratch.join("profile");
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                format!("--window-size={WIDE},900"),
                format!("--user-data-dir={}", profile.display()),
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
            ],
        },
    });
    let caps = match caps {
        Value::Object(m) => m,
        _ => unreachable!("an object"),
    };
    let mut builder = ClientBuilder::rustls().map_err(|e| format!("rustls: {e}"))?;
    builder.capabilities(caps);
    builder.connect(driver_url).await.map_err(|e| e.to_string())
}

/// `application/x-www-form-urlencoded` of `fields`.
pub fn form_encode(fields: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(b as char),
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
    fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

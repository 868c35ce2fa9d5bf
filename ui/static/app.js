// cronraft console: the little JavaScript the pages use. Every page works without it.
// - <time datetime> elements show the browser's zone (UTC stays in the title, on hover);
// - main[data-refresh-ms] reloads the page's main part while visible, keeping the query
//   string, and stops when the new page no longer asks for it (an execution that ended);
// - the task form's schedule preview follows what is typed;
// - forms with data-confirm ask first; the error summary takes focus.
"use strict";
(function () {
  function localize(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      el.textContent = d.toLocaleString(undefined, {
        year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit",
        second: "2-digit", timeZoneName: "short"
      });
    });
  }

  function refresh() {
    var main = document.getElementById("main");
    var every = main && parseInt(main.getAttribute("data-refresh-ms"), 10);
    if (!every) return;
    setTimeout(function tick() {
      if (document.hidden || (document.activeElement && main.contains(document.activeElement) &&
          /INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName))) {
        setTimeout(tick, every);
        return;
      }
      fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (text) {
          var doc = new DOMParser().parseFromString(text, "text/html");
          var next = doc.getElementById("main");
          if (!next) return;
          main.innerHTML = next.innerHTML;
          var banner = document.getElementById("node-banner"), fresh = doc.getElementById("node-banner");
          if (banner && fresh) banner.textContent = fresh.textContent;
          localize(main);
          var again = next.getAttribute("data-refresh-ms");
          if (again) { main.setAttribute("data-refresh-ms", again); setTimeout(tick, every); }
          else { main.removeAttribute("data-refresh-ms"); }
        })
        .catch(function () { setTimeout(tick, every * 2); });
    }, every);
  }

  function preview() {
    var box = document.getElementById("preview");
    var cron = document.getElementById("cron_expression");
    if (!box || !cron) return;
    var tz = document.getElementById("timezone");
    var dst = document.getElementById("dst_policy");
    var timer = null, seq = 0;
    function update() {
      var q = "cron_expression=" + encodeURIComponent(cron.value) +
        "&timezone=" + encodeURIComponent(tz ? tz.value : "UTC") +
        "&dst_policy=" + encodeURIComponent(dst ? dst.value : "shift");
      var mine = ++seq;
      fetch("/ui/preview?" + q, { credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (html) { if (mine === seq) { box.innerHTML = html; localize(box); } });
    }
    if (cron.value.trim()) update();
    [cron, tz, dst].forEach(function (el) {
      if (!el) return;
      el.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(update, 250); });
      el.addEventListener("change", update);
    });
  }

  document.addEventListener("submit", function (ev) {
    var msg = ev.target.getAttribute && ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", function () {
    localize(document);
    refresh();
    preview();
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); document.title = "Error: " + document.title.replace(/^Error: /, ""); }
  });
})();

// pushspec HTML report: filters, search and the case panel. Report text
// (reasons, transcripts) comes from the target under test and is hostile:
// it is only ever set with textContent, never parsed as HTML.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("pushspec-data").textContent);
  var table = document.getElementById("matrix");
  var bodies = Array.prototype.slice.call(table.tBodies);
  var rows = Array.prototype.slice.call(table.querySelectorAll("tr[data-id]"));
  var boxes = Array.prototype.slice.call(document.querySelectorAll("input[name=outcome]"));
  var family = document.getElementById("family");
  var search = document.getElementById("search");
  var shown = document.getElementById("shown");
  var detail = document.getElementById("detail");
  var lastFocus = null;

  function apply() {
    var on = {};
    boxes.forEach(function (b) { if (b.checked) { on[b.value] = true; } });
    var fam = family.value;
    var q = search.value.trim().toLowerCase();
    var count = 0;
    bodies.forEach(function (tb) {
      var any = 0;
      var famOk = !fam || tb.getAttribute("data-family") === fam;
      Array.prototype.forEach.call(tb.querySelectorAll("tr[data-id]"), function (tr) {
        var ok = famOk &&
          (!q || tr.getAttribute("data-id").toLowerCase().indexOf(q) >= 0) &&
          tr.getAttribute("data-o").split(" ").some(function (o) { return on[o]; });
        tr.hidden = !ok;
        if (ok) { any++; }
      });
      tb.hidden = any === 0;
      count += any;
    });
    shown.textContent = count + " of " + rows.length + " cases shown";
    return count;
  }

  function field(dl, name, value) {
    if (value === null || value === undefined || value === "") { return; }
    var dt = document.createElement("dt");
    dt.textContent = name;
    var dd = document.createElement("dd");
    dd.textContent = String(value);
    dl.appendChild(dt);
    dl.appendChild(dd);
  }

  function transcript(entries) {
    var arrow = { out: "->", "in": "<-", note: "--" };
    return entries.map(function (e) {
      var at = (e[0] / 1000).toFixed(3) + "ms";
      var pad = "            ".slice(0, Math.max(0, 12 - at.length));
      var lines = String(e[2]).split("\n");
      var head = pad + at + " " + (arrow[e[1]] || "??") + " " + lines[0];
      return [head].concat(lines.slice(1).map(function (l) { return "                " + l; })).join("\n");
    }).join("\n");
  }

  function open(r, c) {
    var row = data.rows[r];
    var cell = row && row.cells[c];
    if (!cell) { return false; }
    document.getElementById("d-title").textContent = cell.title || row.id;
    var dl = document.getElementById("d-fields");
    dl.textContent = "";
    field(dl, "case", row.id);
    field(dl, "target", data.columns[c]);
    field(dl, "outcome", cell.outcome + (cell.flaky ? " (flaky: failed, then passed alone)" : ""));
    field(dl, "spec section", cell.spec);
    field(dl, "level", cell.level);
    field(dl, "requirement", cell.requirement);
    field(dl, "reason", cell.reason);
    field(dl, "expected", cell.expected);
    field(dl, "actual", cell.actual);
    field(dl, "duration", cell.duration_ms + " ms");
    if (cell.first_attempt) {
      field(dl, "first attempt", cell.first_attempt.outcome + ": " + cell.first_attempt.reason);
    }
    var pre = document.getElementById("d-transcript");
    var t = cell.transcript || [];
    pre.textContent = t.length ? transcript(t) : cell.outcome === "pass"
      ? "(none: the JSON report keeps the transcripts of cases that did not pass)"
      : "(none recorded)";
    lastFocus = document.activeElement;
    detail.hidden = false;
    document.getElementById("d-close").focus();
    return true;
  }

  function close() {
    detail.hidden = true;
    if (lastFocus && lastFocus.focus) { lastFocus.focus(); }
  }

  table.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("button[data-r]") : null;
    if (b) { open(+b.getAttribute("data-r"), +b.getAttribute("data-c")); }
  });
  document.getElementById("d-close").addEventListener("click", close);
  detail.addEventListener("click", function (ev) { if (ev.target === detail) { close(); } });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape" && !detail.hidden) { close(); }
  });
  boxes.forEach(function (b) { b.addEventListener("change", apply); });
  family.addEventListener("change", apply);
  search.addEventListener("input", apply);
  document.getElementById("only-problems").addEventListener("click", function () {
    var bad = { fail: 1, error: 1, xpass: 1, "non-strict": 1 };
    boxes.forEach(function (b) { b.checked = !!bad[b.value]; });
    apply();
  });
  document.getElementById("all-outcomes").addEventListener("click", function () {
    boxes.forEach(function (b) { b.checked = true; });
    apply();
  });
  apply();

  // `#selftest`: drives the controls as a user would and writes the
  // verdict into the page, for a headless browser's --dump-dom.
  function selftest() {
    var problems = [];
    var checks = 0;
    function check(ok, what) { checks++; if (!ok) { problems.push(what); } }
    function visible() { return rows.filter(function (tr) { return !tr.hidden && !tr.parentNode.hidden; }); }
    function fire(el, type) { el.dispatchEvent(new Event(type, { bubbles: true })); }

    check(rows.length === data.rows.length, "rows match the data: " + rows.length + " vs " + data.rows.length);
    check(visible().length === rows.length, "everything shown at first");
    boxes.forEach(function (only) {
      boxes.forEach(function (b) { b.checked = b === only; fire(b, "change"); });
      var want = rows.filter(function (tr) { return tr.getAttribute("data-o").split(" ").indexOf(only.value) >= 0; }).length;
      var vis = visible();
      check(vis.length === want && want > 0, "outcome filter " + only.value + ": " + vis.length + " shown, " + want + " expected");
      check(vis.every(function (tr) {
        return Array.prototype.some.call(tr.querySelectorAll("td[data-o]"), function (td) { return td.getAttribute("data-o") === only.value; });
      }),
        "outcome filter " + only.value + " shows only rows with that outcome");
    });
    boxes.forEach(function (b) { b.checked = true; fire(b, "change"); });
    check(visible().length === rows.length, "all outcomes again show every row");

    var fams = Array.prototype.slice.call(family.options).map(function (o) { return o.value; }).filter(Boolean);
    fams.forEach(function (f) {
      family.value = f;
      fire(family, "change");
      var vis = visible();
      check(vis.length > 0 && vis.every(function (tr) { return tr.parentNode.getAttribute("data-family") === f; }),
        "family filter " + f);
    });
    family.value = "";
    fire(family, "change");

    var target = rows[rows.length - 1];
    search.value = target.getAttribute("data-id").toUpperCase();
    fire(search, "input");
    var vis = visible();
    check(vis.indexOf(target) >= 0, "search finds " + target.getAttribute("data-id"));
    check(vis.every(function (tr) { return tr.getAttribute("data-id").indexOf(target.getAttribute("data-id")) >= 0; }), "search shows only matches");
    search.value = "no such case id at all";
    fire(search, "input");
    check(visible().length === 0 && shown.textContent.indexOf("0 of") === 0, "a search matching nothing shows nothing");
    search.value = "";
    fire(search, "input");

    var buttons = Array.prototype.slice.call(table.querySelectorAll("button[data-r]"));
    check(buttons.length > 0, "cells can be opened");
    buttons.forEach(function (b) {
      b.click();
      var cell = data.rows[+b.getAttribute("data-r")].cells[+b.getAttribute("data-c")];
      check(!detail.hidden, "the case panel opens");
      check(document.getElementById("d-title").textContent === (cell.title || data.rows[+b.getAttribute("data-r")].id), "the panel shows the case title");
      check(document.getElementById("d-fields").textContent.indexOf(cell.reason) >= 0, "the panel shows the reason");
      check(detail.querySelectorAll("script, img, iframe, object, svg, a, style").length === 0, "report text stays text");
      document.getElementById("d-close").click();
      check(detail.hidden, "the case panel closes");
    });

    var out = document.createElement("output");
    out.id = "selftest";
    out.setAttribute("data-status", problems.length ? "fail" : "pass");
    out.textContent = problems.length
      ? "selftest: fail: " + problems.join("; ")
      : "selftest: pass (" + checks + " checks)";
    document.body.appendChild(out);
  }
  if (location.hash === "#selftest") { selftest(); }
})();

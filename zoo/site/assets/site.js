/* zoo catalog: table sorting and filtering, plot hover labels.  Plain DOM, no libraries.
   Text from the data is only ever set with textContent (never parsed as HTML). */
(function () {
  "use strict";

  function sortKey(cell, numeric) {
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (raw === "") return null;
    if (!numeric) return raw.toLowerCase();
    var v = parseFloat(raw);
    return isNaN(v) ? null : v;
  }

  function byName(a, b) {
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  }

  function setupSorting(table) {
    var tbody = table.tBodies[0];
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
    headers.forEach(function (th, col) {
      var button = th.querySelector("button");
      if (!button) return;
      button.addEventListener("click", function () {
        var numeric = button.getAttribute("data-type") === "num";
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        headers.forEach(function (h) { h.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var rows = Array.prototype.map.call(tbody.rows, function (row) {
          return { row: row, key: sortKey(row.cells[col], numeric), name: row.getAttribute("data-model") };
        });
        rows.sort(function (a, b) {
          if (a.key === null || b.key === null) {  // rows without a value go last either way
            if (a.key === b.key) return byName(a, b);
            return a.key === null ? 1 : -1;
          }
          var c = a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
          return (ascending ? c : -c) || byName(a, b);
        });
        var frag = document.createDocumentFragment();
        rows.forEach(function (r) { frag.appendChild(r.row); });
        tbody.appendChild(frag);
      });
    });
  }

  function setupFilters(table) {
    var text = document.getElementById("filter-text");
    var selects = {
      family: document.getElementById("filter-family"),
      weights: document.getElementById("filter-weights"),
      dataset: document.getElementById("filter-dataset")
    };
    var count = document.getElementById("shown-count");
    var rows = table.tBodies[0].rows;
    function apply() {
      var terms = text ? text.value.trim().toLowerCase().split(/\s+/).filter(Boolean) : [];
      var visible = {};
      var shown = 0;
      Array.prototype.forEach.call(rows, function (row) {
        var search = row.getAttribute("data-search") || "";
        var ok = terms.every(function (t) { return search.indexOf(t) >= 0; });
        Object.keys(selects).forEach(function (key) {
          var sel = selects[key];
          if (ok && sel && sel.value && row.getAttribute("data-" + key) !== sel.value) ok = false;
        });
        row.hidden = !ok;
        if (ok) { visible[row.getAttribute("data-model")] = true; shown += 1; }
      });
      var points = document.querySelectorAll("svg.plot a.pt-link");
      Array.prototype.forEach.call(points, function (a) {
        a.classList.toggle("filtered-out", !visible[a.getAttribute("data-model")]);
      });
      if (count) count.textContent = shown + " of " + rows.length + " models";
    }
    [text, selects.family, selects.weights, selects.dataset].forEach(function (c) {
      if (!c) return;
      c.addEventListener("input", apply);
      c.addEventListener("change", apply);
    });
    apply();  // a browser may restore form values on "back"
  }

  function setupTooltips() {
    var tip = document.getElementById("tooltip");
    if (!tip) return;
    function place(x, y) {
      var w = tip.offsetWidth, h = tip.offsetHeight;
      var left = Math.min(x + 14, window.innerWidth - w - 8);
      var top = y + 16 + h > window.innerHeight ? y - h - 10 : y + 16;
      tip.style.left = Math.max(4, left) + "px";
      tip.style.top = Math.max(4, top) + "px";
    }
    function show(link, x, y) {
      var pt = link.querySelector(".pt");
      if (!pt) return;
      tip.textContent = pt.getAttribute("data-label");
      tip.hidden = false;
      place(x, y);
    }
    function linkOf(e) {
      return e.target && e.target.closest ? e.target.closest("a.pt-link") : null;
    }
    document.addEventListener("pointerover", function (e) {
      var link = linkOf(e);
      if (link) show(link, e.clientX, e.clientY);
    });
    document.addEventListener("pointermove", function (e) {
      if (!tip.hidden && linkOf(e)) place(e.clientX, e.clientY);
    });
    document.addEventListener("pointerout", function (e) {
      if (linkOf(e)) tip.hidden = true;
    });
    document.addEventListener("focusin", function (e) {
      var link = linkOf(e);
      if (!link) return;
      var box = link.getBoundingClientRect();
      show(link, box.right, box.bottom);
    });
    document.addEventListener("focusout", function (e) {
      if (linkOf(e)) tip.hidden = true;
    });
  }

  function init() {
    var table = document.getElementById("models");
    if (table) {
      setupSorting(table);
      setupFilters(table);
    }
    setupTooltips();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

// cnnshape report page: lays out the data cnnshape wrote below (it recomputes nothing but the
// receptive field's closed form for a chosen unit). Plain DOM, no library, no network.
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("cnnshape-data").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var SVGNS = "http://www.w3.org/2000/svg";

  // ---- formatting
  function si(n) {
    if (n === null || n === undefined) return "";
    var a = Math.abs(n), units = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "K"]];
    for (var i = 0; i < units.length; i++) if (a >= units[i][0]) return (n / units[i][0]).toFixed(2) + " " + units[i][1];
    return String(n);
  }
  function bytes(n) {
    if (n === null || n === undefined) return "";
    var units = [[1099511627776, "TiB"], [1073741824, "GiB"], [1048576, "MiB"], [1024, "KiB"]];
    for (var i = 0; i < units.length; i++) if (Math.abs(n) >= units[i][0]) return (n / units[i][0]).toFixed(2) + " " + units[i][1];
    return n + " B";
  }
  function grouped(n) { return (n === null || n === undefined) ? "" : Number(n).toLocaleString("en-US"); }
  function shape(s) { return s === null || s === undefined ? "" : (s.length ? s.join("×") : "scalar"); }
  function num(v) { return typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v); }
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "cls") e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c !== null) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function kv(rows) {
    var t = el("table", { cls: "kv" });
    rows.forEach(function (r) {
      if (r[1] === null || r[1] === undefined || r[1] === "") return;
      var v = el("td"); if (typeof r[1] === "string") v.textContent = r[1]; else v.appendChild(r[1]);
      t.appendChild(el("tr", null, [el("td", { text: r[0] }), v]));
    });
    return t;
  }
  var lower = !D.totals.complete;  // some op had no formula: MACs/FLOPs are lower bounds
  var LB = lower ? "≥ " : "";

  // ---- the rows: layers in execution order, each module's header before its first row
  var layers = D.layers, byName = {}, modules = D.modules;
  layers.forEach(function (l, i) { l.order = i; byName[l.name] = l; });
  function rfSize(rf) {
    if (!rf) return null;
    if (rf.size === "global") return Infinity;
    if (!Array.isArray(rf.size)) return null;
    var m = 0; rf.size.forEach(function (s) { m = Math.max(m, s === "global" ? Infinity : s); });
    return m;
  }
  function rfText(rf) {
    if (!rf) return "";
    if (!Array.isArray(rf.size)) return rf.size;
    var s = rf.size.map(num);
    return s.every(function (v) { return v === s[0]; }) ? s[0] : s.join("×");
  }
  var lastIn = {};  // module -> its last row (the module's output, for its receptive field)
  layers.forEach(function (l) { l.scopes.forEach(function (p) { lastIn[p] = l; }); });
  function value(item, key) {
    var m = item.isModule;
    switch (key) {
      case "name": return item.name;
      case "type": return item.type;
      case "window": return m ? "" : item.window_text;
      case "output": return item.output_shape ? item.output_shape.reduce(function (a, b) { return a * b; }, 1) : -1;
      case "params": return item.params;
      case "macs": return item.macs;
      case "flops": return item.flops;
      case "memory": return m ? item.activation_bytes : item.output_bytes;
      case "rf": return rfSize(m ? (lastIn[item.name] || {}).rf : item.rf);
    }
  }

  var items = [];  // table order: module headers and layers
  var seen = {};
  layers.forEach(function (l) {
    l.scopes.forEach(function (p) {
      if (!seen[p] && modules[p]) { seen[p] = 1; var m = modules[p]; m.isModule = true; m.scopes = l.scopes.slice(0, l.scopes.indexOf(p)); items.push(m); }
    });
    items.push(l);
  });

  // ---- the table
  var tbody = document.querySelector("#layers tbody");
  function cell(item, key, text, numeric, title) {
    var td = el("td", { cls: key + (numeric ? " num" : ""), "data-key": key });
    var v = value(item, key);
    if (typeof v === "number" && isFinite(v)) td.setAttribute("data-value", String(v));
    td.textContent = text;
    if (title) td.title = title;
    return td;
  }
  items.forEach(function (it) {
    var tr = el("tr", { cls: it.isModule ? "module" : "layer", "data-name": it.name });
    var indent = it.scopes.length;
    var name = el("td", { cls: "name", title: it.name });
    name.style.paddingLeft = (6 + 14 * indent) + "px";
    var tog = el("span", { cls: "toggle", text: it.isModule ? "▾" : "" });
    name.appendChild(tog);
    var leaf = it.scopes.length ? it.name.slice(it.scopes[it.scopes.length - 1].length + 1) : it.name;
    name.appendChild(document.createTextNode(leaf));
    var unsupported = (it.unsupported_ops || []).length;
    if (unsupported) name.appendChild(el("span", { cls: "lb", title: "no formula for " + it.unsupported_ops.join(", ") + ": MACs/FLOPs are a lower bound", text: " ≥" }));
    tr.appendChild(name);
    tr.appendChild(cell(it, "type", it.type, false, it.isModule ? it.nodes + " traced nodes" : it.source));
    tr.appendChild(cell(it, "window", it.isModule ? "" : it.window_text));
    var out = it.output_shape ? shape(it.output_shape) : "";
    if (it.outputs) out = it.outputs.length + " tensors";
    tr.appendChild(cell(it, "output", out, false, it.isModule ? (it.input_shapes || []).map(shape).join(", ") + " → " + out : null));
    tr.appendChild(cell(it, "params", it.params ? si(it.params) : "", true, grouped(it.params) + (it.shared_with ? " (shared with " + it.shared_with + ")" : "")));
    tr.appendChild(cell(it, "macs", it.macs ? si(it.macs) : "", true, grouped(it.macs)));
    tr.appendChild(cell(it, "flops", it.flops ? si(it.flops) : "", true, grouped(it.flops)));
    var mem = value(it, "memory");
    tr.appendChild(cell(it, "memory", mem ? bytes(mem) : "", true, grouped(mem) + " bytes" + (it.isModule ? " (all its new outputs)" : " (its output)")));
    tr.appendChild(cell(it, "rf", rfText(it.isModule ? (lastIn[it.name] || {}).rf : it.rf), true));
    it.tr = tr; it.toggle = tog;
    tbody.appendChild(tr);
  });

  // ---- state: collapsed modules, sort, filter, selection
  var collapsed = {}, sort = null, filter = "", selected = null;
  function hiddenBy(it) {  // the outermost collapsed module it sits in
    for (var i = 0; i < it.scopes.length; i++) if (collapsed[it.scopes[i]]) return it.scopes[i];
    return null;
  }
  function matches(it) {
    if (!filter) return true;
    return (it.name + " " + it.type).toLowerCase().indexOf(filter) >= 0;
  }
  var matchedModules = {};
  function refreshTable() {
    matchedModules = {};
    if (filter) items.forEach(function (it) { if (!it.isModule && matches(it)) it.scopes.forEach(function (p) { matchedModules[p] = 1; }); });
    var shown = items.filter(function (it) {
      if (hiddenBy(it)) return false;
      if (it.isModule) {
        if (sort && !collapsed[it.name]) return false;  // sorted: a module is a row only when collapsed
        return !filter || matches(it) || matchedModules[it.name];
      }
      return matches(it);
    });
    if (sort) {
      var k = sort.key, dir = sort.dir;
      shown.sort(function (a, b) {
        var x = value(a, k), y = value(b, k);
        if (x === y) return a.order - b.order;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        var c = typeof x === "string" ? x.localeCompare(y) : (x < y ? -1 : 1);
        return dir === "descending" ? -c : c;
      });
    }
    var show = new Set(shown);
    items.forEach(function (it) { it.tr.hidden = !show.has(it); });
    shown.forEach(function (it) { tbody.appendChild(it.tr); });
    items.forEach(function (it) { if (it.isModule) it.toggle.textContent = collapsed[it.name] ? "▸" : "▾"; });
    $("count").textContent = shown.filter(function (it) { return !it.isModule; }).length + " of " + layers.length + " rows" +
      (sort ? " · sorted; click the header again to reverse, a third time for execution order" : "");
  }
  document.querySelectorAll("#layers th").forEach(function (th) {
    th.addEventListener("click", function () {
      var key = th.getAttribute("data-key"), text = key === "name" || key === "type" || key === "window";
      var first = text ? "ascending" : "descending";
      if (!sort || sort.key !== key) sort = { key: key, dir: first };
      else if (sort.dir === first) sort.dir = first === "ascending" ? "descending" : "ascending";
      else sort = null;
      document.querySelectorAll("#layers th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      if (sort) th.setAttribute("aria-sort", sort.dir);
      refreshTable();
    });
  });
  $("filter").addEventListener("input", function () { filter = this.value.trim().toLowerCase(); refreshTable(); });

  // ---- the diagram: one SVG per depth ("0": every row), gzip + base64, laid out by Graphviz
  var svg = null, nodeG = {}, clusterG = {}, edges = [], overlays = {}, shownDepth = null;
  function itemOf(name) { return byName[name] || modules[name]; }
  function prefixes(path) {
    var parts = path.split("."), out = [];
    for (var i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join("."));
    return out;
  }
  function unpack(b64) {
    var raw = atob(b64), buf = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) buf[i] = raw.charCodeAt(i);
    var stream = new Blob([buf]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text();
  }
  var svgText = {};
  function showDiagram(depth) {
    var key = String(depth);
    if (!D.diagrams || !D.diagrams[key]) return Promise.resolve();
    var text;
    try {
      text = svgText[key] ? Promise.resolve(svgText[key]) : unpack(D.diagrams[key]).then(function (t) { svgText[key] = t; return t; });
    } catch (e) { return Promise.reject(e); }  // no DecompressionStream: an old browser
    return text.then(function (t) {
      $("diagram").innerHTML = t;
      index(document.querySelector("#diagram svg"));
      shownDepth = depth;
      fitZoom();
      refreshDiagram();
      $("diagram").setAttribute("data-depth", key);
    });
  }
  function index(s) {
    svg = s; nodeG = {}; clusterG = {}; edges = []; overlays = {};
    var ids = {}, nodeOf = {};
    layers.forEach(function (l) { ids[l.node] = l.name; });
    for (var m in modules) ids[m.replace(/:/g, "_")] = m;
    svg.querySelectorAll("g.node").forEach(function (g) {
      var t = g.querySelector("title").textContent, name = ids[t];
      if (name === undefined) {  // one node per output of a model with several outputs: name + key
        layers.forEach(function (l) { if (l.kind === "output" && t.indexOf(l.node) === 0) name = l.name; });
      }
      if (name === undefined) return;  // the legend
      nodeOf[t] = name;
      g.setAttribute("data-name", name);
      (nodeG[name] = nodeG[name] || []).push(g);
      var shapeEl = g.querySelector("path, polygon, ellipse");
      if (shapeEl) g.setAttribute("data-fill", shapeEl.getAttribute("fill"));
      g.addEventListener("click", function () { select(name, "diagram"); });
    });
    svg.querySelectorAll("g.cluster").forEach(function (g) {
      var path = g.querySelector("title").textContent.replace(/^cluster_/, "");
      clusterG[path] = g;
      g.setAttribute("data-name", path);
      var label = g.querySelector("text");
      if (label) {
        var tip = document.createElementNS(SVGNS, "title"); tip.textContent = "click to collapse " + path;
        label.appendChild(tip);
        label.addEventListener("click", function () { setCollapsed(path, true); select(path, "diagram"); });
      }
    });
    svg.querySelectorAll("g.edge").forEach(function (g) {
      var ends = g.querySelector("title").textContent.split("->");
      edges.push({ g: g, a: nodeOf[ends[0]], b: nodeOf[ends[1]] });
    });
  }
  // a collapsed module with a cluster in the shown diagram: its contents hidden, one block in its place
  function refreshDiagram() {
    if (!svg) return;
    var hidden = {};
    for (var name in nodeG) { var it = itemOf(name); if (it && hiddenBy(it) && clusterG[hiddenBy(it)]) hidden[name] = hiddenBy(it); }
    for (name in nodeG) nodeG[name].forEach(function (g) { g.style.display = hidden[name] ? "none" : ""; });
    edges.forEach(function (e) { e.g.style.display = hidden[e.a] && hidden[e.a] === hidden[e.b] ? "none" : ""; });
    for (var path in clusterG) {
      var outer = hiddenBy({ scopes: prefixes(path) });
      clusterG[path].style.display = outer ? "none" : "";
      var show = collapsed[path] && !outer;
      if (show && !overlays[path]) overlays[path] = makeOverlay(path);
      if (overlays[path]) overlays[path].style.display = show ? "" : "none";
    }
    colour();
    if (selected) select(selected, "refresh");
  }
  function makeOverlay(path) {
    var c = clusterG[path], box = c.getBBox(), m = modules[path] || { type: "", nodes: "?", params: 0, macs: 0 };
    var g = document.createElementNS(SVGNS, "g");
    g.setAttribute("class", "collapsed-module"); g.setAttribute("data-name", path);
    var r = document.createElementNS(SVGNS, "rect");
    ["x", "y", "width", "height"].forEach(function (k) { r.setAttribute(k, box[k]); });
    r.setAttribute("rx", 6); r.setAttribute("fill", "#d0e0e3"); r.setAttribute("stroke", "#333"); r.setAttribute("stroke-width", "1.5");
    g.setAttribute("data-fill", "#d0e0e3");
    g.appendChild(r);
    var lines = [path + ": " + m.type, m.nodes + " nodes · " + si(m.params) + " params · " + LB + si(m.macs) + " MACs",
      (m.input_shapes || []).map(shape).join(", ") + " → " + shape(m.output_shape), "click to expand"];
    lines.forEach(function (s, i) {
      var t = document.createElementNS(SVGNS, "text");
      t.setAttribute("x", box.x + box.width / 2); t.setAttribute("y", box.y + 18 + 14 * i);
      t.setAttribute("text-anchor", "middle"); t.setAttribute("font-family", "Helvetica,sans-Serif");
      t.setAttribute("font-size", i ? "10" : "12"); if (!i) t.setAttribute("font-weight", "bold");
      t.textContent = s; g.appendChild(t);
    });
    g.addEventListener("click", function () { setCollapsed(path, false); select(path, "diagram"); });
    c.parentNode.appendChild(g);
    return g;
  }

  // ---- colouring by cost, on a log scale between the smallest and largest non-zero value shown
  var STOPS = [[255, 247, 236], [253, 212, 158], [252, 141, 89], [215, 48, 31]];
  function ramp(t) {
    var x = Math.max(0, Math.min(1, t)) * (STOPS.length - 1), i = Math.min(Math.floor(x), STOPS.length - 2), f = x - i;
    var c = STOPS[i].map(function (v, k) { return Math.round(v + (STOPS[i + 1][k] - v) * f); });
    return "rgb(" + c.join(",") + ")";
  }
  var FAMILY = { conv: "#c9daf8", norm: "#fff2cc", activation: "#f4cccc", pooling: "#d9ead3", linear: "#d9d2e9", merge: "#fce5cd", other: "#eeeeee", block: "#d0e0e3" };
  var LABEL = { macs: "MACs", params: "parameters", memory: "output memory (a module: all its outputs)", rf: "receptive field size" };
  function colour() {
    var by = $("color-by").value, key = by === "type" ? null : by, targets = [];
    if (svg) {
      for (var name in nodeG) { var it = itemOf(name); if (it && ["input", "output"].indexOf(it.kind) < 0) targets.push([it, nodeG[name]]); }
      for (var p in overlays) if (modules[p]) targets.push([modules[p], [overlays[p]]]);
    }
    var vals = [];
    if (key) targets.forEach(function (t) { var v = value(t[0], key); if (typeof v === "number" && v > 0 && isFinite(v)) vals.push(v); });
    var lo = Math.log10(Math.min.apply(null, vals.concat([Infinity]))), hi = Math.log10(Math.max.apply(null, vals.concat([1])));
    targets.forEach(function (t) {
      t[1].forEach(function (g) {
        var s = g.querySelector("path, polygon, ellipse, rect"), dark = false, fill = g.getAttribute("data-fill") || "#d0e0e3";
        if (key) {
          var v = value(t[0], key);
          if (v === null || v === undefined) fill = "#e0e0e0";
          else if (v === Infinity) { fill = ramp(1); dark = true; }
          else if (v <= 0) fill = "#ffffff";
          else { var f = hi > lo ? (Math.log10(v) - lo) / (hi - lo) : 1; fill = ramp(f); dark = f > 0.8; }
        }
        if (s) s.setAttribute("fill", fill);
        g.querySelectorAll("text").forEach(function (x) {
          if (!x.hasAttribute("data-color")) x.setAttribute("data-color", x.getAttribute("fill") || "#000000");
          x.setAttribute("fill", dark ? "#ffffff" : x.getAttribute("data-color"));
        });
      });
    });
    var legend = $("legend"); legend.textContent = "";
    if (!key) {
      Object.keys(FAMILY).forEach(function (f) { legend.appendChild(el("span", null, [el("span", { cls: "sw", style: "background:" + FAMILY[f] }), f])); });
      return;
    }
    var fmt = by === "memory" ? bytes : (by === "rf" ? num : si);
    legend.appendChild(el("span", { text: LABEL[by] + ":" }));
    legend.appendChild(el("span", { text: vals.length ? fmt(Math.round(Math.pow(10, lo))) : "" }));
    legend.appendChild(el("span", { cls: "bar", style: "background:linear-gradient(to right," + [0, 0.33, 0.67, 1].map(ramp).join(",") + ")" }));
    legend.appendChild(el("span", { text: vals.length ? fmt(Math.round(Math.pow(10, hi))) + " (log scale)" : "nothing to colour" }));
    legend.appendChild(el("span", null, [el("span", { cls: "sw", style: "background:#fff" }), "0"]));
    legend.appendChild(el("span", null, [el("span", { cls: "sw", style: "background:#e0e0e0" }), "unknown"]));
  }
  $("color-by").value = D.color_by;
  $("color-by").addEventListener("change", colour);

  // zoom: the SVG's natural size (points) times a factor; "fit" fits the pane's width
  var zoom = 1;
  function setZoom(z) {
    if (!svg) return;
    zoom = Math.max(0.05, Math.min(4, z));
    var vb = svg.viewBox.baseVal;
    svg.setAttribute("width", vb.width * zoom + "pt"); svg.setAttribute("height", vb.height * zoom + "pt");
  }
  function fitZoom() { if (svg) setZoom(Math.min(1, ($("diagram").clientWidth - 8) * 0.75 / svg.viewBox.baseVal.width)); }
  $("zoom-in").addEventListener("click", function () { setZoom(zoom * 1.25); });
  $("zoom-out").addEventListener("click", function () { setZoom(zoom / 1.25); });
  $("zoom-fit").addEventListener("click", fitZoom);

  // ---- collapsing: the table and the diagram together. The depth picks the diagram laid out at
  // that depth (modules below it drawn as one node); a module collapsed by hand is one block in place.
  function setCollapsed(path, on) { if (on) collapsed[path] = true; else delete collapsed[path]; refreshTable(); refreshDiagram(); }
  items.forEach(function (it) {
    if (it.isModule) it.toggle.addEventListener("click", function (ev) { ev.stopPropagation(); setCollapsed(it.name, !collapsed[it.name]); });
  });
  var maxDepth = 0;
  for (var p in modules) maxDepth = Math.max(maxDepth, modules[p].depth);
  var depthSel = $("depth");
  depthSel.appendChild(el("option", { value: "0", text: "all" }));
  for (var dd = 1; dd <= maxDepth; dd++) depthSel.appendChild(el("option", { value: String(dd), text: String(dd) }));
  function collapseTo(depth) {
    collapsed = {};
    if (depth > 0) for (var q in modules) if (modules[q].depth === depth) collapsed[q] = true;
    depthSel.value = String(depth);
    refreshTable();
    return showDiagram(depth);
  }
  depthSel.addEventListener("change", function () { collapseTo(Number(this.value)); });
  $("expand-all").addEventListener("click", function () { collapseTo(0); });
  $("collapse-all").addEventListener("click", function () { collapseTo(maxDepth ? 1 : 0); });

  // ---- selection: a row highlights its node and the reverse
  function nodesOf(it) {  // the node that shows ``it`` in the diagram shown: its own, or its module's
    if (nodeG[it.name]) return nodeG[it.name];
    var outer = hiddenBy(it);
    if (outer && overlays[outer] && overlays[outer].style.display !== "none") return [overlays[outer]];
    if (overlays[it.name] && overlays[it.name].style.display !== "none") return [overlays[it.name]];
    if (clusterG[it.name] && clusterG[it.name].style.display !== "none") return [clusterG[it.name]];
    for (var i = it.scopes.length - 1; i >= 0; i--) if (nodeG[it.scopes[i]]) return nodeG[it.scopes[i]];
    return [];
  }
  function select(name, from) {
    var it = itemOf(name);
    if (!it) return;
    selected = name;
    document.querySelectorAll(".sel").forEach(function (e) { e.classList.remove("sel"); });
    if (!it.tr.hidden) { it.tr.classList.add("sel"); if (from === "diagram") it.tr.scrollIntoView({ block: "nearest" }); }
    var gs = nodesOf(it);
    gs.forEach(function (g) { g.classList.add("sel"); });
    if (gs.length && from === "table") centre(gs[0]);
    if (from !== "refresh") details(it);
  }
  function centre(g) {
    var pane = $("diagram"), r = g.getBoundingClientRect(), c = pane.getBoundingClientRect();
    pane.scrollLeft += r.left - c.left - (r.width > c.width ? 10 : c.width / 2 - r.width / 2);
    pane.scrollTop += r.top - c.top - (r.height > c.height ? 10 : c.height / 2 - r.height / 2);  // a tall one: its top
  }
  tbody.addEventListener("click", function (ev) {
    var tr = ev.target.closest("tr"); if (tr) select(tr.getAttribute("data-name"), "table");
  });

  // ---- the details panel
  var WINDOW = ["kernel_size", "stride", "padding", "dilation", "groups"];
  function details(it) {
    var box = $("details"); box.textContent = "";
    box.appendChild(el("h2", { text: it.name + " · " + it.type }));
    var cols = el("div", { cls: "cols" }), facts = el("div"), rfCol = el("div");
    cols.appendChild(facts); cols.appendChild(rfCol); box.appendChild(cols);
    if (it.isModule) {
      facts.appendChild(kv([["module", it.type + ", " + it.nodes + " traced nodes"],
        ["input → output", (it.input_shapes || []).map(shape).join(", ") + " → " + shape(it.output_shape)],
        ["parameters", grouped(it.params)], ["MACs", LB + grouped(it.macs)], ["FLOPs", LB + grouped(it.flops)],
        ["activation memory", bytes(it.activation_bytes) + " (every new output inside)"],
        ["no formula for", (it.unsupported_ops || []).join(", ")]]));
      if (lastIn[it.name]) receptive(rfCol, lastIn[it.name], "its output, " + lastIn[it.name].name);
      return;
    }
    var win = WINDOW.filter(function (k) { return it[k] !== undefined; }).map(function (k) {
      return k.replace("_size", "") + " " + (Array.isArray(it[k]) ? it[k].join("×") : it[k]);
    }).join(", ");
    var outs = it.outputs ? it.outputs.map(function (o) { return (o.key || "·") + ": " + shape(o.shape); }).join(", ") : shape(it.output_shape);
    facts.appendChild(kv([["kind", it.kind], ["source", it.source || ""],
      ["input shapes", (it.input_shapes || []).map(shape).join(", ")], ["output shape", outs + (it.dtype ? " " + it.dtype : "")],
      ["window", win], ["parameters", grouped(it.params) + (it.shared_with ? " (shared with " + it.shared_with + ")" : "")],
      ["MACs", it.kind === "input" ? "" : grouped(it.macs)], ["FLOPs", it.kind === "input" ? "" : grouped(it.flops)],
      ["output memory", bytes(it.output_bytes)], ["activation memory", it.activation_bytes ? bytes(it.activation_bytes) + " (new outputs kept)" : ""],
      ["live after it", D.memory_layers && D.memory_layers[it.name] !== undefined ? bytes(D.memory_layers[it.name]) + " (inference: weights, inputs and every tensor still needed)" : ""],
      ["no formula for", (it.unsupported_ops || []).join(", ") + ((it.unsupported_ops || []).length ? " (MACs/FLOPs a lower bound)" : "")]]));
    receptive(rfCol, it, "");
  }
  function receptive(box, it, of) {
    var rf = it.rf;
    if (!rf) return;
    box.appendChild(el("h2", { text: "Receptive field" + (of ? " (" + of + ")" : "") }));
    if (rf.kind !== "spatial") {
      box.appendChild(el("p", { text: rf.kind === "global" ? "global: every unit sees the whole input" : rf.kind === "unknown" ? "unknown: " + (rf.unknown_op || "") + " has no rule" : rf.kind }));
      return;
    }
    var axes = rf.size.map(function (_, k) { return k; });
    box.appendChild(kv([["size", rf.size.map(num).join(" × ")], ["jump", rf.jump.map(num).join(" × ")], ["start", rf.start.map(num).join(" × ")],
      ["aligned", rf.aligned ? "yes" : "no: branches with different centres or jumps meet here"]]));
    if (!rf.aligned || !D.image) { box.appendChild(el("p", { cls: "hint", text: "No per-unit input box for this layer." })); return; }
    var unit = el("div", { cls: "unit" }, ["Output unit "]);
    var inputs = axes.map(function (k) {
      var i = el("input", { type: "number", min: "0", max: String(rf.extents[k] - 1), value: String(Math.floor(rf.extents[k] / 2)) });
      unit.appendChild(i); unit.appendChild(document.createTextNode(k < axes.length - 1 ? " , " : " "));
      return i;
    });
    unit.appendChild(el("span", { cls: "hint", text: "of " + rf.extents.join(" × ") }));
    box.appendChild(unit);
    var view = el("div", { cls: "boxview" });
    box.appendChild(view);
    function update() {
      var idx = inputs.map(function (i, k) { return Math.max(0, Math.min(rf.extents[k] - 1, Math.floor(Number(i.value) || 0))); });
      view.textContent = "";
      view.appendChild(drawBox(rf, idx, it.name));
    }
    inputs.forEach(function (i) { i.addEventListener("input", update); });
    update();
  }
  function drawBox(rf, idx, name) {
    var ext = D.image.shape.slice(2), nd = ext.length, k0 = rf.size.length - nd;
    var centreUnit = rf.centre && idx.every(function (v, k) { return v === Math.floor(rf.extents[k] / 2); });
    var rows = [], boxes = [];
    for (var k = 0; k < nd; k++) {
      var a = k + k0, lo, hi;
      if (a < 0 || rf.size[a] === "global") { lo = 0; hi = ext[k] - 1; }
      else { var c = rf.start[a] + idx[a] * rf.jump[a], h = (rf.size[a] - 1) / 2; lo = c - h; hi = c + h; }
      if (centreUnit && !rf.centre.global) { lo = rf.centre.axes[k].box[0]; hi = rf.centre.axes[k].box[1]; }
      var clo = Math.max(0, Math.ceil(lo)), chi = Math.min(ext[k] - 1, Math.floor(hi));
      boxes.push([lo, hi, clo, chi]);
      var inside = Math.max(0, chi - clo + 1);
      rows.push(["input axis " + (k + 2), "[" + num(lo) + ", " + num(hi) + "]" + (lo < 0 || hi > ext[k] - 1 ? ", inside the image [" + clo + ", " + chi + "]: " + inside + " pixels" : "")]);
    }
    rows.push(["from", centreUnit ? "the exact trail (as cnnshape rf --layer " + name + " --at " + idx.join(",") + ")" :
      "the closed form start + i·jump ± (size − 1)/2; the exact box: cnnshape rf --layer " + name + " --at " + idx.join(",")]);
    var wrap = el("div", { cls: "unitbox" }, [kv(rows)]);
    if (nd >= 2) wrap.insertBefore(grid(ext.slice(-2), boxes.slice(-2)), wrap.firstChild);
    return wrap;
  }
  function grid(ext, boxes) {  // the input's last two axes, the unit's box over them (dashed: the nominal box)
    var H = ext[0], W = ext[1], lo0 = Math.min(0, boxes[0][0]), hi0 = Math.max(H - 1, boxes[0][1]);
    var lo1 = Math.min(0, boxes[1][0]), hi1 = Math.max(W - 1, boxes[1][1]);
    var s = 200 / Math.max(hi0 - lo0 + 1, hi1 - lo1 + 1);
    var g = document.createElementNS(SVGNS, "svg");
    g.setAttribute("width", (hi1 - lo1 + 1) * s + 2); g.setAttribute("height", (hi0 - lo0 + 1) * s + 2);
    g.setAttribute("class", "inputgrid");
    function rect(y0, y1, x0, x1, attrs) {
      var r = document.createElementNS(SVGNS, "rect");
      r.setAttribute("x", 1 + (x0 - lo1) * s); r.setAttribute("y", 1 + (y0 - lo0) * s);
      r.setAttribute("width", Math.max(0, (x1 - x0 + 1) * s)); r.setAttribute("height", Math.max(0, (y1 - y0 + 1) * s));
      for (var k in attrs) r.setAttribute(k, attrs[k]);
      g.appendChild(r);
    }
    rect(0, H - 1, 0, W - 1, { fill: "#eef2f7", stroke: "#57606a" });
    rect(boxes[0][2], boxes[0][3], boxes[1][2], boxes[1][3], { fill: "rgba(215,48,31,0.35)", stroke: "#d7301f" });
    rect(boxes[0][0], boxes[0][1], boxes[1][0], boxes[1][1], { fill: "none", stroke: "#d7301f", "stroke-dasharray": "4 3" });
    var t = document.createElementNS(SVGNS, "title");
    t.textContent = "input " + H + "×" + W + " (grey); the unit's box (red; dashed where it covers padding)";
    g.appendChild(t);
    return g;
  }

  // ---- header and the boxes below
  $("model").textContent = D.model;
  $("subtitle").textContent = "traced with " + D.tracer + (D.depth ? " · rows collapsed to depth " + D.depth : "");
  var T = D.totals;
  [["Parameters", si(T.params), grouped(T.params) + " (" + grouped(T.trainable_params) + " trainable)"],
    ["MACs", LB + si(T.macs), grouped(T.macs)], ["FLOPs", LB + si(T.flops), grouped(T.flops)],
    ["Activations", bytes(T.activation_bytes), "every new layer output kept"],
    ["Weights", bytes(T.param_bytes + T.buffer_bytes), grouped(T.param_bytes) + " B params + " + grouped(T.buffer_bytes) + " B buffers"],
    ["Rows", String(layers.length), ""]].forEach(function (c) {
    $("totals").appendChild(el("div", { cls: "card" + (lower && c[1].indexOf("≥") === 0 ? " lower" : ""), title: c[2], "data-total": c[0] },
      [el("div", { cls: "k", text: c[0] }), el("div", { cls: "v", text: c[1] })]));
  });
  function section(id, title, body) { var b = $(id); b.appendChild(el("h3", { text: title })); body.forEach(function (x) { b.appendChild(x); }); b.hidden = false; }
  function table(head, rows) {
    return el("table", null, [el("tr", null, head.map(function (h) { return el("th", { text: h }); }))].concat(rows.map(function (r) {
      return el("tr", null, r.map(function (c) { return el("td", { text: String(c) }); }));
    })));
  }
  section("io", "Inputs and outputs", [table(["", "name", "shape", "dtype"],
    D.inputs.map(function (i) { return ["input", i.key, shape(i.shape), i.dtype]; }).concat(
      D.outputs.map(function (o) { return ["output", o.key || "·", shape(o.shape), o.dtype]; })))]);
  var S = D.sizes;
  if (S.axes) {
    section("sizes", "Accepted input sizes", [table(["axis", "minimum", "accepted", "engine"], S.axes.map(function (a) {
      return [a.symbol + " (dim " + a.axis + ", given " + a.given + ")", a.minimum === null ? "" : a.minimum, a.accepted || a.reason, a.engine || ""];
    }))].concat(S.outputs.length ? [el("ul", null, S.outputs.map(function (f) { return el("li", { text: "output" + f.key + " dim " + f.dim + " = " + f.formula }); }))] : []));
  } else {
    section("sizes", "Accepted input sizes", [el("p", { text: S.note || "not determined" + (S.error ? ": " + S.error : "") }),
      el("p", { cls: "hint", text: S.error ? "the size analysis: " + S.error : "from the layer arithmetic of this trace; `cnnshape sizes` validates it" })]);
  }
  var notes = [el("li", { text: "tracer: " + D.tracer })];
  if (lower) notes.push(el("li", { cls: "lb", text: "MACs and FLOPs are lower bounds: some ops have no formula (marked ≥ in the table)" }));
  D.unsupported_ops.forEach(function (u) { notes.push(el("li", { text: "no formula for " + u.op + " (" + u.count + "×): " + u.layers.join(", ") })); });
  D.notes.forEach(function (n) { notes.push(el("li", { text: n })); });
  D.warnings.forEach(function (w) { notes.push(el("li", { text: "warning: " + w })); });
  if (D.verification) notes.push(el("li", { text: "verified by a real forward pass on " + D.verification.device_name + ": " + D.verification.layers_matched + " of " + D.verification.layers_checked + " layers match" }));
  section("notes", "Notes", [el("ul", null, notes)]);
  section("byop", "MACs and FLOPs by op", [table(["op", "calls", "MACs", "FLOPs"], D.by_op.slice(0, 12).map(function (o) { return [o.op, o.calls, si(o.macs), si(o.flops)]; }))]);
  if (D.memory !== undefined) {
    section("memory", "Memory", [kv(Object.keys(D.memory).map(function (k) { return [k, D.memory[k]]; }))]);
  }

  refreshTable();
  colour();
  showDiagram(0).then(function () { document.body.setAttribute("data-ready", "1"); },
    function (e) { $("diagram").textContent = "This browser cannot unpack the diagram (" + e + "); every other part of the page is complete."; document.body.setAttribute("data-ready", "1"); });
})();

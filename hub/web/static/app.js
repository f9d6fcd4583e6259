// AnNinh Hub web console: live updates over a WebSocket, and the overview's map.
// Every text from the hub is set with textContent, never as HTML.
(function () {
  "use strict";
  var body = document.body;

  function setCells(el, fields) {
    Object.keys(fields).forEach(function (name) {
      var cell = el.querySelector('[data-f="' + name + '"]');
      if (cell && cell.textContent !== fields[name]) { cell.textContent = fields[name]; }
    });
  }

  function setClass(el, cls) {
    if (!el) { return; }
    Array.prototype.slice.call(el.classList).forEach(function (c) { if (c.indexOf("cls-") === 0) { el.classList.remove(c); } });
    el.classList.add("cls-" + cls);
  }

  var markers = {};

  function apply(msg) {
    if (msg.reload) { window.location.reload(); return; }
    (msg.rows || []).forEach(function (row) {
      document.querySelectorAll('[data-dev="' + CSS.escape(row.id) + '"]').forEach(function (el) {
        setClass(el, row.cls);
        setCells(el, row.f);
      });
    });
    (msg.sites || []).forEach(function (site) {
      document.querySelectorAll('[data-site="' + CSS.escape(site.id) + '"]').forEach(function (el) {
        if (el === body) { return; }
        setClass(el, site.cls);
        setCells(el, site.f);
      });
      var m = markers[site.id];
      if (m) { setClass(m.getElement(), site.cls); }
    });
    var list = document.getElementById("events");
    if (list && msg.events) {
      var empty = list.querySelector(".empty");
      if (empty) { empty.remove(); }
      msg.events.forEach(function (e) {
        var li = document.createElement("li");
        li.className = "ev-" + e.type + " fresh";
        var t = document.createElement("time"); t.textContent = e.time;
        var w = document.createElement("span"); w.className = "where"; w.textContent = e.site;
        var x = document.createElement("span"); x.className = "text"; x.textContent = e.text;
        li.append(t, " ", w, " ", x);
        list.insertBefore(li, list.firstChild);
      });
      while (list.children.length > 300) { list.removeChild(list.lastChild); }
    }
    if (body.dataset.live === "export") {
      (msg.events || []).forEach(function (e) {
        var job = document.querySelector('[data-job-device="' + CSS.escape(e.device) + '"] [data-f="progress"]');
        if (job && e.type === "export_progress") { job.textContent = e.text; }
        if (e.type === "export_done" || e.type === "export_failed") { setTimeout(function () { window.location.reload(); }, 500); }
      });
    }
  }

  function ticketsChanged(msg) {
    // a ticket opened, acknowledged, resolved or overdue: the list is drawn again, unless a note is being typed
    if (body.dataset.live !== "tickets" || !(msg.events || []).length) { return; }
    var typing = Array.prototype.some.call(document.querySelectorAll('input[name="note"]'), function (i) { return i.value; });
    if (!typing) { setTimeout(function () { window.location.reload(); }, 300); }
  }

  function connect() {
    var view = body.dataset.live;
    if (!view) { return; }
    var q = new URLSearchParams({ view: view });
    ["site", "device", "type"].forEach(function (k) { if (body.dataset[k]) { q.set(k, body.dataset[k]); } });
    var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws?" + q);
    var status = document.getElementById("live-status");
    ws.onopen = function () { body.dataset.connected = "1"; if (status) { status.hidden = true; } };
    ws.onmessage = function (ev) { var msg = JSON.parse(ev.data); apply(msg); ticketsChanged(msg); body.dataset.updates = String(Number(body.dataset.updates || 0) + 1); };
    ws.onclose = function () {
      body.dataset.connected = "";
      if (status) { status.hidden = false; }
      setTimeout(connect, 2000);
    };
  }

  function map() {
    var el = document.getElementById("map");
    var data = document.getElementById("map-data");
    if (!el || !data || !window.L) { return; }
    var sites = JSON.parse(data.textContent);
    var m = L.map(el, { attributionControl: false });
    if (el.dataset.tiles) { L.tileLayer(el.dataset.tiles, { maxZoom: 19 }).addTo(m); }
    var bounds = [];
    sites.forEach(function (s) {
      var label = document.createElement("span");
      label.textContent = s.name;
      var mk = L.circleMarker([s.lat, s.lon], { radius: 11, weight: 2, className: "mk cls-" + s.cls }).addTo(m);
      mk.bindTooltip(label, { permanent: true, direction: "right" });
      mk.on("click", function () { window.location.href = s.url; });
      markers[s.id] = mk;
      bounds.push([s.lat, s.lon]);
    });
    if (bounds.length === 1) { m.setView(bounds[0], 15); } else { m.fitBounds(bounds, { padding: [30, 30] }); }
  }

  connect();
  try { map(); } catch (e) { if (window.console) { console.error("map: " + e); } }
})();

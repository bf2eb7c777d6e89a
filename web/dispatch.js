/* The dispatcher map of one depot: live drivers (positions coalesced by the server to a few
   updates a second), each route's stops coloured by state, an alert list, a route's progress
   with ETAs on click, and "who is near here" on a click on the map. State comes from
   /dispatch/state, then live from /dispatch/events (ids are feed offsets; a dropped connection
   resumes with Last-Event-ID; `resync` means reload the state). Text goes in via textContent. */
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var el = MilepostMap.el;
  if (/[?&]token=/.test(location.search)) history.replaceState(null, '', location.pathname);

  var map = new MilepostMap.MapView($('map'), { interactive: true });
  var drivers = {};      // id -> dot
  var routes = {};       // route id -> summary
  var driverRoute = {};  // driver id -> route id
  var markers = {};      // driver id -> <g>
  var alerts = [];
  var selected = null;   // route id
  var near = null;       // {lat, lon, r, list}
  var offset = 0;
  var fitted = false;
  var ALERTS_MAX = 100;

  function text(node, t) { node.textContent = t == null ? '' : t; return node; }
  function li(parent, cls) { var e = document.createElement('li'); if (cls) e.className = cls; parent.appendChild(e); return e; }
  function clearList(id) { var n = $(id); while (n.firstChild) n.removeChild(n.firstChild); return n; }
  function hhmm(ms) { return ms ? new Date(ms).toISOString().slice(11, 16) : ''; }

  function allPoints() {
    var pts = [];
    Object.keys(routes).forEach(function (id) {
      var r = routes[id];
      if (r.start) pts.push([r.start.lat, r.start.lon]);
      r.stops.forEach(function (s) { pts.push([s.lat, s.lon]); });
    });
    Object.keys(drivers).forEach(function (id) { var p = drivers[id].position; pts.push([p.lat, p.lon]); });
    return pts;
  }

  function fit() {
    var pts = allPoints();
    if (!pts.length) return;
    map.origin = null;
    map.fit(pts, 1000);
    fitted = true;
  }

  // Drawing. Marker sizes are in screen pixels (k = map units per pixel).
  function drawRoutes() {
    if (!map.origin) return;
    var k = map.upp();
    var gr = map.clear('routes'), gs = map.clear('stops');
    Object.keys(routes).sort().forEach(function (id) {
      var r = routes[id];
      if (r.path.length > 1) {
        var d = r.path.map(function (p, i) { var q = map.project(p[0], p[1]); return (i ? 'L' : 'M') + q[0].toFixed(1) + ' ' + q[1].toFixed(1); }).join('');
        el('path', { 'class': 'route' + (id === selected ? ' sel' : ''), d: d }, gr);
      }
      if (r.start) {
        var o = map.project(r.start.lat, r.start.lon), h = 6 * k;
        text(el('title', null, el('rect', { 'class': 'depot', x: o[0] - h, y: o[1] - h, width: 2 * h, height: 2 * h, rx: h / 3 }, gs)), 'Start of ' + r.route_id);
      }
      r.stops.forEach(function (s) {
        var q = map.project(s.lat, s.lon);
        var c = el('circle', { 'class': 'stop st-' + s.state, cx: q[0].toFixed(1), cy: q[1].toFixed(1), r: (id === selected ? 7 : 5.5) * k, 'data-route': id, 'data-stop': s.id }, gs);
        text(el('title', null, c), r.route_id + ' ' + s.id + ': ' + s.state + (s.eta_text ? ', ETA ' + s.eta_text : ''));
      });
    });
  }

  function drawDriver(id) {
    var d = drivers[id], g = markers[id], k = map.upp();
    if (!map.origin) return;
    if (!g) {
      g = markers[id] = el('g', { 'class': 'drv', 'data-driver': id }, map.layers.markers);
      el('circle', { cx: 0, cy: 0 }, g);
      el('text', { x: 0, y: 0 }, g);
      g.addEventListener('click', function (ev) { ev.stopPropagation(); selectDriver(id); });
    }
    var c = g.firstChild, t = g.lastChild;
    c.setAttribute('r', 8 * k);
    t.setAttribute('x', 11 * k);
    t.setAttribute('y', 4 * k);
    t.setAttribute('font-size', 12 * k);
    text(t, d.name);
    g.setAttribute('class', 'drv' + (driverRoute[id] && driverRoute[id] === selected ? ' sel' : ''));
    var q = map.project(d.position.lat, d.position.lon);
    // CSS transform in SVG user units: the position change is animated by a transition.
    g.style.transform = 'translate(' + q[0].toFixed(1) + 'px,' + q[1].toFixed(1) + 'px)';
    g.setAttribute('data-x', q[0].toFixed(1));
    g.setAttribute('data-y', q[1].toFixed(1));
  }

  function drawNear() {
    var g = map.clear('overlay');
    if (!near || !map.origin) return;
    var q = map.project(near.lat, near.lon);
    el('circle', { 'class': 'near', cx: q[0], cy: q[1], r: near.r }, g);
  }

  function drawAll() {
    drawRoutes();
    Object.keys(drivers).forEach(drawDriver);
    drawNear();
  }
  map.onview = function () { drawAll(); };

  function renderDrivers() {
    var ul = clearList('drivers');
    var ids = Object.keys(drivers).sort();
    if (!ids.length) text(li(ul, 'muted empty'), 'No driver has sent a position yet.');
    var now = Date.now();
    ids.forEach(function (id) {
      var d = drivers[id], r = routes[driverRoute[id]];
      var item = li(ul, driverRoute[id] && driverRoute[id] === selected ? 'sel' : '');
      item.setAttribute('data-driver', id);
      var age = Math.max(0, Math.round((now - d.position.t_ms) / 1000));
      var speed = d.speed_mps != null ? ' · ' + Math.round(d.speed_mps * 3.6) + ' km/h' : '';
      var prog = r ? ' · ' + r.route_id + ' ' + r.done + '/' + r.stops.length + (r.stalled ? ' · stalled' : '') + (r.off_route ? ' · off route' : '') : '';
      text(item, d.name + (d.vehicle ? ' (' + d.vehicle + ')' : '') + prog + speed + ' · ' + (age < 120 ? age + ' s ago' : Math.round(age / 60) + ' min ago'));
      item.addEventListener('click', function () { selectDriver(id); });
    });
  }

  function renderAlerts() {
    var ol = clearList('alerts');
    if (!alerts.length) text(li(ol, 'muted empty'), 'No alerts.');
    alerts.forEach(function (a) {
      var item = li(ol);
      text(item.appendChild(document.createElement('time')), a.time);
      item.appendChild(document.createTextNode(a.driver_name + ' (' + a.route_id + '): ' + a.text));
    });
  }

  // The exception queue: failed deliveries, with the policy's next step and the recipient's
  // wish; acknowledged or resolved here (a log record, like the API's).
  function loadExceptions() {
    return fetch('/dispatch/exceptions', { credentials: 'same-origin' }).then(function (r) {
      return r.ok ? r.json() : { items: [] };
    }).then(function (x) { renderExceptions(x.items); }, function () {});
  }
  function renderExceptions(list) {
    $('exceptions-card').hidden = !list.length;
    var ol = clearList('exceptions');
    list.forEach(function (x) {
      var item = li(ol, 'ex-' + x.state);
      item.setAttribute('data-tracking', x.tracking);
      text(item.appendChild(document.createElement('time')), hhmm(x.at_ms));
      var words = x.tracking + ' (' + x.route_id + ', ' + x.stop + '): ' + x.reason;
      if (x.next_step) words += ' · ' + x.next_step;
      if (x.wish) words += ' · recipient: ' + x.wish;
      if (x.state === 'acknowledged') words += ' · acknowledged by ' + x.handled_by;
      item.appendChild(document.createTextNode(' ' + words + ' '));
      var actions = x.state === 'open' ? ['acknowledge', 'resolve'] : ['resolve'];
      actions.forEach(function (a) {
        var b = item.appendChild(document.createElement('button'));
        b.type = 'button';
        b.className = 'act-' + a;
        text(b, a === 'acknowledge' ? 'Acknowledge' : 'Resolve');
        b.addEventListener('click', function () {
          b.disabled = true;
          fetch('/dispatch/alerts/' + x.alert_id + '/' + a, {
            method: 'POST', credentials: 'same-origin',
            headers: { 'Content-Type': 'application/json' }, body: '{}'
          })
            .then(loadExceptions, loadExceptions);
        });
      });
    });
  }

  // Messages no provider took (dead letters): retried or dismissed through the API.
  function renderUndelivered(list) {
    var card = $('undelivered-card');
    card.hidden = !list.length;
    var ol = clearList('undelivered');
    list.forEach(function (u) {
      var item = li(ol);
      text(item, u.about + ' · ' + u.channel + ' to ' + u.to + ' · ' + u.error);
    });
  }

  function renderRoute() {
    var card = $('route-card');
    var r = routes[selected];
    card.hidden = !r;
    if (!r) return;
    text($('route-id'), r.route_id + ' · ' + r.driver_name);
    var meta = r.finished_ms ? 'Finished ' + hhmm(r.finished_ms) : r.started_ms ? 'Started ' + hhmm(r.started_ms) : 'Not started';
    meta += ' · ' + r.done + '/' + r.stops.length + ' stops served';
    if (r.progress_m != null) meta += ' · ' + (r.progress_m / 1000).toFixed(1) + ' km along';
    if (r.pace) meta += ' · pace ' + r.pace.toFixed(2);
    if (r.off_route) meta += ' · off route';
    if (r.stalled) meta += ' · stalled';
    text($('route-meta'), meta);
    var ol = clearList('route-stops');
    r.stops.forEach(function (s) {
      var item = li(ol);
      item.appendChild(document.createElement('i')).className = 'st-' + s.state;
      var when = s.arrived_ms ? 'arrived ' + hhmm(s.arrived_ms) : s.eta_text ? 'ETA ' + s.eta_text : '';
      item.appendChild(document.createTextNode(s.id + ' · ' + s.state + (when ? ' · ' + when : '') + (s.parcels ? ' · ' + s.parcels + ' parcel' + (s.parcels > 1 ? 's' : '') : '')));
    });
  }

  function selectDriver(id) {
    var rid = driverRoute[id];
    if (!rid) { selected = null; renderRoute(); drawAll(); renderDrivers(); return; }
    selected = rid;
    // Fresh progress and ETAs for the route (the stream's summaries may be a few seconds old).
    fetch('/dispatch/routes/' + encodeURIComponent(rid), { credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (r) { if (r) setRoute(r); renderRoute(); drawAll(); renderDrivers(); });
  }

  function setRoute(r) {
    routes[r.route_id] = r;
    driverRoute[r.driver] = r.route_id;
  }

  function onMapClick(lat, lon, target) {
    if (target && target.getAttribute && target.getAttribute('data-route')) {
      selected = target.getAttribute('data-route');
      selectDriver(routes[selected].driver);
      return;
    }
    var r = +$('radius').value;
    near = { lat: lat, lon: lon, r: r };
    drawNear();
    var q = '/dispatch/nearby?lat=' + lat.toFixed(6) + '&lon=' + lon.toFixed(6) + '&radius_m=' + r;
    fetch(q, { credentials: 'same-origin' }).then(function (x) { return x.json(); }).then(function (ans) {
      $('near-card').hidden = false;
      var ol = clearList('near');
      if (!ans.drivers || !ans.drivers.length) text(li(ol, 'muted'), 'No driver within ' + r + ' m.');
      (ans.drivers || []).forEach(function (d) {
        var item = li(ol);
        text(item, d.name + ' · ' + Math.round(d.distance_m) + ' m');
        item.addEventListener('click', function () { selectDriver(d.id); });
      });
      if (ans.truncated) text(li(ol, 'muted'), 'More drivers not listed.');
    });
  }
  map.onclick = onMapClick;

  $('zoom-in').addEventListener('click', function () { map.zoom(0.7); });
  $('zoom-out').addEventListener('click', function () { map.zoom(1.4); });
  $('fit').addEventListener('click', fit);

  function load() {
    return fetch('/dispatch/state', { credentials: 'same-origin' }).then(function (r) {
      if (!r.ok) throw new Error(r.status === 401 ? 'This link has expired.' : 'Not allowed.');
      return r.json();
    }).then(function (st) {
      offset = st.offset;
      drivers = {};
      routes = {};
      driverRoute = {};
      st.drivers.forEach(function (d) { drivers[d.id] = d; });
      st.routes.forEach(setRoute);
      alerts = st.alerts.slice(0, ALERTS_MAX);
      renderUndelivered(st.undelivered || []);
      Object.keys(markers).forEach(function (id) { markers[id].remove(); });
      markers = {};
      if (!fitted) fit();
      drawAll();
      renderDrivers();
      renderAlerts();
      renderRoute();
      loadExceptions();
    });
  }

  var conn = $('conn');
  function showConn(t, ok) { text(conn, t); conn.className = ok ? 'conn ok' : 'conn'; }
  var es = null;
  function connect() {
    es = new EventSource('/dispatch/events?after=' + offset);
    es.onopen = function () { showConn('live', true); };
    es.onerror = function () {
      showConn('reconnecting…');
      if (es.readyState === EventSource.CLOSED) setTimeout(function () { load().then(connect, function () { setTimeout(connect, 10000); }); }, 5000);
    };
    es.addEventListener('positions', function (e) {
      var list = JSON.parse(e.data), fresh = false;
      list.forEach(function (d) { if (!drivers[d.id]) fresh = true; drivers[d.id] = d; });
      if (fresh && !fitted) fit();
      if (fresh) drawAll(); else list.forEach(function (d) { drawDriver(d.id); });
      renderDrivers();
    });
    es.addEventListener('route', function (e) {
      setRoute(JSON.parse(e.data));
      drawRoutes();
      if (selected) renderRoute();
      renderDrivers();
    });
    es.addEventListener('dispatch', function (e) {
      var a = JSON.parse(e.data);
      if (a.offset > offset) offset = a.offset;
      if (!a.alert) return;
      alerts.unshift(a);
      if (alerts.length > ALERTS_MAX) alerts.length = ALERTS_MAX;
      renderAlerts();
      if (a.kind === 'AttemptFailed') loadExceptions();
    });
    es.addEventListener('resync', function (e) {
      offset = +e.lastEventId || offset;
      load();
    });
    es.addEventListener('auth', function () { es.close(); showConn('This link has expired.'); });
  }

  setInterval(renderDrivers, 5000);
  load().then(connect, function (err) { showConn(err.message); });
})();

/* The dispatcher console of one depot: live drivers on the map (positions coalesced by the
   server to a few updates a second), each route's stops coloured by state (the selected
   route's labelled with their order and address), alerts grouped per driver and acknowledged
   or resolved here (each a log record), the failed-delivery queue, search by driver, route or
   tracking number, a route's progress with ETAs, its trail played back on the map, and "who is
   near here" on a click on the map. State comes from /dispatch/state, then live from the
   depot's stream (MilepostLive: ids are feed offsets; `resync` means reload the state). Every
   list is made of buttons, so the keyboard reaches everything. Text goes in via textContent
   (and as text nodes into the map's labels). */
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  if (/[?&]token=/.test(location.search)) history.replaceState(null, '', location.pathname);

  var mapNote = $('map-note');
  var map = MilepostMap.create($('map'), {
    interactive: true,
    onfallback: function (msg) { text(mapNote, msg); mapNote.hidden = false; }
  });
  var drivers = {};      // id -> dot
  var routes = {};       // route id -> summary
  var driverRoute = {};  // driver id -> route id
  var selected = null;   // route id
  var near = null;       // {lat, lon, r}
  var offset = 0;
  var fitted = false;
  var zone = 'UTC';
  var hour12 = false;  // the carrier's locale reads a 12-hour clock
  var STATE_WORDS = { pending: 'to do', next: 'next', arrived: 'driver there', departed: 'left, no outcome', delivered: 'delivered', failed: 'failed', passed: 'passed' };

  function text(node, t) { node.textContent = t == null ? '' : t; return node; }
  function li(parent, cls) { var e = document.createElement('li'); if (cls) e.className = cls; parent.appendChild(e); return e; }
  function clearList(id) { var n = $(id); while (n.firstChild) n.removeChild(n.firstChild); return n; }
  function stateWord(s) { return STATE_WORDS[s] || s; }
  /* A list entry that is a button: reached and pressed with the keyboard. */
  function action(parent, label, onpress, cls) {
    var b = document.createElement('button');
    b.type = 'button';
    b.className = 'linkish' + (cls ? ' ' + cls : '');
    text(b, label);
    b.addEventListener('click', onpress);
    parent.appendChild(b);
    return b;
  }
  /* HH:MM of `ms` in the depot's zone. */
  function hhmm(ms) {
    if (!ms) return '';
    try {
      return new Intl.DateTimeFormat(hour12 ? 'en-US' : 'en-GB', { timeZone: zone, hour: hour12 ? 'numeric' : '2-digit', minute: '2-digit', hour12: hour12 }).format(new Date(ms));
    } catch (e) {
      return new Date(ms).toISOString().slice(11, 16);
    }
  }
  function km(m) { return m < 1000 ? Math.round(m) + ' m' : (m / 1000).toFixed(1) + ' km'; }
  function ago(ms) {
    var s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    return s < 120 ? s + ' s ago' : s < 7200 ? Math.round(s / 60) + ' min ago' : Math.round(s / 3600) + ' h ago';
  }
  /* The learned pace (actual / planned time) as a person says it. */
  function paceWords(p) {
    if (!p || Math.abs(p - 1) < 0.05) return 'on the planned pace';
    var pct = Math.round(Math.abs(p - 1) * 100);
    return p > 1 ? pct + '% slower than planned' : pct + '% faster than planned';
  }

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
    map.fit(pts, 1000);
    fitted = true;
  }

  // The scene: each route's line, start and stops; drivers; the "near here" ring.
  function drawRoutes() {
    var lines = {}, stops = {};
    Object.keys(routes).sort().forEach(function (id) {
      var r = routes[id], sel = id === selected;
      lines[id] = { type: 'line', cls: 'route' + (sel ? ' sel' : ''), pts: r.path };
      if (r.start) stops[id + '/start'] = { type: 'square', cls: 'depot', lat: r.start.lat, lon: r.start.lon, title: 'Start of ' + r.route_id };
      r.stops.forEach(function (s, i) {
        stops[id + '/stop/' + s.id] = {
          type: 'dot', cls: 'stop st-' + s.state, r: sel ? 7 : 5.5, lat: s.lat, lon: s.lon,
          data: { route: id, stop: s.id },
          title: r.route_id + ' ' + s.id + (s.address ? ', ' + s.address : '') + ': ' + stateWord(s.state) + (s.eta_text ? ', ETA ' + s.eta_text : ''),
          // The selected route's stops are labelled: their order and address.
          label: sel ? (i + 1) + ' · ' + (s.address || s.id) : null,
          onclick: function () { selectRoute(id); }
        };
      });
    });
    map.replace('routes', lines);
    map.replace('stops', stops);
  }

  function drawDriver(id) {
    var d = drivers[id];
    map.set('markers', 'd:' + id, {
      type: 'driver', name: d.name, lat: d.position.lat, lon: d.position.lon,
      cls: driverRoute[id] && driverRoute[id] === selected ? 'sel' : '',
      data: { driver: id },
      onclick: function () { selectDriver(id); }
    });
  }

  function drawNear() {
    if (!near) { map.remove('overlay', 'near'); return; }
    map.set('overlay', 'near', { type: 'ring', cls: 'near', lat: near.lat, lon: near.lon, radius_m: near.r });
  }

  function drawAll() {
    drawRoutes();
    Object.keys(drivers).forEach(drawDriver);
    drawNear();
  }

  function renderDrivers() {
    var ul = clearList('drivers');
    var ids = Object.keys(drivers).sort();
    if (!ids.length) text(li(ul, 'muted empty'), 'No driver has sent a position yet.');
    ids.forEach(function (id) {
      var d = drivers[id], r = routes[driverRoute[id]];
      var item = li(ul, driverRoute[id] && driverRoute[id] === selected ? 'sel' : '');
      item.setAttribute('data-driver', id);
      var speed = d.speed_mps != null ? ' · ' + Math.round(d.speed_mps * 3.6) + ' km/h' : '';
      var prog = r ? ' · ' + r.route_id + ', ' + r.done + ' of ' + r.stops.length + ' stops done' + (r.stalled ? ' · stalled' : '') + (r.off_route ? ' · off route' : '') : '';
      action(item, d.name + (d.vehicle ? ' (' + d.vehicle + ')' : '') + prog + speed + ' · seen ' + ago(d.position.t_ms), function () { selectDriver(id); });
    });
  }

  // Alerts, grouped per driver, newest first; each acknowledged or resolved here.
  function loadAlerts() {
    return fetch('/dispatch/alerts', { credentials: 'same-origin' }).then(function (r) {
      return r.ok ? r.json() : { items: [] };
    }).then(function (x) { renderAlerts(x.items); }, function () {});
  }
  var alertTimer = null;
  function alertsSoon() {
    if (!alertTimer) alertTimer = setTimeout(function () { alertTimer = null; loadAlerts(); }, 300);
  }
  function handle(id, verb, button, then) {
    button.disabled = true;
    fetch('/dispatch/alerts/' + id + '/' + verb, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' }, body: '{}'
    }).then(then, then);
  }
  function renderAlerts(list) {
    var box = $('alerts');
    while (box.firstChild) box.removeChild(box.firstChild);
    box.setAttribute('data-loaded', '1');
    text($('alert-count'), list.length ? '(' + list.length + ')' : '');
    if (!list.length) { text(box.appendChild(document.createElement('p')), 'No open alerts.').className = 'muted empty'; return; }
    var groups = {}, order = [];
    list.forEach(function (a) {
      if (!groups[a.driver]) { groups[a.driver] = []; order.push(a.driver); }
      groups[a.driver].push(a);
    });
    order.forEach(function (d) {
      var g = box.appendChild(document.createElement('section'));
      g.className = 'alert-group';
      g.setAttribute('data-driver', d);
      var h = g.appendChild(document.createElement('h3'));
      action(h, groups[d][0].driver_name + ' · ' + groups[d].length + ' alert' + (groups[d].length > 1 ? 's' : ''), function () { selectDriver(d); });
      var ol = g.appendChild(document.createElement('ol'));
      ol.className = 'alerts';
      groups[d].forEach(function (a) {
        var item = li(ol, 'al-' + a.state + (a.active ? '' : ' al-over'));
        item.setAttribute('data-alert', a.id);
        text(item.appendChild(document.createElement('time')), a.time);
        var words = a.text + ' (' + a.route_id + ')';
        if (!a.active) words += ' · no longer the case';
        if (a.state === 'acknowledged') words += ' · acknowledged by ' + a.handled_by;
        item.appendChild(document.createTextNode(words + ' '));
        if (a.state === 'open') action(item, 'Acknowledge', function (ev) { handle(a.id, 'acknowledge', ev.target, loadAlerts); }, 'act-acknowledge');
        action(item, 'Resolve', function (ev) { handle(a.id, 'resolve', ev.target, loadAlerts); }, 'act-resolve');
      });
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
      var then = function () { loadExceptions(); loadAlerts(); };
      if (x.state === 'open') action(item, 'Acknowledge', function (ev) { handle(x.alert_id, 'acknowledge', ev.target, then); }, 'act-acknowledge');
      action(item, 'Resolve', function (ev) { handle(x.alert_id, 'resolve', ev.target, then); }, 'act-resolve');
    });
  }

  // Messages no provider took (dead letters): retried or dismissed through the API.
  function renderUndelivered(list) {
    $('undelivered-card').hidden = !list.length;
    var ol = clearList('undelivered');
    list.forEach(function (u) { text(li(ol), u.about + ' · ' + u.channel + ' to ' + u.to + ' · ' + u.error); });
  }

  function renderRoute() {
    var r = routes[selected];
    $('route-card').hidden = !r && !closed;
    if (!r && closed) {
      // A closed route: its trail can be played back; its stops are in the history.
      text($('route-id'), closed + ' (closed)');
      text($('route-meta'), 'Closed: its trail can be played back.');
      clearList('route-stops');
      return;
    }
    if (!r) return;
    text($('route-id'), r.route_id + ' · ' + r.driver_name);
    var meta = r.finished_ms ? 'Finished ' + hhmm(r.finished_ms) : r.started_ms ? 'Started ' + hhmm(r.started_ms) : 'Not started';
    meta += ' · ' + r.done + ' of ' + r.stops.length + ' stops done';
    if (r.progress_m != null) meta += ' · ' + km(r.progress_m) + ' along';
    if (r.started_ms) meta += ' · ' + paceWords(r.pace);
    if (r.off_route) meta += ' · off route';
    if (r.stalled) meta += ' · stalled';
    text($('route-meta'), meta);
    var ol = clearList('route-stops');
    r.stops.forEach(function (s, i) {
      var item = li(ol);
      item.appendChild(document.createElement('i')).className = 'st-' + s.state;
      var when = s.arrived_ms ? 'arrived ' + hhmm(s.arrived_ms) : s.eta_text ? 'ETA ' + s.eta_text : '';
      var what = (i + 1) + '. ' + (s.address ? s.address + ' (' + s.id + ')' : s.id) + ' · ' + stateWord(s.state) + (when ? ' · ' + when : '') + (s.parcels ? ' · ' + s.parcels + ' parcel' + (s.parcels > 1 ? 's' : '') : '');
      item.appendChild(document.createTextNode(what));
    });
  }

  function selectRoute(id) {
    selected = id;
    closed = null;
    stopPlayback();
    // Fresh progress and ETAs for the route (the stream's summaries may be a few seconds old).
    fetch('/dispatch/routes/' + encodeURIComponent(id), { credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (r) { if (r) setRoute(r); renderRoute(); drawAll(); renderDrivers(); });
  }

  function selectDriver(id) {
    var rid = driverRoute[id];
    var d = drivers[id];
    if (d) map.fit([[d.position.lat, d.position.lon]], 800);
    if (!rid) { selected = null; closed = null; stopPlayback(); renderRoute(); drawAll(); renderDrivers(); return; }
    selectRoute(rid);
  }

  function setRoute(r) {
    routes[r.route_id] = r;
    driverRoute[r.driver] = r.route_id;
  }

  // Playback: the selected route's trail drawn on the map, a marker moving along it. Each
  // start is a generation: an answer or a timer of an older one does nothing.
  var play = null;  // {points, i, timer, route}
  var generation = 0;
  var closed = null;  // a closed route found by search: only its playback is shown
  function stopPlayback() {
    generation++;
    if (play && play.timer) clearInterval(play.timer);
    play = null;
    $('play').disabled = false;
    map.remove('overlay', 'trail');
    map.remove('markers', 'play');
    $('play-pos').hidden = true;
    text($('play-time'), '');
    text($('play'), 'Play back the route');
  }
  function showPlayback(i) {
    var p = play.points[i];
    play.i = i;
    $('play-pos').value = i;
    map.set('markers', 'play', { type: 'dot', cls: 'play-dot', r: 7, lat: p[1], lon: p[2], title: 'Played back: ' + hhmm(p[0]) });
    text($('play-time'), hhmm(p[0]) + ' (' + (i + 1) + ' of ' + play.points.length + ')');
  }
  function startPlayback(routeId) {
    stopPlayback();
    var gen = generation;
    $('play').disabled = true;
    text($('play-time'), 'Loading…');
    fetch('/dispatch/routes/' + encodeURIComponent(routeId) + '/trail', { credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.json() : null; }, function () { return null; })
      .then(function (t) {
        if (gen !== generation) return;
        $('play').disabled = false;
        if (!t || !t.points.length) { text($('play-time'), 'No trail recorded for this route.'); return; }
        var mine = play = { points: t.points, i: 0, route: routeId };
        var pts = t.points.map(function (p) { return [p[1], p[2]]; });
        map.set('overlay', 'trail', { type: 'line', cls: 'trail', pts: pts });
        map.fit(pts, 500);
        var slider = $('play-pos');
        slider.max = t.points.length - 1;
        slider.hidden = false;
        text($('play'), 'Stop playback');
        showPlayback(0);
        var step = Math.max(1, Math.round(t.points.length / 150));
        mine.timer = setInterval(function () {
          if (play !== mine || mine.i >= mine.points.length - 1) { clearInterval(mine.timer); mine.timer = null; return; }
          showPlayback(Math.min(mine.points.length - 1, mine.i + step));
        }, 100);
      });
  }
  $('play').addEventListener('click', function () {
    if (play) stopPlayback(); else if (selected || closed) startPlayback(selected || closed);
  });
  $('play-pos').addEventListener('input', function (ev) {
    if (!play) return;
    if (play.timer) { clearInterval(play.timer); play.timer = null; }
    showPlayback(+ev.target.value);
  });

  // Search: drivers, routes and parcels of the depot.
  $('search-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var q = $('search').value.trim();
    var ol = clearList('search-results');
    $('search-card').hidden = false;
    if (q.length < 2) { text(li(ol, 'muted'), 'Type at least 2 characters.'); return; }
    fetch('/dispatch/search?q=' + encodeURIComponent(q), { credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.json() : { items: [] }; })
      .then(function (x) {
        if (!x.items.length) text(li(ol, 'muted'), 'Nothing found for “' + q + '”.');
        x.items.forEach(function (f) {
          var item = li(ol);
          item.setAttribute('data-kind', f.kind);
          action(item, f.label, function () {
            if (f.kind === 'driver' && !f.route_id) { selectDriver(f.id); return; }
            if (f.live) selectRoute(f.route_id);
            else if (f.route_id) { selected = null; closed = f.route_id; renderRoute(); drawAll(); startPlayback(f.route_id); }
          });
        });
      });
  });

  function onMapClick(lat, lon) {
    var r = +$('radius').value;
    near = { lat: lat, lon: lon, r: r };
    drawNear();
    var q = '/dispatch/nearby?lat=' + lat.toFixed(6) + '&lon=' + lon.toFixed(6) + '&radius_m=' + r;
    fetch(q, { credentials: 'same-origin' }).then(function (x) { return x.json(); }).then(function (ans) {
      $('near-card').hidden = false;
      var ol = clearList('near');
      if (!ans.drivers || !ans.drivers.length) text(li(ol, 'muted'), 'No driver within ' + km(r) + '.');
      (ans.drivers || []).forEach(function (d) {
        action(li(ol), d.name + ' · ' + km(d.distance_m) + ' away', function () { selectDriver(d.id); });
      });
      if (ans.truncated) text(li(ol, 'muted'), 'More drivers not listed.');
    });
  }
  map.onclick = onMapClick;

  $('zoom-in').addEventListener('click', function () { map.zoomBy(0.7); });
  $('zoom-out').addEventListener('click', function () { map.zoomBy(1.4); });
  $('fit').addEventListener('click', fit);

  function load() {
    return fetch('/dispatch/state', { credentials: 'same-origin' }).then(function (r) {
      if (!r.ok) throw new Error(r.status === 401 ? 'This link has expired.' : 'Not allowed.');
      return r.json();
    }).then(function (st) {
      offset = st.offset;
      zone = st.time_zone || zone;
      hour12 = !!st.hour12;
      drivers = {};
      routes = {};
      driverRoute = {};
      st.drivers.forEach(function (d) { drivers[d.id] = d; });
      st.routes.forEach(setRoute);
      renderUndelivered(st.undelivered || []);
      map.replace('markers', play ? { play: map.items.markers.play } : {});
      if (!fitted) fit();
      drawAll();
      renderDrivers();
      renderRoute();
      loadAlerts();
      loadExceptions();
    });
  }

  var conn = $('conn');
  function showConn(t, ok) { text(conn, ok ? 'live' : t); conn.className = ok ? 'conn ok' : 'conn'; }

  setInterval(renderDrivers, 5000);
  load().then(function () {
    MilepostLive.open('/dispatch/events', offset, {
      positions: function (list) {
        var fresh = false;
        list.forEach(function (d) { if (!drivers[d.id]) fresh = true; drivers[d.id] = d; });
        if (fresh && !fitted) fit();
        if (fresh) drawAll(); else list.forEach(function (d) { drawDriver(d.id); });
        renderDrivers();
      },
      route: function (r) {
        setRoute(r);
        drawRoutes();
        if (selected) renderRoute();
        renderDrivers();
      },
      dispatch: function (a) {
        if (!a.alert) return;
        alertsSoon();
        if (a.kind === 'AttemptFailed') loadExceptions();
      },
      resync: function () { load(); }
    }, showConn, '/dispatch/state');
  }, function (err) { showConn(err.message); });
})();

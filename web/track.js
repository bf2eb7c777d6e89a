/* The recipient's tracking page. The server rendered the current state; this keeps it live
   from the event stream (/t/{tracking}/events). Event ids are feed offsets: when the connection
   drops, the browser reconnects with Last-Event-ID and gets exactly the milestones it missed.
   All text goes into the page through textContent, never as markup. */
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var boot = JSON.parse($('boot').textContent);
  var base = boot.base;
  var view = boot.view;
  var offset = view.offset;
  var position = view.position;
  var dest = view.destination;
  var seen = {};
  var TIMELINE_MAX = 40;
  view.timeline.forEach(function (m) { seen[m.offset] = true; });

  // The token now lives in an HttpOnly cookie: take it out of the address bar and history.
  if (/[?&]token=/.test(location.search)) history.replaceState(null, '', location.pathname);

  var STATE_CLASS = { Planned: 'planned', OutForDelivery: 'out', ArrivingSoon: 'soon', Arrived: 'arrived', Delivered: 'delivered', Failed: 'failed' };

  function setText(id, text) { $(id).textContent = text == null ? '' : text; }

  // The zone the page's times are in (the depot's carrier's), from the latest status.
  var zone = (view.status && view.status.time_zone) || 'UTC';
  // And its clock: 12-hour (`2:05:03 PM`) where the carrier's locale reads one.
  var hour12 = !!(view.status && view.status.hour12);

  /** `HH:MM:SS` of `ms` in the page's zone. */
  function clock(ms) {
    try {
      return new Intl.DateTimeFormat(hour12 ? 'en-US' : 'en-GB', { timeZone: zone, hour: hour12 ? 'numeric' : '2-digit', minute: '2-digit', second: '2-digit', hour12: hour12 }).format(new Date(ms));
    } catch (e) {
      return new Date(ms).toISOString().slice(11, 19);
    }
  }

  function renderStatus(s) {
    if (s.time_zone) zone = s.time_zone;
    hour12 = !!s.hour12;
    document.querySelectorAll('.zone').forEach(function (z) { if (s.zone_label) z.textContent = s.zone_label; });
    setText('status-line', s.status_line);
    document.body.className = 'track state-' + (STATE_CLASS[s.state] || 'out');
    $('window').hidden = !s.window_text;
    setText('window-text', s.window_text);
    $('driver').hidden = !s.driver;
    if (s.driver) {
      setText('driver-name', s.driver.first_name);
      setText('driver-vehicle', s.driver.vehicle || '');
      var photo = $('driver-photo');
      photo.hidden = !s.driver.photo_url;
      if (s.driver.photo_url && photo.getAttribute('src') !== s.driver.photo_url) photo.src = s.driver.photo_url;
    }
    var list = $('proof-list');
    while (list.firstChild) list.removeChild(list.firstChild);
    $('proof').hidden = !s.proof;
    if (s.proof) {
      var items = [];
      if (s.proof.photo_sha256) items.push(['Doorstep photo ', s.proof.photo_sha256]);
      if (s.proof.signature_sha256) items.push(['Signature ', s.proof.signature_sha256]);
      items.forEach(function (it) {
        var li = document.createElement('li'), code = document.createElement('code');
        li.textContent = it[0];
        code.textContent = it[1].slice(0, 12) + '…';
        code.title = 'SHA-256 ' + it[1];
        li.appendChild(code);
        list.appendChild(li);
      });
      if (s.proof.otp_verified) { var li = document.createElement('li'); li.textContent = 'Delivery code checked'; list.appendChild(li); }
      if (s.received_by) { var rb = document.createElement('li'); rb.textContent = 'Received by ' + s.received_by; list.appendChild(rb); }
      if (!list.firstChild) { var h = document.createElement('li'); h.textContent = 'Handed over'; list.appendChild(h); }
    }
    $('failure').hidden = !s.failure;
    setText('failure-text', s.failure);
    var closed = s.withdrawn || s.state === 'Delivered' || s.state === 'Failed' || s.state === 'Returned';
    $('instr').hidden = closed;
    // After a failed attempt, a change is the recipient's wish for the next one.
    $('change').hidden = closed && s.state !== 'Failed';
    $('msg-form').hidden = closed;
    $('change-text').hidden = !s.change;
    setText('change-text', s.change);
  }

  // The thread with the driver: messages come from the event stream and from our own posts.
  var said = {};
  function addMessage(m) {
    if (said[m.offset]) return;
    said[m.offset] = true;
    var li = document.createElement('li'), t = document.createElement('time'), span = document.createElement('span');
    li.className = 'from-' + m.from;
    t.textContent = m.time;
    span.textContent = m.text;
    li.appendChild(t);
    li.appendChild(document.createTextNode(' '));
    li.appendChild(span);
    $('messages').appendChild(li);
    $('thread').hidden = false;
  }
  (view.messages || []).forEach(function (m) { said[m.offset] = true; });

  function post(path, body, status, done) {
    status.textContent = 'Sending…';
    fetch(base + path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'same-origin'
    }).then(function (r) {
      return r.json().then(function (j) { return { ok: r.ok, j: j }; }, function () { return { ok: r.ok, j: {} }; });
    }).then(function (res) {
      if (!res.ok) { status.textContent = 'Not sent: ' + (res.j.message || 'please try again'); return; }
      done(res.j);
    }, function () { status.textContent = 'Not sent: no connection.'; });
  }

  function addMilestone(m) {
    if (!m.milestone || seen[m.offset]) return;
    seen[m.offset] = true;
    var ol = $('timeline');
    var empty = ol.querySelector('.empty');
    if (empty) ol.removeChild(empty);
    var li = document.createElement('li'), t = document.createElement('time'), span = document.createElement('span');
    li.className = 'ev-' + m.kind;
    t.textContent = m.time;
    span.textContent = m.text;
    li.appendChild(t);
    li.appendChild(document.createTextNode(' '));
    li.appendChild(span);
    ol.insertBefore(li, ol.firstChild);
    while (ol.children.length > TIMELINE_MAX) ol.removeChild(ol.lastChild);
  }

  var map = null, mapNote = '';
  function renderMap() {
    var card = $('map-card');
    if (!position) { card.hidden = true; return; }
    card.hidden = false;
    if (!map) {
      map = MilepostMap.create($('map'), {
        interactive: false,
        onfallback: function (msg) { mapNote = msg; renderMap(); }
      });
    }
    var pts = [[position.lat, position.lon]];
    if (dest) pts.push([dest.lat, dest.lon]);
    map.fit(pts, 400);
    if (dest) {
      map.set('stops', 'home', { type: 'home', cls: 'home', lat: dest.lat, lon: dest.lon, title: 'Your address' });
      map.set('routes', 'line', { type: 'line', cls: 'route', pts: [[position.lat, position.lon], [dest.lat, dest.lon]] });
    }
    map.set('markers', 'van', { type: 'dot', cls: 'van', r: 8, lat: position.lat, lon: position.lon, title: 'Your driver' });
    var note = map.note();
    setText('map-note', 'Driver position at ' + clock(position.t_ms) + (note ? ' · ' + note : '') + (mapNote ? ' · ' + mapNote : ''));
  }

  renderMap();
  if (window.performance && performance.mark) performance.mark('milepost-live');

  // Live updates.
  var conn = $('conn');
  function showConn(text, ok) {
    conn.hidden = !text;
    conn.textContent = text || '';
    conn.className = ok ? 'conn ok' : 'conn';
  }
  MilepostLive.open(base + '/events', offset, {
    status: function (s) { renderStatus(s); },
    milestone: function (m) { if (m.offset > offset) offset = m.offset; addMilestone(m); },
    message: function (m) { if (m.offset > offset) offset = m.offset; addMessage(m); },
    position: function (p) { position = p; renderMap(); }
  }, function (text) { showConn(text); }, base + '/status');

  // Messages to the driver: logged, pushed to the driver's app; the answer is the thread.
  $('msg-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var input = $('msg-text'), st = $('msg-status');
    post('/messages', { text: input.value }, st, function (j) {
      (j.messages || []).forEach(addMessage);
      input.value = '';
      st.textContent = 'Sent.';
    });
  });

  // Changing the delivery: the choices on offer come from the gateway.
  var kind = $('change-kind'), slot = $('change-slot'), point = $('change-point');
  var nameIn = $('change-name'), whereIn = $('change-where');
  function option(sel, value, label) {
    var o = document.createElement('option');
    o.value = value;
    o.textContent = label;
    sel.appendChild(o);
  }
  fetch(base + '/delivery', { credentials: 'same-origin' }).then(function (r) { return r.ok ? r.json() : null; }).then(function (d) {
    if (!d) return;
    var o = d.offers;
    if (o.slots.length) {
      option(kind, 'reschedule', 'Another day or time');
      o.slots.forEach(function (sl) { option(slot, sl.start_ms + '-' + sl.end_ms, sl.label); });
    }
    if (o.safe_place) option(kind, 'safe_place', 'Leave it in a safe place');
    if (o.neighbour) option(kind, 'neighbour', 'Leave it with a neighbour');
    if (o.pickup_points.length) {
      option(kind, 'pickup_point', 'Collect it from a pickup point');
      o.pickup_points.forEach(function (p) { option(point, p.id, p.name + (p.address ? ', ' + p.address : '')); });
    }
  }, function () {});
  kind.addEventListener('change', function () {
    var k = kind.value;
    slot.hidden = k !== 'reschedule';
    point.hidden = k !== 'pickup_point';
    nameIn.hidden = k !== 'neighbour';
    whereIn.hidden = k !== 'neighbour' && k !== 'safe_place';
    whereIn.placeholder = k === 'neighbour' ? "Neighbour's address" : 'Where (e.g. behind the gate)';
  });
  $('change-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var k = kind.value, body = {}, st = $('change-msg');
    if (k === 'reschedule') {
      var w = slot.value.split('-');
      body.reschedule = { start_ms: Number(w[0]), end_ms: Number(w[1]) };
    } else if (k === 'safe_place') {
      body.safe_place = { place: whereIn.value };
    } else if (k === 'neighbour') {
      body.neighbour = { name: nameIn.value, address: whereIn.value };
    } else if (k === 'pickup_point') {
      body.pickup_point = { id: point.value };
    } else { st.textContent = 'Choose an option first.'; return; }
    post('/delivery', body, st, function (j) {
      st.textContent = 'Done: your driver has been told.';
      $('change-text').hidden = !j.change;
      setText('change-text', j.change);
    });
  });

  // Instructions for the driver: logged by the gateway and pushed to the driver's app.
  $('instr-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var msg = $('instr-msg');
    post('/instructions', { text: $('instr-text').value }, msg, function () {
      msg.textContent = 'Sent to your driver.';
    });
  });
})();

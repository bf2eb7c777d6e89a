/* Milepost live updates: one connection per page to its live stream (the same events over
   a WebSocket, or as server-sent events where a WebSocket cannot be opened). A WebSocket does
   not hold the page's load open, so screenshot tools and link previews finish loading.

   MilepostLive.open(path, after, on, status, probe): `path` is the stream (/t/{t}/events,
   /dispatch/events); `after` the feed offset the page's state covers; `on[name](data, id)`
   handles each event; `status(text, live)` shows the connection's state; `probe` a plain GET
   of the page's (its status URL). Events with an id move the cursor, so a reconnection
   resumes exactly after the last one seen. An `auth` event (the link expired) ends it.

   The server sends a `keepalive` every 20 s: a connection silent for SILENT_MS is taken for
   dead (a phone that changed networks keeps a half-open socket) and opened again. When
   handshakes keep failing, the probe tells why: 401, the link expired; an answer, the way to
   the gateway does not carry WebSockets (a proxy), so event streams are used, for the rest of
   the tab's life (sessionStorage); no answer, the gateway is away, so the page keeps trying.

   Each open stream is listed in MilepostLive.streams with `drop(ms)`: it closes the
   connection as a network loss would and holds the next attempt back `ms` (tests use it). */
(function (global) {
  'use strict';
  var FAILURES_BEFORE_PROBE = 3;
  var SILENT_MS = 50000;
  var PREFER = 'milepost-live';

  function prefersSse() {
    try { return global.sessionStorage.getItem(PREFER) === 'sse'; } catch (e) { return false; }
  }
  function rememberSse() {
    try { global.sessionStorage.setItem(PREFER, 'sse'); } catch (e) { /* storage off */ }
  }

  function open(path, after, on, status, probe) {
    var cursor = after, failures = 0, useSse = !global.WebSocket || prefersSse();
    var ended = false, delay = 1000, holdUntil = 0, current = null, watchdog = null;

    function end(text) { ended = true; status(text, false); if (current) current.close(); }

    function deliver(name, data, id) {
      // A resync starts over at its id (the page reloads its state); others move forward.
      if (id != null && (id > cursor || name === 'resync')) cursor = id;
      if (name === 'auth') { end('This link has expired: please open the latest one.'); return; }
      if (on[name]) on[name](data, id);
    }

    function retry() {
      if (ended) return;
      status('Reconnecting…', false);
      var wait = Math.max(delay, holdUntil - Date.now());
      setTimeout(connect, wait);
      delay = Math.min(delay * 2, 10000);
    }

    /* Handshakes keep failing: ask the page's plain URL why. */
    function diagnose() {
      if (!probe) { retry(); return; }
      fetch(probe, { credentials: 'same-origin' }).then(function (r) {
        if (r.status === 401) { end('This link has expired: please open the latest one.'); return; }
        useSse = true;
        rememberSse();
        retry();
      }, function () { retry(); });
    }

    function alive() {
      clearTimeout(watchdog);
      watchdog = setTimeout(function () { if (current) current.close(); }, SILENT_MS);
    }

    function viaWebSocket() {
      var url = (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + path + '?after=' + cursor;
      var ws = new WebSocket(url), opened = false;
      current = { close: function () { ws.close(); } };
      ws.onopen = function () { opened = true; failures = 0; delay = 1000; status('', true); alive(); };
      ws.onmessage = function (m) {
        alive();
        var msg;
        try { msg = JSON.parse(m.data); } catch (e) { return; }
        deliver(msg.event, msg.data, msg.id);
      };
      ws.onclose = function () {
        clearTimeout(watchdog);
        current = null;
        if (ended) return;
        if (!opened && ++failures >= FAILURES_BEFORE_PROBE) { failures = 0; diagnose(); return; }
        retry();
      };
    }

    function viaEventSource() {
      var es = new EventSource(path + '?after=' + cursor);
      current = { close: function () { es.close(); retry(); } };
      es.onopen = function () { delay = 1000; status('', true); };
      es.onerror = function () {
        // The browser reconnects by itself (with Last-Event-ID) unless the server refused.
        if (es.readyState === EventSource.CLOSED) { es.close(); current = null; diagnoseSse(); } else status('Reconnecting…', false);
      };
      ['status', 'milestone', 'message', 'position', 'positions', 'route', 'dispatch', 'resync', 'auth'].forEach(function (name) {
        es.addEventListener(name, function (e) {
          if (name === 'auth') es.close();
          deliver(name, JSON.parse(e.data), e.lastEventId ? +e.lastEventId : null);
        });
      });
    }

    /* An event stream the server refused: an expired link, or the gateway away. */
    function diagnoseSse() {
      if (!probe) { retry(); return; }
      fetch(probe, { credentials: 'same-origin' }).then(function (r) {
        if (r.status === 401) end('This link has expired: please open the latest one.'); else retry();
      }, function () { retry(); });
    }

    function connect() { if (!ended) { if (useSse) viaEventSource(); else viaWebSocket(); } }
    connect();
    var handle = {
      cursor: function () { return cursor; },
      drop: function (ms) { holdUntil = Date.now() + (ms || 0); if (current) current.close(); }
    };
    global.MilepostLive.streams.push(handle);
    return handle;
  }

  global.MilepostLive = { open: open, streams: [] };
})(window);

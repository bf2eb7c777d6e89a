/* Milepost live updates: one connection per page to its live stream (the same events over
   a WebSocket, or as server-sent events where a WebSocket cannot be opened). A WebSocket does
   not hold the page's load open, so screenshot tools and link previews finish loading.

   MilepostLive.open(path, after, on, status): `path` is the stream (/t/{t}/events,
   /dispatch/events); `after` the feed offset the page's state covers; `on[name](data, id)`
   handles each event; `status(text, live)` shows the connection's state. Events with an id
   move the cursor, so a reconnection resumes exactly after the last one seen. An `auth`
   event (the link expired) ends it. Returns { cursor(): the offset seen last }. */
(function (global) {
  'use strict';
  var FALLBACK_AFTER = 3;    // handshakes failing in a row before event streams are used

  function open(path, after, on, status) {
    var cursor = after, failures = 0, useSse = !global.WebSocket, ended = false, delay = 1000;

    function deliver(name, data, id) {
      // A resync starts over at its id (the page reloads its state); others move forward.
      if (id != null && (id > cursor || name === 'resync')) cursor = id;
      if (name === 'auth') { ended = true; status('This link has expired: please open the latest one.', false); }
      if (on[name]) on[name](data, id);
    }

    function retry(next) {
      if (ended) return;
      status('Reconnecting…', false);
      setTimeout(next, delay);
      delay = Math.min(delay * 2, 10000);
    }

    function viaWebSocket() {
      var url = (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + path + '?after=' + cursor;
      var ws = new WebSocket(url), opened = false;
      ws.onopen = function () { opened = true; failures = 0; delay = 1000; status('', true); };
      ws.onmessage = function (m) {
        var msg;
        try { msg = JSON.parse(m.data); } catch (e) { return; }
        deliver(msg.event, msg.data, msg.id);
      };
      ws.onclose = function () {
        if (ended) return;
        if (!opened && ++failures >= FALLBACK_AFTER) useSse = true;
        retry(connect);
      };
    }

    function viaEventSource() {
      var es = new EventSource(path + '?after=' + cursor);
      es.onopen = function () { delay = 1000; status('', true); };
      es.onerror = function () {
        // The browser reconnects by itself (with Last-Event-ID) unless the server refused.
        if (es.readyState === EventSource.CLOSED) { es.close(); retry(connect); } else status('Reconnecting…', false);
      };
      ['status', 'milestone', 'message', 'position', 'positions', 'route', 'dispatch', 'resync', 'auth'].forEach(function (name) {
        es.addEventListener(name, function (e) {
          var id = e.lastEventId ? +e.lastEventId : null;
          if (name === 'auth') es.close();
          deliver(name, JSON.parse(e.data), id);
        });
      });
    }

    function connect() { if (useSse) viaEventSource(); else viaWebSocket(); }
    connect();
    return { cursor: function () { return cursor; } };
  }

  global.MilepostLive = { open: open };
})(window);

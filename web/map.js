/* Milepost maps: plain SVG on a plain background. No tile server, no CDN, nothing fetched:
   a local equirectangular projection in metres around an origin (accurate to well under a
   percent across a city), a metric grid for scale, and markers sized in screen pixels. */
(function (global) {
  'use strict';
  var NS = 'http://www.w3.org/2000/svg';
  var M_PER_DEG_LAT = 110574;
  var M_PER_DEG_LON = 111320;

  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    if (attrs) {
      for (var k in attrs) {
        if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]);
      }
    }
    if (parent) parent.appendChild(e);
    return e;
  }

  /* A map in an <svg>. opts.interactive: wheel/buttons zoom, drag pans, click reports lat/lon. */
  function MapView(svg, opts) {
    this.svg = svg;
    this.opts = opts || {};
    this.origin = null;
    this.vb = { x: -500, y: -300, w: 1000, h: 600 };
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    this.grid = el('g', { 'class': 'grid' }, svg);
    this.layers = {};
    var names = ['routes', 'overlay', 'stops', 'markers'];
    for (var i = 0; i < names.length; i++) this.layers[names[i]] = el('g', { 'class': 'layer-' + names[i] }, svg);
    this.onview = null;
    this.onclick = null;
    if (this.opts.interactive) this._interact();
    // Keep the scale when the element changes size (rotation, window resize): same centre,
    // same units per pixel, the new aspect ratio; markers are redrawn at their pixel size.
    var self = this;
    this._size = this.screen();
    if (global.ResizeObserver) {
      new ResizeObserver(function () {
        var s = self.screen(), old = self._size, vb = self.vb;
        if (!self.origin || (s.w === old.w && s.h === old.h)) return;
        self._size = s;
        var k = Math.max(vb.w / old.w, vb.h / old.h);
        var cx = vb.x + vb.w / 2, cy = vb.y + vb.h / 2;
        self.setView({ x: cx - s.w * k / 2, y: cy - s.h * k / 2, w: s.w * k, h: s.h * k });
      }).observe(svg);
    }
  }

  MapView.prototype.setOrigin = function (lat, lon) {
    this.origin = { lat: lat, lon: lon, k: Math.cos(lat * Math.PI / 180) };
  };

  /* [x, y] in map units (metres east, metres south of the origin). */
  MapView.prototype.project = function (lat, lon) {
    var o = this.origin;
    return [(lon - o.lon) * M_PER_DEG_LON * o.k, -(lat - o.lat) * M_PER_DEG_LAT];
  };

  MapView.prototype.unproject = function (x, y) {
    var o = this.origin;
    return { lat: o.lat - y / M_PER_DEG_LAT, lon: o.lon + x / (M_PER_DEG_LON * o.k) };
  };

  /* The size of the drawing on screen, in CSS pixels. */
  MapView.prototype.screen = function () {
    var r = this.svg.getBoundingClientRect();
    return { w: r.width || 400, h: r.height || 220 };
  };

  /* Map units per screen pixel (the viewBox keeps the aspect ratio of the element). */
  MapView.prototype.upp = function () {
    var s = this.screen();
    return Math.max(this.vb.w / s.w, this.vb.h / s.h);
  };

  /* Shows every point ([lat, lon] pairs), at least minSpan metres across. */
  MapView.prototype.fit = function (points, minSpan) {
    if (!points.length) return;
    if (!this.origin) {
      var la = 0, lo = 0;
      for (var i = 0; i < points.length; i++) { la += points[i][0]; lo += points[i][1]; }
      this.setOrigin(la / points.length, lo / points.length);
    }
    var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (var j = 0; j < points.length; j++) {
      var p = this.project(points[j][0], points[j][1]);
      x0 = Math.min(x0, p[0]); x1 = Math.max(x1, p[0]);
      y0 = Math.min(y0, p[1]); y1 = Math.max(y1, p[1]);
    }
    var span = minSpan || 300;
    var w = Math.max(x1 - x0, span), h = Math.max(y1 - y0, span);
    var s = this.screen();
    var aspect = s.w / s.h;
    // Pad by 12% and match the element's aspect ratio so nothing is cut off.
    w *= 1.24; h *= 1.24;
    if (w / h < aspect) w = h * aspect; else h = w / aspect;
    var cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    this.setView({ x: cx - w / 2, y: cy - h / 2, w: w, h: h });
  };

  MapView.prototype.setView = function (vb) {
    this.vb = vb;
    this._size = this.screen();
    this.svg.setAttribute('viewBox', [vb.x, vb.y, vb.w, vb.h].map(function (v) { return v.toFixed(1); }).join(' '));
    this._grid();
    if (this.onview) this.onview();
  };

  MapView.prototype.zoom = function (f, cx, cy) {
    var vb = this.vb;
    if (cx === undefined) { cx = vb.x + vb.w / 2; cy = vb.y + vb.h / 2; }
    var w = Math.min(Math.max(vb.w * f, 50), 2e6), k = w / vb.w;
    this.setView({ x: cx - (cx - vb.x) * k, y: cy - (cy - vb.y) * k, w: w, h: vb.h * k });
  };

  /* A metric grid: lines every 1, 2 or 5 x 10^n metres, about 6 across the view. */
  MapView.prototype._grid = function () {
    var g = this.grid, vb = this.vb;
    while (g.firstChild) g.removeChild(g.firstChild);
    var raw = vb.w / 6, p = Math.pow(10, Math.floor(Math.log10(raw))), step = p;
    if (raw / p >= 5) step = 5 * p; else if (raw / p >= 2) step = 2 * p;
    var d = '';
    for (var x = Math.floor(vb.x / step) * step; x <= vb.x + vb.w; x += step) d += 'M' + x.toFixed(1) + ' ' + vb.y.toFixed(1) + 'V' + (vb.y + vb.h).toFixed(1);
    for (var y = Math.floor(vb.y / step) * step; y <= vb.y + vb.h; y += step) d += 'M' + vb.x.toFixed(1) + ' ' + y.toFixed(1) + 'H' + (vb.x + vb.w).toFixed(1);
    el('path', { d: d }, g);
    this.gridStep = step;
  };

  MapView.prototype.clear = function (layer) {
    var g = this.layers[layer];
    while (g.firstChild) g.removeChild(g.firstChild);
    return g;
  };

  /* The map point under a pointer event. */
  MapView.prototype.pointAt = function (ev) {
    var r = this.svg.getBoundingClientRect(), vb = this.vb;
    var k = this.upp();
    // The viewBox is centred in the element (preserveAspectRatio xMidYMid meet).
    var ox = (r.width - vb.w / k) / 2, oy = (r.height - vb.h / k) / 2;
    return [vb.x + (ev.clientX - r.left - ox) * k, vb.y + (ev.clientY - r.top - oy) * k];
  };

  MapView.prototype._interact = function () {
    var self = this, svg = this.svg, drag = null;
    svg.addEventListener('wheel', function (ev) {
      ev.preventDefault();
      var p = self.pointAt(ev);
      self.zoom(ev.deltaY > 0 ? 1.25 : 0.8, p[0], p[1]);
    }, { passive: false });
    svg.addEventListener('pointerdown', function (ev) {
      drag = { x: ev.clientX, y: ev.clientY, vb: self.vb, moved: false, target: ev.target };
    });
    svg.addEventListener('pointermove', function (ev) {
      if (!drag) return;
      var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 5) return;
      if (!drag.moved) { drag.moved = true; try { svg.setPointerCapture(ev.pointerId); } catch (e) { /* not capturable */ } }
      var k = self.upp();
      self.setView({ x: drag.vb.x - dx * k, y: drag.vb.y - dy * k, w: drag.vb.w, h: drag.vb.h });
    });
    svg.addEventListener('pointerup', function (ev) {
      var d = drag;
      drag = null;
      if (!d || d.moved || !self.onclick || !self.origin) return;
      var p = self.pointAt(ev);
      var ll = self.unproject(p[0], p[1]);
      self.onclick(ll.lat, ll.lon, d.target);
    });
    svg.addEventListener('pointercancel', function () { drag = null; });
  };

  global.MilepostMap = { MapView: MapView, el: el };
})(window);

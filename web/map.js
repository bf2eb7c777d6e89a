/* Milepost maps: one drawing API over two views.

   A page draws a *scene*: items (route lines, stops, drivers, rings) by layer and key, set,
   replaced and removed as the state changes (MilepostMap.create). The scene is drawn by
   - the plain view (PlainView): SVG on a plain background, nothing fetched: a local
     equirectangular projection in metres around an origin (accurate to well under a percent
     across a city), a metric grid for scale, markers sized in screen pixels;
   - the street view (StreetView): Leaflet (vendored, web/vendor) over the raster tiles the
     page's map element names (data-tiles, data-attribution, data-max-zoom: `[web.map]`).
   With no tile source the plain view is used. A tile source that fails before any tile has
   loaded (or loads none within TILE_PATIENCE_MS) makes the scene fall back to the plain view,
   and the page is told (opts.onfallback) so it can say so. */
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


  var LAYERS = ['routes', 'overlay', 'stops', 'markers'];
  var TILE_PATIENCE_MS = 8000;

  function setData(node, data) {
    if (!data) return;
    for (var k in data) {
      if (Object.prototype.hasOwnProperty.call(data, k)) node.setAttribute('data-' + k, data[k]);
    }
  }

  /* The plain view of a scene: an <svg> in the box, redrawn on every change of view. */
  function PlainView(box, scene) {
    var svg = el('svg', { 'class': 'map-svg', role: 'img', 'aria-label': box.getAttribute('data-label') || 'Map' });
    box.appendChild(svg);
    this.box = box;
    this.scene = scene;
    this.map = new MapView(svg, { interactive: scene.opts.interactive });
    this.nodes = {};   // layer \u0001 key -> the item's SVG nodes (a driver's <g> is kept: moves animate)
    var self = this;
    this.map.onview = function () { self.redraw(); };
    this.map.onclick = function (lat, lon) { if (scene.onclick) scene.onclick(lat, lon); };
  }

  PlainView.prototype.fit = function (points, minSpan) { this.map.origin = null; this.map.fit(points, minSpan); };
  PlainView.prototype.zoomBy = function (f) { if (this.map.origin) this.map.zoom(f); };
  PlainView.prototype.note = function () { return this.map.gridStep ? 'grid squares ' + this.map.gridStep + ' m' : ''; };
  PlainView.prototype.destroy = function () { this.box.removeChild(this.map.svg); };

  PlainView.prototype.redraw = function () {
    var self = this;
    if (!this.map.origin) return;
    LAYERS.forEach(function (layer) {
      var items = self.scene.items[layer];
      Object.keys(items).sort().forEach(function (key) { self.draw(layer, key, items[key]); });
    });
  };

  /* Draws one item anew (a driver is moved instead: its move is animated). */
  PlainView.prototype.draw = function (layer, key, it) {
    var map = this.map, id = layer + '\u0001' + key;
    if (!map.origin) return;
    var g = map.layers[layer], k = map.upp(), q, node;
    if (it.type === 'driver') { this.drawDriver(id, it, k); return; }
    this.forget(id);
    var made = this.nodes[id] = [];
    if (it.type === 'line') {
      if (it.pts.length < 2) return;
      var d = it.pts.map(function (p, i) { var r = map.project(p[0], p[1]); return (i ? 'L' : 'M') + r[0].toFixed(1) + ' ' + r[1].toFixed(1); }).join('');
      node = el('path', { 'class': it.cls, d: d }, g);
    } else {
      q = map.project(it.lat, it.lon);
      if (it.type === 'ring') {
        node = el('circle', { 'class': it.cls, cx: q[0], cy: q[1], r: it.radius_m }, g);
      } else if (it.type === 'square') {
        var h = (it.size || 6) * k;
        node = el('rect', { 'class': it.cls, x: q[0] - h, y: q[1] - h, width: 2 * h, height: 2 * h, rx: h / 3 }, g);
      } else if (it.type === 'home') {
        var s = 9 * k;
        node = el('path', { 'class': it.cls, d: 'M' + (q[0] - s) + ' ' + (q[1] + s) + 'h' + 2 * s + 'v' + (-1.1 * s) + 'l' + (-s) + ' ' + (-s) + 'l' + (-s) + ' ' + s + 'z' }, g);
      } else {
        node = el('circle', { 'class': it.cls, cx: q[0].toFixed(1), cy: q[1].toFixed(1), r: (it.r || 5.5) * k }, g);
      }
      if (it.label) {
        var t = el('text', { 'class': 'label', x: q[0] + ((it.r || 5.5) + 3) * k, y: q[1] + 4 * k, 'font-size': 11 * k }, g);
        t.textContent = it.label;
        made.push(t);
      }
    }
    made.push(node);
    setData(node, it.data);
    if (it.title) el('title', null, node).textContent = it.title;
    if (it.onclick) {
      node.style.cursor = 'pointer';
      node.addEventListener('pointerup', function (ev) { ev.stopPropagation(); it.onclick(); });
      node.addEventListener('pointerdown', function (ev) { ev.stopPropagation(); });
    }
  };

  PlainView.prototype.forget = function (id) {
    (this.nodes[id] || []).forEach(function (n) { n.remove(); });
    delete this.nodes[id];
  };

  PlainView.prototype.drawDriver = function (id, it, k) {
    var map = this.map, g = (this.nodes[id] || [])[0];
    if (!g) {
      g = el('g', null, map.layers.markers);
      this.nodes[id] = [g];
      el('circle', { cx: 0, cy: 0 }, g);
      el('text', { x: 0, y: 0 }, g);
      g.addEventListener('pointerdown', function (ev) { ev.stopPropagation(); });
      g.addEventListener('pointerup', function (ev) { ev.stopPropagation(); if (g._click) g._click(); });
    }
    g._click = it.onclick;
    var c = g.firstChild, t = g.lastChild;
    c.setAttribute('r', 8 * k);
    t.setAttribute('x', 11 * k);
    t.setAttribute('y', 4 * k);
    t.setAttribute('font-size', 12 * k);
    t.textContent = it.name || '';
    g.setAttribute('class', 'drv' + (it.cls ? ' ' + it.cls : ''));
    setData(g, it.data);
    var q = map.project(it.lat, it.lon);
    // CSS transform in SVG user units: the position change is animated by a transition.
    g.style.transform = 'translate(' + q[0].toFixed(1) + 'px,' + q[1].toFixed(1) + 'px)';
    g.setAttribute('data-x', q[0].toFixed(1));
    g.setAttribute('data-y', q[1].toFixed(1));
  };

  PlainView.prototype.remove = function (layer, key) { this.forget(layer + '\u0001' + key); };

  /* The street view: Leaflet over raster tiles. */
  function StreetView(box, scene, src) {
    var L = global.L;
    this.box = box;
    this.scene = scene;
    this.layers = {};  // layer -> key -> Leaflet layer
    var inter = !!scene.opts.interactive;
    this.host = document.createElement('div');
    this.host.className = 'map-leaflet';
    box.appendChild(this.host);
    this.map = L.map(this.host, {
      zoomControl: false, attributionControl: true, dragging: inter, scrollWheelZoom: inter,
      doubleClickZoom: inter, boxZoom: inter, keyboard: inter, touchZoom: inter, tap: inter
    });
    this.map.attributionControl.setPrefix(false);
    // The page's address holds no secret once the script runs (the token is taken out of it),
    // but only the origin goes out with tile requests; some providers (OpenStreetMap's) refuse
    // requests with no Referer at all.
    this.tiles = L.tileLayer(src.url, { maxZoom: src.maxZoom, attribution: src.attribution, crossOrigin: false, referrerPolicy: 'strict-origin-when-cross-origin' });
    var self = this;
    this.loaded = 0;
    this.failed = 0;
    this.tiles.on('tileload', function () { self.loaded++; box.setAttribute('data-tiles-loaded', self.loaded); });
    this.tiles.on('tileerror', function () {
      self.failed++;
      if (!self.loaded && self.failed >= 2) scene.fallback();
    });
    this.patience = null;
    this.map.on('click', function (e) { if (scene.onclick) scene.onclick(e.latlng.lat, e.latlng.lng); });
    // No view (and no tile asked) until the first fit: a world view would fetch tiles a
    // regional source does not have.
    this.map.setView([0, 0], 2, { animate: false });
    LAYERS.forEach(function (l) { self.layers[l] = {}; });
  }

  StreetView.prototype.fit = function (points, minSpan) {
    if (!points.length) return;
    var L = global.L, b = L.latLngBounds(points), c = b.getCenter();
    var half = (minSpan || 300) / 2, dlat = half / M_PER_DEG_LAT, dlon = half / (M_PER_DEG_LON * Math.cos(c.lat * Math.PI / 180));
    b.extend([c.lat - dlat, c.lng - dlon]).extend([c.lat + dlat, c.lng + dlon]);
    this.map.fitBounds(b.pad(0.12), { animate: false });
    if (!this.patience) {
      var self = this, scene = this.scene;
      this.tiles.addTo(this.map);
      this.patience = setTimeout(function () { if (!self.loaded) scene.fallback(); }, TILE_PATIENCE_MS);
    }
  };
  StreetView.prototype.zoomBy = function (f) { if (f < 1) this.map.zoomIn(); else this.map.zoomOut(); };
  StreetView.prototype.note = function () { return ''; };
  StreetView.prototype.destroy = function () {
    clearTimeout(this.patience);
    this.map.remove();
    this.box.removeChild(this.host);
  };
  StreetView.prototype.redraw = function () {
    var self = this;
    LAYERS.forEach(function (layer) {
      var items = self.scene.items[layer];
      Object.keys(items).sort().forEach(function (key) { self.draw(layer, key, items[key]); });
    });
  };

  /* `t` as an element holding only text (Leaflet takes an element as a tooltip's content). */
  function textNode(t) {
    var s = document.createElement('span');
    s.textContent = t;
    return s;
  }

  function driverIcon(it) {
    var L = global.L, box = document.createElement('div'), dot = document.createElement('span'), name = document.createElement('span');
    dot.className = 'dot';
    name.className = 'name';
    name.textContent = it.name || '';
    box.appendChild(dot);
    box.appendChild(name);
    return L.divIcon({ className: 'drv-icon' + (it.cls ? ' ' + it.cls : ''), html: box, iconSize: [18, 18], iconAnchor: [9, 9] });
  }

  StreetView.prototype.draw = function (layer, key, it) {
    var L = global.L, old = this.layers[layer][key], lay;
    if (it.type === 'driver' && old) {
      old.setLatLng([it.lat, it.lon]);
      // A new icon is a new element (keyboard focus would be lost): only when the look changes.
      var look = (it.name || '') + '\u0001' + (it.cls || '');
      if (old._look !== look) { old.setIcon(driverIcon(it)); old._look = look; }
      setData(old.getElement(), it.data);
      old._click = it.onclick;
      return;
    }
    if (old) this.map.removeLayer(old);
    var style = { className: it.cls, interactive: !!it.onclick, fillOpacity: 1, opacity: 1 };
    if (it.type === 'line') {
      if (it.pts.length < 2) { delete this.layers[layer][key]; return; }
      style.interactive = false;
      lay = L.polyline(it.pts, style);
    } else if (it.type === 'ring') {
      style.interactive = false;
      style.fillOpacity = 0.04;
      lay = L.circle([it.lat, it.lon], Object.assign(style, { radius: it.radius_m }));
    } else if (it.type === 'driver') {
      lay = L.marker([it.lat, it.lon], { icon: driverIcon(it), keyboard: true, title: it.name || '' });
      lay._look = (it.name || '') + '\u0001' + (it.cls || '');
      lay.on('click', function () { if (lay._click) lay._click(); });
      lay._click = it.onclick;
    } else if (it.type === 'home') {
      lay = L.marker([it.lat, it.lon], { icon: L.divIcon({ className: 'home-icon', iconSize: [18, 18] }), keyboard: false, interactive: false });
    } else {
      lay = L.circleMarker([it.lat, it.lon], Object.assign(style, { radius: it.type === 'square' ? (it.size || 6) : (it.r || 5.5) }));
    }
    if (it.onclick && it.type !== 'driver') lay.on('click', function (e) { L.DomEvent.stopPropagation(e); it.onclick(); });
    // One tooltip per layer (Leaflet keeps the first one's handlers): a permanent label, or
    // the title on hover.
    // Leaflet writes a string tooltip as markup: the text goes in as a text node instead.
    if (it.label && it.type !== 'driver') lay.bindTooltip(textNode(it.label), { permanent: true, direction: 'right', className: 'stop-label', offset: [6, 0] });
    else if (it.title) lay.bindTooltip(textNode(it.title));
    lay.addTo(this.map);
    setData(lay.getElement ? lay.getElement() : null, it.data);
    this.layers[layer][key] = lay;
  };

  StreetView.prototype.remove = function (layer, key) {
    var lay = this.layers[layer][key];
    if (lay) { this.map.removeLayer(lay); delete this.layers[layer][key]; }
  };

  /* A scene in `box` (an element; data-tiles etc. name the tile source). opts.interactive:
     pan, zoom and click; opts.onfallback(message): the street map failed, the plain one is
     shown. scene.onclick(lat, lon): a click on the map, not on an item. */
  function Scene(box, opts) {
    this.box = box;
    this.opts = opts || {};
    this.items = {};
    this.onclick = null;
    this.last = null;  // the last fit, replayed by a fallback
    var self = this;
    LAYERS.forEach(function (l) { self.items[l] = {}; });
    var url = box.getAttribute('data-tiles');
    if (url && global.L) {
      this.kind = 'street';
      this.view = new StreetView(box, this, {
        url: url,
        attribution: box.getAttribute('data-attribution') || '',
        maxZoom: +(box.getAttribute('data-max-zoom') || 19)
      });
    } else {
      this.kind = 'plain';
      this.view = new PlainView(box, this);
    }
    box.setAttribute('data-view', this.kind);
  }

  /* The street map failed: draw the same scene on the plain view. */
  Scene.prototype.fallback = function () {
    if (this.kind !== 'street') return;
    this.view.destroy();
    this.kind = 'plain';
    this.box.setAttribute('data-view', 'plain');
    this.view = new PlainView(this.box, this);
    if (this.last) this.view.fit(this.last[0], this.last[1]);
    this.view.redraw();
    if (this.opts.onfallback) this.opts.onfallback('The street map is not available: showing the plain map.');
  };

  Scene.prototype.set = function (layer, key, item) {
    this.items[layer][key] = item;
    this.view.draw(layer, key, item);
  };
  Scene.prototype.remove = function (layer, key) {
    if (!(key in this.items[layer])) return;
    delete this.items[layer][key];
    this.view.remove(layer, key);
  };
  /* Replaces a whole layer with `items` (key -> item). */
  Scene.prototype.replace = function (layer, items) {
    var self = this;
    Object.keys(this.items[layer]).forEach(function (k) { if (!(k in items)) self.remove(layer, k); });
    Object.keys(items).forEach(function (k) { self.set(layer, k, items[k]); });
  };
  Scene.prototype.fit = function (points, minSpan) {
    if (!points.length) return;
    this.last = [points, minSpan];
    this.view.fit(points, minSpan);
  };
  Scene.prototype.zoomBy = function (f) { this.view.zoomBy(f); };
  /* A line about the map for its caption (the grid's scale on the plain view). */
  Scene.prototype.note = function () { return this.view.note(); };

  global.MilepostMap = { create: function (box, opts) { return new Scene(box, opts); } };
})(window);

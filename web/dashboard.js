// The depot's dashboard (/dashboard): fetches /dashboard/data?days=N (the same report as
// /api/v1/analytics, by day), fills the tables and draws the rates per day with uPlot
// (served by the gateway, web/vendor/). Text is set with textContent only.
'use strict';

(function () {
  const REASONS = {
    recipient_absent: 'Recipient absent',
    address_not_found: 'Address not found',
    access_problem: 'No access',
    refused: 'Refused',
    damaged: 'Damaged',
    other: 'Other',
  };
  const $ = (id) => document.getElementById(id);
  const pct = (v) => (v == null ? '–' : `${Math.round(v * 1000) / 10}%`);
  const num = (v, digits) => (v == null ? '–' : v.toFixed(digits));
  const mins = (s) => (s == null ? '–' : `${Math.round(s / 6) / 10} min`);
  let chart = null;

  function cell(tr, text, header) {
    const c = document.createElement(header ? 'th' : 'td');
    if (header) c.scope = 'row';
    c.textContent = text;
    tr.appendChild(c);
  }

  function rows(tbody, list) {
    tbody.replaceChildren();
    for (const r of list) {
      const tr = document.createElement('tr');
      r.forEach((t, i) => cell(tr, t, i === 0));
      tbody.appendChild(tr);
    }
  }

  function summary(f) {
    const dl = $('summary');
    dl.replaceChildren();
    const items = [
      ['Routes', String(f.routes)],
      ['Parcels delivered', `${f.delivered} of ${f.parcels}`],
      ['On time', pct(f.on_time_rate)],
      ['First-attempt success', pct(f.first_attempt_rate)],
      ['Time per stop (mean, p90)', `${mins(f.stop_time_avg_s)}, ${mins(f.stop_time_p90_s)}`],
      ['Stops per hour', num(f.stops_per_hour, 1)],
      ['Distance', `${num(f.distance_km, 1)} km`],
      ['Stalls, late alerts', `${f.stalls}, ${f.late_alerts}`],
    ];
    for (const [k, v] of items) {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      dd.dataset.figure = k;
      dl.append(dt, dd);
    }
  }

  /** Every day from `from` to `to` (YYYY-MM-DD), so days without routes show as gaps. */
  function daysBetween(from, to) {
    const out = [];
    const d = new Date(`${from}T00:00:00Z`);
    const end = new Date(`${to}T00:00:00Z`);
    while (d <= end && out.length < 400) {
      out.push(d.toISOString().slice(0, 10));
      d.setUTCDate(d.getUTCDate() + 1);
    }
    return out;
  }

  function draw(report) {
    const days = daysBetween(report.from, report.to);
    const byDay = new Map(report.rows.map((r) => [r.day, r.figures]));
    const xs = days.map((d) => Date.parse(`${d}T12:00:00Z`) / 1000);
    const onTime = days.map((d) => { const f = byDay.get(d); return f && f.on_time_rate != null ? f.on_time_rate * 100 : null; });
    const first = days.map((d) => { const f = byDay.get(d); return f && f.first_attempt_rate != null ? f.first_attempt_rate * 100 : null; });
    const el = $('rates-chart');
    const width = Math.max(280, Math.min(900, el.clientWidth || 600));
    const opts = {
      width,
      height: 240,
      scales: { y: { range: [0, 100] } },
      axes: [{}, { values: (u, vals) => vals.map((v) => `${v}%`) }],
      series: [
        { value: (u, v) => (v == null ? '' : new Date(v * 1000).toISOString().slice(0, 10)) },
        { label: 'On time', stroke: '#0f766e', width: 2, value: (u, v) => (v == null ? '–' : `${v.toFixed(1)}%`), points: { show: true } },
        { label: 'First attempt', stroke: '#b45309', width: 2, value: (u, v) => (v == null ? '–' : `${v.toFixed(1)}%`), points: { show: true } },
      ],
    };
    if (chart) chart.destroy();
    chart = new uPlot(opts, [xs, onTime, first], el);
    el.dataset.points = String(report.rows.length);
  }

  function tables(report) {
    rows($('days-table').tBodies[0], report.rows.map((r) => [
      r.day, String(r.figures.routes), String(r.figures.delivered), String(r.figures.failed),
      pct(r.figures.on_time_rate), pct(r.figures.first_attempt_rate), num(r.figures.stops_per_hour, 1),
    ]));
    const reasons = Object.entries(report.total.failed_by_reason);
    rows($('reasons').tBodies[0], reasons.length
      ? reasons.map(([k, n]) => [REASONS[k] || k, String(n)])
      : [['No failed attempts', '0']]);
    rows($('eta').tBodies[0], report.total.eta.map((h) => [
      h.horizon, String(h.n), mins(h.mae_s), h.bias_s == null ? '–' : `${h.bias_s > 0 ? 'early ' : 'late '}${mins(Math.abs(h.bias_s))}`,
    ]));
  }

  async function load() {
    const days = $('days').value;
    const r = await fetch(`/dashboard/data?days=${encodeURIComponent(days)}`, { credentials: 'same-origin' });
    if (!r.ok) {
      $('period').textContent = `Could not load the numbers (${r.status}).`;
      return;
    }
    const report = await r.json();
    $('period').textContent = `${report.from} to ${report.to}`;
    summary(report.total);
    tables(report);
    draw(report);
    document.body.dataset.loaded = 'yes';
  }

  $('days').addEventListener('change', load);
  load();
})();

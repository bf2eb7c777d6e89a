// The Milepost pages in a real browser: Debian's Chromium, headless, driven by playwright-core.
//
// Started by tests/browser.rs, which runs an in-process gateway and drives the route. The two
// talk over stdio, one line at a time: this script prints `STEP <name>` when the page is ready
// for the next thing to happen, the Rust side does it (drives a leg, reports a delivery) and
// answers `DONE` (or `FAIL <why>`). Every assertion is made on the live page, without reload.
//
// Environment: WEB (http://127.0.0.1:PORT), TRACK (/t/...?token=...), DISPATCH
// (/dispatch?token=...), ARTIFACTS (screenshots and metrics.json go there), CHROMIUM (default
// /usr/bin/chromium).

import { launch, recordStatusLines, stepper } from './browser.mjs';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const WEB = process.env.WEB;
const TRACK = process.env.TRACK;
const DISPATCH = process.env.DISPATCH;
const ARTIFACTS = process.env.ARTIFACTS || 'target/browser-artifacts';
const STEP_TIMEOUT = 20_000;

mkdirSync(ARTIFACTS, { recursive: true });

const { step, check, log, fail, result } = await stepper();

const statusText = (page) => page.$eval('#status-line', (e) => e.textContent);

/** Waits until the status line matches `re`; returns the text. */
async function statusMatches(page, re, what) {
  try {
    await page.waitForFunction((src) => new RegExp(src).test(document.getElementById('status-line').textContent), re.source, { timeout: STEP_TIMEOUT });
  } catch (e) {
    check(false, `${what}: status line ${re} (it says "${await statusText(page)}")`);
    return null;
  }
  const t = await statusText(page);
  check(true, `${what}: "${t}"`);
  return t;
}

/** The position of a driver's marker on the dispatcher map, in map units. */
async function markerAt(page, id) {
  return page.evaluate((id) => {
    const g = document.querySelector(`g.drv[data-driver="${id}"]`);
    return g ? [Number(g.getAttribute('data-x')), Number(g.getAttribute('data-y'))] : null;
  }, id);
}

async function shot(page, name) {
  const path = join(ARTIFACTS, name);
  await page.screenshot({ path, fullPage: true });
  log('screenshot', path);
}

const { context, close } = await launch();
const metrics = {};
try {
  // The tracking page on a phone-sized screen.
  const track = context.pages()[0] || await context.newPage();
  const bytes = { html: 0, css: 0, js: 0, other: 0 };
  track.on('response', async (r) => {
    try {
      const h = await r.allHeaders();
      // Bytes on the wire: compressed size if compressed (content-length when given).
      const n = h['content-length'] ? Number(h['content-length']) : (await r.body()).length;
      const ct = h['content-type'] || '';
      const kind = ct.includes('html') ? 'html' : ct.includes('css') ? 'css' : ct.includes('javascript') ? 'js' : 'other';
      if (!r.url().includes('/events')) bytes[kind] += n;
    } catch { /* streaming or aborted responses */ }
  });
  const t0 = Date.now();
  await track.goto(WEB + TRACK, { waitUntil: 'commit' });
  await track.waitForFunction(() => (document.getElementById('status-line') || {}).textContent, null, { timeout: STEP_TIMEOUT });
  metrics.time_to_first_status_ms = Date.now() - t0;
  await track.waitForLoadState('load');
  const nav = await track.evaluate(() => {
    const n = performance.getEntriesByType('navigation')[0];
    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
    const live = performance.getEntriesByName('milepost-live')[0];
    const res = performance.getEntriesByType('resource').map((r) => ({ name: r.name.replace(location.origin, ''), transfer: r.transferSize, encoded: r.encodedBodySize, decoded: r.decodedBodySize }));
    return { ttfb: n.responseStart, response_end: n.responseEnd, dom_content_loaded: n.domContentLoadedEventEnd, load: n.loadEventEnd, fcp: fcp ? fcp.startTime : null, live: live ? live.startTime : null, html_transfer: n.transferSize, html_decoded: n.decodedBodySize, resources: res };
  });
  metrics.navigation = nav;
  // Chromium fills in the byte counts; wait a moment for the response listener too.
  await track.waitForTimeout(300);
  metrics.bytes_on_wire = { ...bytes, total: bytes.html + bytes.css + bytes.js };
  log('tracking page metrics', JSON.stringify(metrics));
  check(!/[?&]token=/.test(track.url()), `token removed from the address bar (${track.url().replace(/\?.*/, '?...')})`);
  await statusMatches(track, /^Planned for delivery$/, 'before the route starts');
  await recordStatusLines(track);
  await shot(track, 'track-360-planned.png');

  // The dispatcher map on a desktop screen.
  const disp = await context.newPage();
  await disp.setViewportSize({ width: 1280, height: 800 });
  await disp.goto(WEB + DISPATCH);
  await disp.waitForFunction(() => document.getElementById('conn').textContent === 'live', null, { timeout: STEP_TIMEOUT });
  check(await disp.$$eval('circle.stop', (c) => c.length) === 3, 'dispatcher map shows the route\'s 3 stops');

  // Before the route starts, another recipient (a parcel of S1) moves its delivery to another
  // slot from the page.
  const other = await context.newPage();
  await other.goto(WEB + process.env.TRACK2);
  log('second page', await other.title());
  await other.waitForFunction(() => document.querySelectorAll('#change-kind option').length > 1, null, { timeout: STEP_TIMEOUT });
  await other.selectOption('#change-kind', 'reschedule');
  const slotLabel = await other.$eval('#change-slot option', (o) => o.textContent);
  await other.click('#change-form button');
  await other.waitForFunction(() => /^Done/.test(document.getElementById('change-msg').textContent), null, { timeout: STEP_TIMEOUT });
  await statusMatches(other, /^Rescheduled to /, 'a rescheduled parcel');
  await step('check-reschedule');
  check(true, `rescheduled from the page to "${slotLabel}", and the driver's app was told`);
  await shot(other, 'track-360-rescheduled.png');
  await other.close();

  // The route starts: D1 leaves the depot and reaches S1; D2 roams.
  await step('start');
  // Two stops before the recipient's; one once the driver is at S1 (the stop being served
  // does not count).
  await statusMatches(track, /^(2 stops away|1 stop away)/, 'route started');
  await disp.waitForSelector('g.drv[data-driver="D1"]', { timeout: STEP_TIMEOUT });
  await disp.waitForSelector('g.drv[data-driver="D2"]', { timeout: STEP_TIMEOUT });
  check(true, 'dispatcher map shows drivers D1 and D2');
  const d1a = await markerAt(disp, 'D1');
  const d2a = await markerAt(disp, 'D2');
  await disp.waitForFunction(() => document.querySelector('circle.stop.st-arrived'), null, { timeout: STEP_TIMEOUT });
  check(true, 'stop S1 turns "arrived" on the map');
  check(await track.$eval('#map-card', (e) => e.hidden), 'privacy: no driver position while the driver is at S1');

  // Instructions from the page reach the driver through the log.
  await track.fill('#instr-text', 'Gate code 4711 <b>not bold</b>');
  await track.click('#instr-form button');
  await track.waitForFunction(() => document.getElementById('instr-msg').textContent === 'Sent to your driver.', null, { timeout: STEP_TIMEOUT });
  await step('check-instructions');
  check(true, 'instructions sent from the page arrived in the driver\'s queue');
  // A second tab (same cookie, no token in the link) shows them as text, never as markup.
  const again = await context.newPage();
  await again.goto(WEB + TRACK.replace(/\?.*/, ''));
  check(await again.$eval('#instr-text', (e) => e.value) === 'Gate code 4711 <b>not bold</b>', 'instructions shown back as plain text');
  check(await again.$('#instr b') === null, 'no markup injected by instructions');
  await again.close();

  // The recipient writes to the driver from the page, and sees the driver's reply live.
  await track.fill('#msg-text', 'Is the side gate fine? <i>x</i>');
  await track.click('#msg-form button');
  await track.waitForFunction(() => [...document.querySelectorAll('#messages li.from-recipient span')].some((e) => e.textContent === 'Is the side gate fine? <i>x</i>'), null, { timeout: STEP_TIMEOUT });
  await step('reply');
  await track.waitForFunction(() => [...document.querySelectorAll('#messages li.from-driver span')].some((e) => e.textContent === 'Yes, the side gate is fine'), null, { timeout: STEP_TIMEOUT });
  check(true, 'a message from the page reached the driver\'s app, and the reply showed without a reload');
  check(await track.$('#messages i') === null, 'no markup injected by messages');

  // S1 served, D1 drives on to S2 and serves it: the recipient's stop (S3) is next, but where
  // the driver stands is S2's door. The connection drops meanwhile: the page resumes from its
  // last event id and misses no milestone.
  // (Playwright's offline mode does not cut a WebSocket: the page's stream is dropped as a
  // network loss would drop it, and held off for 4 s.)
  await track.evaluate(() => MilepostLive.streams.forEach((s) => s.drop(4000)));
  await step('s1');
  await statusMatches(track, /^Next stop/, 'after S1, the driver at S2 (through a dropped connection)');
  const timeline = await track.$$eval('#timeline li span', (s) => s.map((x) => x.textContent));
  check(timeline[0] === 'Next stop' && timeline.includes('1 stop away'), `timeline caught up: ${JSON.stringify(timeline)}`);
  await track.waitForTimeout(1500);
  check(await track.$eval('#map-card', (e) => e.hidden), 'privacy: no driver position while the driver is at another stop');
  await disp.waitForFunction(([x, y]) => {
    const g = document.querySelector('g.drv[data-driver="D1"]');
    return g && (Number(g.getAttribute('data-x')) !== x || Number(g.getAttribute('data-y')) !== y);
  }, d1a, { timeout: STEP_TIMEOUT });
  const d1b = await markerAt(disp, 'D1');
  const d2b = await markerAt(disp, 'D2');
  check(d1b[0] !== d1a[0] || d1b[1] !== d1a[1], `D1 moved on the map ${JSON.stringify(d1a)} -> ${JSON.stringify(d1b)}`);
  check(d2b[0] !== d2a[0] || d2b[1] !== d2a[1], `D2 moved on the map ${JSON.stringify(d2a)} -> ${JSON.stringify(d2b)}`);

  // S2 served, D1 heads for S3, the recipient's stop: the driver's position may be shown now.
  await step('s2');
  await statusMatches(track, /^(Next stop|Arriving soon|The driver is at your door)/, 'recipient\'s stop is next');
  await track.waitForSelector('#map-card:not([hidden]) circle.van', { timeout: STEP_TIMEOUT });
  check(true, 'map with the driver\'s position shown once close');
  check(await track.$eval('#driver-name', (e) => e.textContent) === 'Ana', 'driver first name shown');
  await shot(track, 'track-360-near.png');
  await disp.click('g.drv[data-driver="D1"]');
  await disp.waitForFunction(() => !document.getElementById('route-card').hidden && document.querySelectorAll('#route-stops li').length === 3, null, { timeout: STEP_TIMEOUT });
  check(true, 'clicking D1 shows its route progress');
  // Who is near here: click the map near S3.
  const box = await disp.$eval('#map', (m) => { const r = m.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; });
  await disp.mouse.click(box[0] + box[2] * 0.5, box[1] + box[3] * 0.5);
  await disp.waitForFunction(() => !document.getElementById('near-card').hidden && document.querySelectorAll('#near li').length > 0, null, { timeout: STEP_TIMEOUT });
  check(true, `"who is near here" answered: ${JSON.stringify(await disp.$$eval('#near li', (l) => l.map((x) => x.textContent)))}`);
  await shot(disp, 'dispatch-1280.png');

  // Delivered at S3.
  await step('s3');
  const delivered = await statusMatches(track, /^Delivered \d\d:\d\d$/, 'delivered');
  await track.waitForSelector('#proof:not([hidden]) li', { timeout: STEP_TIMEOUT });
  const proof = await track.$$eval('#proof li', (l) => l.map((x) => x.textContent));
  check(proof.some((p) => p.startsWith('Doorstep photo')), `proof of delivery shown: ${JSON.stringify(proof)}`);
  check(await track.$eval('#map-card', (e) => e.hidden), 'driver position hidden once delivered');
  check(await track.evaluate(() => window.__noReload) === 'still the same page', 'no reload from first status to delivered');
  const history = await track.evaluate(() => window.__history);
  const counts = history.map((t) => { const m = /^(\d+) stops? away/.exec(t); return m ? Number(m[1]) : /^Next stop/.test(t) ? 0 : null; }).filter((n) => n !== null);
  const falling = counts.every((n, i) => i === 0 || n <= counts[i - 1]);
  check(!!delivered && counts[0] >= 1 && counts.includes(1) && counts.includes(0) && falling && /^Delivered/.test(history[history.length - 1]),
    `stops away fell, then Delivered, live: ${JSON.stringify(history)}`);
  await shot(track, 'track-360-delivered.png');
  await track.setViewportSize({ width: 1280, height: 800 });
  await shot(track, 'track-1280-delivered.png');
  await disp.waitForFunction(() => document.querySelectorAll('circle.stop.st-delivered').length === 3, null, { timeout: STEP_TIMEOUT });
  check(true, 'all three stops delivered on the dispatcher map');
  await shot(disp, 'dispatch-1280-done.png');
  // The dispatcher map opened on a phone.
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 360, height: 740 });
  await phone.goto(WEB + '/dispatch');
  await phone.waitForSelector('g.drv[data-driver="D1"]', { timeout: STEP_TIMEOUT });
  await phone.waitForTimeout(300);
  await shot(phone, 'dispatch-360.png');

} catch (e) {
  fail(e && e.stack ? e.stack : String(e));
} finally {
  writeFileSync(join(ARTIFACTS, 'metrics.json'), JSON.stringify(metrics, null, 2));
  await close();
}
process.exit(result());

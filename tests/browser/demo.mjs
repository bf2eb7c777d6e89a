// `milepost demo` in a real browser: the recipient of a late parcel and the dispatcher watch the
// demo's day live, as a newcomer would. Started by tests/browser.rs (the demo test), which runs
// the demo in process. This script opens both pages, prints `STEP go` once they show their first
// state, and after `DONE` waits until the tracking page says Delivered (or the attempt failed).
// It checks, on the live pages and without a reload, that the recipient saw "Out for delivery"
// or a count of stops, then "Arriving soon", then "The driver is at your door", then
// "Delivered", in that order; and that the driver's marker moved on the dispatcher map.
//
// Environment: WEB, TRACK, DISPATCH, DRIVER (the driver id on the map), ARTIFACTS, CHROMIUM.

import { launch, recordStatusLines, stepper } from './browser.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const { WEB, TRACK, DISPATCH, DRIVER } = process.env;
const ARTIFACTS = process.env.ARTIFACTS || 'target/browser-artifacts';
mkdirSync(ARTIFACTS, { recursive: true });

const { step, check, log, fail, result } = await stepper();

const { context, close } = await launch();
try {
  const track = context.pages()[0] || await context.newPage();
  await track.goto(WEB + TRACK);
  await track.waitForFunction(() => (document.getElementById('status-line') || {}).textContent, null, { timeout: 20_000 });
  await recordStatusLines(track);
  const disp = await context.newPage();
  await disp.setViewportSize({ width: 1280, height: 800 });
  await disp.goto(WEB + DISPATCH);
  await disp.waitForSelector('circle.stop', { timeout: 20_000 });
  await disp.evaluate((id) => {
    // Every position the driver's marker takes.
    window.__moves = [];
    setInterval(() => {
      const g = document.querySelector(`g.drv[data-driver="${id}"]`);
      if (!g) return;
      const p = g.getAttribute('data-x') + ',' + g.getAttribute('data-y');
      if (window.__moves[window.__moves.length - 1] !== p) window.__moves.push(p);
    }, 100);
  }, DRIVER);
  await step('go');
  await track.waitForFunction(() => /^(Delivered|Attempt failed)/.test(document.getElementById('status-line').textContent), null, { timeout: 30_000 });
  const history = await track.evaluate(() => window.__history);
  log('the recipient saw', JSON.stringify(history));
  const first = (re) => history.findIndex((t) => re.test(t));
  const order = [
    first(/^(Out for delivery|\d+ stops? away|Next stop)/),
    first(/^Arriving soon/),
    first(/^The driver is at your door/),
    first(/^Delivered/),
  ];
  check(order.every((i) => i >= 0) && order.every((i, k) => k === 0 || i > order[k - 1]),
    `out for delivery, arriving soon, at the door, delivered, in that order (${order})`);
  check(await track.evaluate(() => window.__noReload) === 'still the same page', 'no reload');
  const moves = await disp.evaluate(() => window.__moves);
  check(moves.length >= 3, `the driver moved on the dispatcher map (${moves.length} positions)`);
  await track.screenshot({ path: join(ARTIFACTS, 'demo-track-360.png'), fullPage: true });
  await disp.screenshot({ path: join(ARTIFACTS, 'demo-dispatch-1280.png') });
} catch (e) {
  fail(e && e.stack ? e.stack : String(e));
  for (const p of context.pages()) {
    const body = await p.evaluate(() => document.body ? document.body.innerText.slice(0, 300) : '').catch(() => '?');
    log('page', p.url().replace(/token=[^&]*/, 'token=...'), JSON.stringify(body));
  }
} finally {
  await close();
}
process.exit(result());

// The depot's dashboard (/dashboard) in a real browser: started by tests/browser.rs (the
// dashboard test) after it scripted a day whose figures it knows. Checks, on the page: the
// period's figures, the uPlot chart drawn (from the bundled library, nothing fetched from
// elsewhere), the failures by reason and the per-day table; and that the page asked only its
// own origin for anything. Prints `RESULT ok` or `RESULT fail`.
//
// Environment: WEB, DASH (/dashboard?token=...), ON_TIME (the expected on-time text, e.g.
// "50%"), ARTIFACTS, CHROMIUM.

import { launch } from './browser.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const { WEB, DASH, ON_TIME } = process.env;
const ARTIFACTS = process.env.ARTIFACTS || 'target/browser-artifacts';
mkdirSync(ARTIFACTS, { recursive: true });

const log = (...a) => console.log('#', ...a);
let failures = 0;
function check(cond, what) {
  if (cond) log('ok  ', what); else { failures += 1; log('FAIL', what); }
}

const { context, close } = await launch();
try {
  const page = context.pages()[0] || await context.newPage();
  await page.setViewportSize({ width: 1100, height: 900 });
  const origins = new Set();
  page.on('request', (r) => origins.add(new URL(r.url()).origin));
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(WEB + DASH);
  await page.waitForSelector('body[data-loaded="yes"]', { timeout: 20_000 });
  const figure = (name) => page.$eval(`dd[data-figure="${name}"]`, (e) => e.textContent);
  check(await figure('On time') === ON_TIME, `on time shows ${ON_TIME} (it shows ${await figure('On time')})`);
  check(await figure('First-attempt success') === '50%', 'first-attempt success shows 50%');
  const canvas = await page.$$eval('#rates-chart .uplot canvas', (c) => c.map((x) => [x.width, x.height]));
  check(canvas.length === 1 && canvas[0][0] > 200 && canvas[0][1] > 100, `uPlot drew its canvas (${JSON.stringify(canvas)})`);
  const legend = await page.$$eval('#rates-chart .u-legend th', (t) => t.map((x) => x.textContent.trim()));
  check(legend.includes('On time') && legend.includes('First attempt'), `the chart's legend names both series (${legend})`);
  const reasons = await page.$$eval('#reasons tbody tr', (r) => r.map((x) => x.textContent));
  check(reasons.some((r) => r.includes('No access') && r.includes('1')), `failures by reason list "No access" once (${reasons})`);
  const dayRows = await page.$$eval('#days-table tbody tr', (r) => r.length);
  check(dayRows === 1, `one day with routes in the table (${dayRows})`);
  // Another period reloads the numbers in place.
  await page.selectOption('#days', '30');
  await page.waitForFunction(() => /to/.test(document.getElementById('period').textContent), null, { timeout: 10_000 });
  check([...origins].every((o) => o === WEB), `every request went to the gateway (${[...origins]})`);
  check(errors.length === 0, `no script errors (${errors})`);
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
} catch (e) {
  failures += 1;
  log('FAIL', String(e));
} finally {
  await close();
}
console.log(`RESULT ${failures === 0 ? 'ok' : 'fail'}`);
process.exit(failures === 0 ? 0 : 1);

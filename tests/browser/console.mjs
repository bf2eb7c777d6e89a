// The dispatcher console and the street map in Chromium, against a gateway whose [web.map]
// names the local tile server of tests/browser.rs, with the shop's server there (SHOP, its
// port) allowed to frame the tracking page.
//
// Checks: tiles load and the driver moves on the street map; the keyboard reaches a driver
// and opens its route, whose stops are labelled with their addresses; an alert appears in
// its driver's group, is resolved from the page and stays gone after a reload; search finds
// a parcel; the route's trail plays back; an allowed origin frames the tracking page and
// another is refused; axe-core finds no serious violation on either page (desktop and 320 px);
// neither page scrolls sideways at 320 px or at 200 % zoom. Screenshots at phone and desktop
// sizes go to ARTIFACTS.
//
// Environment: WEB, TRACK (/t/...?token=...), DISPATCH (/dispatch?token=...), SHOP, ARTIFACTS.

import { launch, stepper, axeSerious, overflowsSideways } from './browser.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const WEB = process.env.WEB;
const TRACK = process.env.TRACK;
const DISPATCH = process.env.DISPATCH;
const ARTIFACTS = process.env.ARTIFACTS || 'target/browser-artifacts';
const T = 20_000;
mkdirSync(ARTIFACTS, { recursive: true });

const { step, check, log, fail, result } = await stepper();

async function shot(page, name) {
  const path = join(ARTIFACTS, name);
  await page.screenshot({ path, fullPage: true });
  log('screenshot', path);
}

/** The screen position of a driver's marker. */
const markerAt = (page, id) => page.evaluate((id) => {
  const m = document.querySelector(`#map [data-driver="${id}"]`);
  if (!m) return null;
  const r = m.getBoundingClientRect();
  return [Math.round(r.left), Math.round(r.top)];
}, id);

const { context, close } = await launch();
const errors = [];
try {
  await step('start');
  const disp = context.pages()[0] || await context.newPage();
  disp.on('pageerror', (e) => errors.push(String(e)));
  await disp.setViewportSize({ width: 1366, height: 900 });
  await disp.goto(WEB + DISPATCH);

  // The street map: Leaflet over the local tiles, the driver on it.
  await disp.waitForSelector('#map[data-view="street"][data-tiles-loaded]', { timeout: T });
  check(true, 'the dispatcher page shows the street map, tiles loaded');
  check(await disp.$eval('.leaflet-control-attribution', (e) => e.textContent.includes('Test tiles')), 'the attribution is shown');
  await disp.waitForSelector('#map [data-driver="D1"]', { timeout: T });
  const before = await markerAt(disp, 'D1');

  // The keyboard reaches the driver's entry; Enter opens the route, its stops labelled.
  await disp.focus('#drivers li[data-driver="D1"] button');
  await disp.keyboard.press('Enter');
  await disp.waitForFunction(() => !document.getElementById('route-card').hidden, null, { timeout: T });
  await disp.waitForFunction(() => [...document.querySelectorAll('.leaflet-tooltip.stop-label')].some((e) => e.textContent.includes('Ilica 12')), null, { timeout: T });
  check(true, 'the selected route\'s stops are labelled with their addresses on the map');
  check(await disp.$eval('#route-stops', (e) => e.textContent.includes('Ilica 12')), 'the route\'s stop list gives the address');
  const footer = await disp.$eval('footer', (e) => e.textContent);
  check(/IST/.test(footer), `the dispatcher page's times are the carrier's zone: "${footer}"`);
  const meta = await disp.$eval('#route-meta', (e) => e.textContent);
  check(!/pace \d/.test(meta) && /km along|m along/.test(meta), `the route's figures read as words: "${meta}"`);
  await shot(disp, 'console-1366-street.png');

  // An alert: the driver moves on, then a failed attempt.
  await step('fail');
  await disp.waitForSelector('.alert-group[data-driver="D1"] li[data-alert]', { timeout: T });
  const alertText = await disp.$eval('.alert-group[data-driver="D1"] li[data-alert]', (e) => e.textContent);
  check(/Failed attempt/.test(alertText), `the alert is in D1's group: "${alertText}"`);
  await disp.waitForFunction(([id, b]) => {
    const m = document.querySelector(`#map [data-driver="${id}"]`);
    if (!m) return false;
    const r = m.getBoundingClientRect();
    return Math.abs(r.left - b[0]) + Math.abs(r.top - b[1]) > 3;
  }, ['D1', before], { timeout: T }).then(() => check(true, 'the driver moved on the street map'), () => check(false, 'the driver moved on the street map'));
  const alertId = await disp.$eval('.alert-group[data-driver="D1"] li[data-alert]', (e) => e.getAttribute('data-alert'));
  // Acknowledged: it stays, saying so, after a reload; resolved: it is gone, after one too.
  await disp.click(`li[data-alert="${alertId}"] .act-acknowledge`);
  await disp.waitForFunction((id) => /acknowledged by/.test((document.querySelector(`li[data-alert="${id}"]`) || {}).textContent || ''), alertId, { timeout: T });
  await disp.reload();
  await disp.waitForSelector('#alerts[data-loaded]', { timeout: T });
  check(/acknowledged by/.test(await disp.$eval(`li[data-alert="${alertId}"]`, (e) => e.textContent).catch(() => '')), 'an acknowledged alert says so after a reload');
  await disp.click(`li[data-alert="${alertId}"] .act-resolve`);
  await disp.waitForFunction((id) => !document.querySelector(`li[data-alert="${id}"]`), alertId, { timeout: T });
  check(true, 'the resolved alert left the list');
  await disp.reload();
  await disp.waitForSelector('#alerts[data-loaded]', { timeout: T });
  check(!(await disp.$(`li[data-alert="${alertId}"]`)), 'and is still gone after a reload');

  // Search by tracking number, then the result opened from the keyboard.
  await disp.fill('#search', 'MP1000000');
  await disp.press('#search', 'Enter');
  await disp.waitForSelector('#search-results li[data-kind="parcel"] button', { timeout: T });
  const found = await disp.$$eval('#search-results li', (l) => l.map((e) => e.textContent));
  check(found.some((t) => t.includes('MP100000004')), `search finds the parcel: ${JSON.stringify(found)}`);
  await disp.focus('#search-results li[data-kind="parcel"] button');
  await disp.keyboard.press('Enter');
  await disp.waitForFunction(() => !document.getElementById('route-card').hidden, null, { timeout: T });
  check(true, 'the parcel\'s route opens from the search result');

  // Playback of the route's trail.
  await disp.click('#play');
  await disp.waitForSelector('#map path.trail', { timeout: T });
  await disp.waitForFunction(() => /of \d+/.test(document.getElementById('play-time').textContent), null, { timeout: T });
  const v0 = Number(await disp.$eval('#play-pos', (e) => e.value));
  await disp.waitForFunction((v) => Number(document.getElementById('play-pos').value) > v, v0, { timeout: T })
    .then(() => check(true, 'playback draws the trail and moves along it'), () => check(false, 'playback moves along the trail'));
  await shot(disp, 'console-1366-playback.png');

  // Embedding: an allowed origin frames the tracking page, another is refused.
  // The shop's server (tests/browser.rs) is the allowed origin as 127.0.0.1, another as
  // localhost.
  for (const [origin, allowed] of [[`http://127.0.0.1:${process.env.SHOP}`, true], [`http://localhost:${process.env.SHOP}`, false]]) {
    const p = await context.newPage();
    await p.goto(`${origin}/order?src=${encodeURIComponent(WEB + TRACK)}`);
    await p.waitForTimeout(1500);
    const frame = p.frames().find((f) => f !== p.mainFrame());
    const status = frame ? await frame.evaluate(() => (document.getElementById('status-line') || {}).textContent || null).catch(() => null) : null;
    check(allowed ? !!status : !status, `${origin} ${allowed ? 'frames' : 'may not frame'} the tracking page (status in the frame: ${JSON.stringify(status)})`);
    if (allowed) await shot(p, 'embedded-in-shop.png');
    await p.close();
  }

  // The tracking page: street map, screenshots at phone and desktop sizes.
  const track = await context.newPage();
  track.on('pageerror', (e) => errors.push(String(e)));
  await track.setViewportSize({ width: 390, height: 844 });
  await track.goto(WEB + TRACK);
  await track.waitForSelector('#map[data-view="street"][data-tiles-loaded]', { timeout: T })
    .then(() => check(true, 'the tracking page shows the street map'), () => check(false, 'the tracking page shows the street map'));
  await shot(track, 'track-390-street.png');
  await track.setViewportSize({ width: 1366, height: 900 });
  await shot(track, 'track-1366-street.png');
  await disp.setViewportSize({ width: 390, height: 844 });
  await shot(disp, 'console-390-street.png');

  // Reading at 320 px and at 200 % zoom (a 1280 px window at 200 % is 640 CSS px wide).
  for (const [page, name] of [[disp, 'dispatcher page'], [track, 'tracking page']]) {
    for (const width of [320, 640]) {
      await page.setViewportSize({ width, height: 800 });
      await page.waitForTimeout(200);
      check(!(await overflowsSideways(page)), `the ${name} does not scroll sideways at ${width} px`);
    }
  }
  check(errors.length === 0, `no script errors (${errors.join('; ')})`);
} catch (e) {
  fail(e && e.stack ? e.stack : String(e));
  for (const [i, p] of context.pages().entries()) {
    await p.screenshot({ path: join(ARTIFACTS, `console-failed-${i}.png`) }).catch(() => {});
    log('page', p.url(), JSON.stringify(await p.evaluate(() => document.body.innerText.slice(0, 1500)).catch(() => '?')));
  }
} finally {
  await close();
}

// Accessibility: axe-core on both pages, at desktop size and at 320 px (a context that
// bypasses the pages' CSP, so that axe's script can be added).
const axeRun = await launch({ bypassCSP: true });
try {
  for (const [path, name, ready] of [[DISPATCH, 'dispatcher page', '#alerts[data-loaded]'], [TRACK, 'tracking page', '#status-line']]) {
    const page = axeRun.context.pages()[0] || await axeRun.context.newPage();
    for (const width of [1366, 320]) {
      await page.setViewportSize({ width, height: 900 });
      await page.goto(WEB + path);
      await page.waitForSelector(ready, { timeout: T });
      await page.waitForTimeout(500);
      const found = await axeSerious(page);
      check(found.length === 0, `axe: no serious violations on the ${name} at ${width} px${found.length ? ': ' + found.join(' | ') : ''}`);
    }
  }
} catch (e) {
  fail(e && e.stack ? e.stack : String(e));
} finally {
  await axeRun.close();
}
process.exit(result());

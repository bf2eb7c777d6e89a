// A tile source that is down: the dispatcher page falls back to the plain map, says so, and
// still shows the driver. Environment: WEB, DISPATCH (/dispatch?token=...).

import { launch, stepper } from './browser.mjs';

const { check, fail, result } = await stepper();
const { context, close } = await launch();
try {
  const page = context.pages()[0] || await context.newPage();
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto(process.env.WEB + process.env.DISPATCH);
  await page.waitForSelector('#map[data-view="plain"]', { timeout: 20_000 });
  check(true, 'the map fell back to the plain view');
  const note = await page.$eval('#map-note', (e) => (e.hidden ? '' : e.textContent));
  check(/not available/.test(note), `the page says so: "${note}"`);
  await page.waitForSelector('g.drv[data-driver="D1"]', { timeout: 20_000 })
    .then(() => check(true, 'the driver is on the plain map'), () => check(false, 'the driver is on the plain map'));

  // A tab that learnt WebSockets do not get through (a proxy) uses the event stream.
  const sse = await context.newPage();
  let sockets = 0;
  sse.on('websocket', () => { sockets += 1; });
  await sse.addInitScript(() => sessionStorage.setItem('milepost-live', 'sse'));
  await sse.goto(process.env.WEB + process.env.DISPATCH);
  await sse.waitForFunction(() => document.getElementById('conn').textContent === 'live', null, { timeout: 20_000 })
    .then(() => check(sockets === 0, `live over the event stream, no WebSocket (${sockets})`), () => check(false, 'live over the event stream'));
} catch (e) {
  fail(e && e.stack ? e.stack : String(e));
} finally {
  await close();
}
process.exit(result());

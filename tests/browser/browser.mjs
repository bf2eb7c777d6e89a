// What the browser scripts share: Debian's Chromium, headless, in a throwaway profile, with a
// phone-sized first page.

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Launches Chromium (`CHROMIUM`, default /usr/bin/chromium); `close()` also removes the
 *  profile. `extra`: more context options (`bypassCSP` for axe-core). */
export async function launch(extra = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), 'milepost-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 360, height: 740 },
    deviceScaleFactor: 1,
    ...extra,
  });
  const close = async () => {
    await context.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, close };
}

/**
 * Starts recording every status line the tracking page shows, in order, into
 * `window.__history`, and marks the page (`window.__noReload`) so a reload would show.
 */
export async function recordStatusLines(page) {
  await page.evaluate(() => {
    window.__noReload = 'still the same page';
    const line = document.getElementById('status-line');
    window.__history = [line.textContent];
    new MutationObserver(() => {
      if (window.__history[window.__history.length - 1] !== line.textContent) window.__history.push(line.textContent);
    }).observe(line, { childList: true, characterData: true, subtree: true });
  });
}

/**
 * The stdio protocol with tests/browser.rs and the checks' tally: `step(name)` prints
 * `STEP <name>` and waits for the Rust side's `DONE`; `check(cond, what)` logs `# ok` or
 * `# FAIL`; `result()` prints `RESULT ok` or `RESULT fail N` and returns the exit code.
 */
export async function stepper() {
  const { createInterface } = await import('node:readline');
  const lines = createInterface({ input: process.stdin });
  const answers = [];
  let waiter = null;
  let failures = 0;
  lines.on('line', (l) => {
    if (waiter) { const w = waiter; waiter = null; w(l); } else answers.push(l);
  });
  const nextAnswer = () => (answers.length ? Promise.resolve(answers.shift()) : new Promise((resolve) => { waiter = resolve; }));
  const log = (...args) => console.log('#', ...args);
  return {
    log,
    async step(name) {
      console.log(`STEP ${name}`);
      const a = await nextAnswer();
      if (a !== 'DONE') throw new Error(`step ${name} failed: ${a}`);
    },
    check(cond, what) {
      if (cond) log('ok  ', what); else { failures += 1; log('FAIL', what); }
      return cond;
    },
    fail(what) { failures += 1; log('ERROR', what); },
    result() {
      console.log(failures ? `RESULT fail ${failures}` : 'RESULT ok');
      lines.close();
      return failures ? 1 : 0;
    },
  };
}

/** Runs axe-core on `page` (its context must bypass the CSP); the serious and critical
 *  violations, as `id: help (n nodes)` lines. */
export async function axeSerious(page) {
  const { createRequire } = await import('node:module');
  const require = createRequire(import.meta.url);
  await page.addScriptTag({ path: require.resolve('axe-core/axe.min.js') });
  const found = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id}: ${v.help} (${v.nodes.length} nodes: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')})`);
  });
  return found;
}

/** Whether the page scrolls sideways at its current width (content wider than the screen). */
export function overflowsSideways(page) {
  return page.evaluate(() => document.scrollingElement.scrollWidth > document.scrollingElement.clientWidth + 1);
}

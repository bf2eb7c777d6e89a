// What the browser scripts share: Debian's Chromium, headless, in a throwaway profile, with a
// phone-sized first page.

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Launches Chromium (`CHROMIUM`, default /usr/bin/chromium); `close()` also removes the profile. */
export async function launch() {
  const userDataDir = mkdtempSync(join(tmpdir(), 'milepost-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 360, height: 740 },
    deviceScaleFactor: 1,
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

// Launches Debian's Chromium through playwright-core (never a downloaded browser) in a fresh,
// empty profile, with a fake microphone so the capture path runs unattended.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.FACESTREAM_CHROMIUM || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run',
  '--autoplay-policy=no-user-gesture-required',
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
];

/** The server under test; set by the pytest wrappers (tests/test_browser_*.py). */
export function serverUrl() {
  const url = process.env.FACESTREAM_TEST_URL;
  if (!url) throw new Error('FACESTREAM_TEST_URL is not set: run these through pytest tests/test_browser_page.py');
  return url.replace(/\/+$/, '');
}

/** A browser context in a new user-data-dir; close() removes the profile. */
export async function launch({ viewport = { width: 1280, height: 900 }, args = CHROMIUM_ARGS } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'facestream-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args,
    viewport,
    permissions: ['microphone'],
  });
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}

/**
 * Collects console errors and uncaught page errors, for assertions and for failure messages.
 * The 404s of the live playlist while the client waits for the first segment are by design
 * (ChunkedStreamingClient.waitForPlaylist polls it) and are left out.
 */
export function watchConsole(page) {
  const problems = [];
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const url = msg.location()?.url ?? '';
    if (/\/hls\/[0-9a-f]{32}\/playlist\.m3u8$/.test(url) && msg.text().includes('404')) return;
    problems.push(`console: ${msg.text()} (${url})`);
  });
  return problems;
}

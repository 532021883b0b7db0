// The page against a server in LL-HLS mode (FACESTREAM_HLS_MODE=ll) in real headless Chromium:
// hls.js plays the part-based stream with blocking playlist reload, no fatal errors, near the edge.
// Run through pytest (tests/test_llhls_browser.py), which starts the server and sets FACESTREAM_TEST_URL.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { launch, serverUrl, watchConsole } from './chromium.mjs';

const ROOT = new URL('../../../', import.meta.url).pathname;
let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('an LL-HLS session plays in hls.js with parts and blocking reload', async () => {
  const page = await browser.context.newPage();
  const problems = watchConsole(page);
  const blocking = [];
  page.on('request', (r) => { if (/playlist\.m3u8\?_HLS_msn=\d+/.test(r.url())) blocking.push(r.url()); });
  await page.goto(`${serverUrl()}/`);
  await page.getByRole('button', { name: 'Use the sample face' }).click();
  await page.waitForFunction(() => !document.getElementById('start').disabled);
  await page.getByRole('button', { name: 'Start session' }).click();
  await page.waitForFunction(() => window.facestream.client?.sessionId, null, { timeout: 20000 });
  await page.setInputFiles('#audio-file', join(ROOT, 'assets/sample_speech.wav'));
  await page.getByRole('button', { name: 'Stream the file' }).click();

  await page.waitForFunction(() => document.getElementById('video').currentTime > 0.3, null, { timeout: 20000 });
  const t0 = await page.evaluate(() => document.getElementById('video').currentTime);
  await page.waitForTimeout(3000);
  const seen = await page.evaluate(() => {
    const { player } = window.facestream;
    const details = player.hls?.latestLevelDetails;
    return {
      time: document.getElementById('video').currentTime,
      lowLatency: player.lowLatency,
      engine: player.engine,
      fatal: player.fatalErrors,
      parts: details?.partList?.length ?? 0,
      canBlockReload: details?.canBlockReload ?? false,
      latency: player.latency,
      readout: document.getElementById('st-latency').textContent,
    };
  });
  assert.ok(seen.time - t0 > 2, `video time advanced only ${(seen.time - t0).toFixed(2)} s in 3 s`);
  assert.equal(seen.engine, 'hls.js');
  assert.equal(seen.lowLatency, true, 'the page picked the LL config from the init answer');
  assert.deepEqual(seen.fatal, [], 'no fatal hls.js errors');
  assert.ok(seen.parts > 0 && seen.canBlockReload, `hls.js saw parts and CAN-BLOCK-RELOAD: ${JSON.stringify(seen)}`);
  assert.ok(blocking.length > 3, `hls.js used blocking playlist reload (${blocking.length} requests)`);
  assert.ok(seen.latency !== null && seen.latency > 0 && seen.latency < 3, `latency ${seen.latency}`);
  assert.match(seen.readout, /s behind live/);
  await page.getByRole('button', { name: 'End session' }).click();
  assert.deepEqual(problems, []);
  await page.close();
});

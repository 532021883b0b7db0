// The page at / in real headless Chromium: sample face → session → speech file streamed through the
// page's own real-time path → hls.js plays the live stream. Also the microphone path (fake device).
// Run through pytest (tests/test_browser_page.py), which starts uvicorn and sets FACESTREAM_TEST_URL.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { launch, serverUrl, watchConsole } from './chromium.mjs';

const ROOT = new URL('../../../', import.meta.url).pathname;
const SHOTS = process.env.FACESTREAM_SCREENSHOT_DIR || join(ROOT, 'benchmarks/out');
mkdirSync(SHOTS, { recursive: true });

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

async function openWithSession(page, { chunkDuration = '0.5', upload = false, onFaceChosen = async () => {} } = {}) {
  await page.goto(`${serverUrl()}/`);
  if (upload) await page.getByLabel('Upload a photo').setInputFiles(join(ROOT, 'assets/sample_face.jpg'));
  else await page.getByRole('button', { name: 'Use the sample face' }).click();
  await page.waitForFunction(() => !document.getElementById('start').disabled);
  await onFaceChosen();
  await page.locator('#params summary').click();
  await page.getByLabel('Chunk length (s)').fill(chunkDuration);
  await page.getByRole('button', { name: 'Start session' }).click();
  await page.waitForFunction(() => window.facestream.client?.sessionId, null, { timeout: 20000 });
}

const videoTime = (page) => page.evaluate(() => document.getElementById('video').currentTime);
const errorText = (page) => page.locator('#error').textContent();

describe('the page', () => {
  test('streams a speech file at real-time pace and the live video plays', async () => {
    const page = await browser.context.newPage();
    const problems = watchConsole(page);
    await openWithSession(page);
    await page.setInputFiles('#audio-file', join(ROOT, 'assets/sample_speech.wav'));
    await page.getByRole('button', { name: 'Stream the file' }).click();

    await page.waitForFunction(() => document.getElementById('video').currentTime > 0.3, null, { timeout: 20000 });
    const t0 = await videoTime(page);
    await page.waitForTimeout(2500);
    const t1 = await videoTime(page);
    assert.ok(t1 - t0 > 1.5, `video time advanced only ${(t1 - t0).toFixed(2)} s in 2.5 s`);
    await page.screenshot({ path: join(SHOTS, 'page-streaming.png'), fullPage: true });

    // The file (11 s) goes out at real-time pace; then the server plays it out and ends the playlist.
    await page.waitForFunction(() => document.getElementById('audio-progress').value === 1, null, { timeout: 30000 });
    await page.waitForFunction(() => document.getElementById('st-state').textContent === 'finished', null, { timeout: 30000 });
    const summary = await page.evaluate(() => ({
      feeds: window.facestream.feeds.map((f) => f.ok),
      finals: window.facestream.feeds.filter((f) => f.isFinal).length,
      fatal: window.facestream.player.fatalErrors,
      engine: window.facestream.player.engine,
      frames: Number(document.getElementById('st-frames').textContent),
      startup: document.getElementById('st-startup').textContent,
    }));
    assert.equal(summary.engine, 'hls.js');
    assert.deepEqual(summary.fatal, [], 'no fatal hls.js errors');
    assert.ok(summary.feeds.length >= 22 && summary.feeds.every(Boolean), `feeds: ${summary.feeds}`);
    assert.equal(summary.finals, 1);
    assert.ok(summary.frames >= 11 * 25, `frames made: ${summary.frames}`);
    assert.match(summary.startup, /s to the first frame/);
    assert.equal(await errorText(page), '');
    assert.ok(await videoTime(page) > 8, 'the video kept playing through the speech');

    await page.getByRole('button', { name: 'End session' }).click();
    await page.waitForFunction(() => document.getElementById('st-state').textContent === 'ended');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('uploaded photo; captures the (fake) microphone in chunks and finishes the stream; phone-sized layout', async () => {
    const page = await browser.context.newPage();
    await page.setViewportSize({ width: 390, height: 844 });
    const problems = watchConsole(page);
    const caption = () => page.locator('#face-caption').textContent();
    // Before the session: the local photo. Once the session exists: the server's crop of it, as served.
    const onFaceChosen = async () => assert.match(await caption(), /^Your photo: sample_face\.jpg$/);
    await openWithSession(page, { chunkDuration: '0.5', upload: true, onFaceChosen });
    assert.match(await caption(), /^The 512×512 crop of sample_face\.jpg the server animates$/);
    await page.waitForFunction(() => document.getElementById('face-preview').complete, null, { timeout: 10000 });
    const shown = await page.evaluate(() => {
      const img = document.getElementById('face-preview');
      return { src: new URL(img.src).pathname, width: img.naturalWidth, height: img.naturalHeight };
    });
    const sessionId = await page.evaluate(() => window.facestream.client.sessionId);
    assert.deepEqual(shown, { src: `/api/audio-driven/chunked/preview/${sessionId}`, width: 512, height: 512 });
    await page.getByRole('button', { name: 'Start microphone' }).click();
    await page.waitForFunction(() => window.facestream.feeds.filter((f) => f.ok).length >= 3, null, { timeout: 15000 });
    await page.getByRole('button', { name: /Stop microphone/ }).click();
    await page.waitForFunction(() => window.facestream.feeds.some((f) => f.isFinal && f.ok !== null), null, { timeout: 10000 });
    const feeds = await page.evaluate(() => window.facestream.feeds);
    assert.ok(feeds.every((f) => f.ok), JSON.stringify(feeds));
    const chunkBytes = 0.5 * (await page.evaluate(() => window.facestream.client.audioSampleRate)) * 2;
    assert.ok(feeds.slice(0, -1).every((f) => f.bytes === chunkBytes), 'every chunk but the last is chunk_duration long');
    await page.waitForFunction(() => document.getElementById('video').currentTime > 0.5, null, { timeout: 20000 });
    await page.screenshot({ path: join(SHOTS, 'page-phone.png'), fullPage: true });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow} px on a phone`);
    assert.equal(await errorText(page), '');
    await page.getByRole('button', { name: 'End session' }).click();
    assert.deepEqual(problems, []);
    await page.close();
  });
});

// The page's WebRTC mode in real headless Chromium: sample face → session with "WebRTC" playback →
// the video element plays the server's WebRTC stream; the (fake) microphone goes to the session's
// WebSocket in 20 ms messages; Interrupt and Stop microphone reach the server as control messages.
// Run through pytest (tests/test_browser_webrtc.py), which starts the server and this runner inside
// a network namespace with only `lo` and sets FACESTREAM_TEST_URL; ICE must pair 127.0.0.1 ↔ 127.0.0.1.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { serverUrl, watchConsole } from './chromium.mjs';
import { launchForWebRtc, selectedCandidatePair } from './rtc-chromium.mjs';

let browser;
before(async () => { browser = await launchForWebRtc(); });
after(async () => { await browser?.close(); });

const socketEvents = (page, type) =>
  page.evaluate((t) => window.facestream.socket?.events.filter((e) => e.type === t).length ?? 0, type);

describe('the page over WebRTC', () => {
  test('plays the session over WebRTC and sends the microphone over the WebSocket', async () => {
    const page = await browser.context.newPage();
    const problems = watchConsole(page);
    await page.goto(`${serverUrl()}/`);
    await page.getByRole('button', { name: 'Use the sample face' }).click();
    await page.getByLabel(/WebRTC/).check();
    await page.waitForFunction(() => !document.getElementById('start').disabled);
    await page.getByRole('button', { name: 'Start session' }).click();
    await page.waitForFunction(() => window.facestream.rtcPlayer.connectionState === 'connected', null, { timeout: 20000 });
    assert.equal(await page.getByLabel(/HLS/).isDisabled(), true, 'the switch is locked while a session runs');
    const pair = await page.evaluate(selectedCandidatePair, 'facestream.rtcPlayer.pc');
    assert.deepEqual([pair?.local, pair?.remote], ['127.0.0.1', '127.0.0.1'], `ICE pair: ${JSON.stringify(pair)}`);

    // Frames arrive and advance: the remote stream is on the video element and decoding.
    await page.waitForFunction(() => document.getElementById('video').videoWidth === 512, null, { timeout: 20000 });
    const frames = () => page.evaluate(() => document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames);
    const f0 = await frames();
    await page.waitForTimeout(1500);
    const f1 = await frames();
    assert.ok(f1 - f0 >= 25, `only ${f1 - f0} frames decoded in 1.5 s`);
    assert.equal(await page.evaluate(() => window.facestream.player.engine), 'none', 'HLS stays off in WebRTC mode');

    await page.getByRole('button', { name: 'Start microphone' }).click();
    await page.waitForFunction(() => window.facestream.socket.events.filter((e) => e.type === 'accepted').length >= 25, null, { timeout: 15000 });
    const feeds = await page.evaluate(() => window.facestream.feeds);
    assert.ok(feeds.every((f) => f.via === 'websocket' && f.ok), JSON.stringify(feeds.slice(0, 5)));
    const rate = await page.evaluate(() => window.facestream.client.audioSampleRate);
    assert.ok(feeds.slice(0, -1).every((f) => f.bytes === 0.02 * rate * 2), 'every message is 20 ms');

    await page.getByRole('button', { name: /Interrupt/ }).click();
    await page.waitForFunction(() => window.facestream.socket.events.some((e) => e.type === 'interrupted'), null, { timeout: 5000 });
    await page.getByRole('button', { name: /Stop microphone/ }).click();
    await page.waitForFunction(() => window.facestream.socket.events.some((e) => e.type === 'final_accepted'), null, { timeout: 10000 });
    assert.equal(await socketEvents(page, 'backpressure'), 0);
    const errors = await page.evaluate(() => window.facestream.socket.events.filter((e) => e.type === "error"));
    assert.deepEqual(errors, [], JSON.stringify(errors));
    assert.equal(await page.locator('#error').textContent(), '');
    await page.getByRole('button', { name: 'End session' }).click();
    await page.waitForFunction(() => document.getElementById('st-state').textContent === 'ended');
    assert.deepEqual(problems, []);
    await page.close();
  });
});

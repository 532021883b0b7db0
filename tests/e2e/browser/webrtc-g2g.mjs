// Watches one session over WebRTC in headless Chromium (static/rtc-player.js) and reads the frame
// barcode off every presented frame (static/latency-probe.js). Prints `READY` once the first frame
// is shown (the driver then starts speaking), and at the end one JSON line: the frames seen (index,
// display time on the page clock), the page's clock offset to the server, and the connection's
// candidate pair it used. Run it in the server's network namespace (the benchmark makes one with
// only `lo`): the page's origin is the loopback server and ICE pairs 127.0.0.1 with 127.0.0.1.
//
//   node tests/e2e/browser/webrtc-g2g.mjs --url http://127.0.0.1:9999 --session <id> --seconds 20

import { parseArgs } from 'node:util';

import { launchForWebRtc, selectedCandidatePair } from './rtc-chromium.mjs';

const { values } = parseArgs({
  options: { url: { type: 'string' }, session: { type: 'string' }, seconds: { type: 'string', default: '20' } },
});
const url = values.url.replace(/\/+$/, '');

const { context, close } = await launchForWebRtc();
try {
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(`${url}/sample_face.jpg`); // any same-origin document: modules load from the server
  await page.evaluate(async ({ sessionId }) => {
    const { RtcPlayer } = await import('/rtc-player.js');
    const { LatencyProbe, measureClockOffset } = await import('/latency-probe.js');
    document.body.replaceChildren();
    const video = document.createElement('video');
    video.muted = true;
    video.autoplay = true;
    video.playsInline = true;
    document.body.append(video);
    const rtc = { errors: [] };
    window.rtc = rtc;
    rtc.clock = await measureClockOffset('/api/debug/clock');
    rtc.player = new RtcPlayer(video, { onError: (message) => rtc.errors.push(message) });
    rtc.probe = new LatencyProbe(video);
    rtc.probe.start();
    rtc.connectStartedAt = performance.timeOrigin + performance.now();
    await rtc.player.play(sessionId);
  }, { sessionId: values.session });
  await page.waitForFunction(() => window.rtc.probe.records.length > 0, null, { timeout: 20000 });
  console.log('READY');
  await page.waitForTimeout(Number(values.seconds) * 1000);
  const icePair = await page.evaluate(selectedCandidatePair, 'rtc.player.pc');
  const seen = await page.evaluate(async () => {
    const { rtc } = window;
    rtc.clock = (await (await import('/latency-probe.js')).measureClockOffset('/api/debug/clock')) ?? rtc.clock;
    return {
      records: rtc.probe.records,
      unreadable: rtc.probe.unreadable,
      firstFrameAt: rtc.probe.firstFrameAt,
      connectStartedAt: rtc.connectStartedAt,
      clock: rtc.clock,
      errors: rtc.errors,
    };
  });
  await page.evaluate(() => window.rtc.player.stop());
  console.log(JSON.stringify({ ...seen, problems, icePair, rttMs: icePair?.rttMs ?? null }));
} finally {
  await close();
}

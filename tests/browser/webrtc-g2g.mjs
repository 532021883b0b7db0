// Watches one session over WebRTC in headless Chromium (static/rtc-player.js) and reads the frame
// barcode off every presented frame (static/latency-probe.js). Prints `READY` once the first frame
// is shown (the driver then starts speaking), and at the end one JSON line: the frames seen (index,
// display time on the page clock), the page's clock offset to the server, and the connection's
// candidate pair. Only addresses of this machine are involved: the page's origin is the loopback
// server, and ICE pairs the host candidates both sides gather on local interfaces.
//
//   node tests/browser/webrtc-g2g.mjs --url http://127.0.0.1:9999 --session <id> --seconds 20

import { parseArgs } from 'node:util';

import { launch } from './chromium.mjs';

const { values } = parseArgs({
  options: { url: { type: 'string' }, session: { type: 'string' }, seconds: { type: 'string', default: '20' } },
});
const url = values.url.replace(/\/+$/, '');

// The same Chromium settings as the page tests; ICE pairs host candidates of this machine only.
const { context, close } = await launch();
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
  const seen = await page.evaluate(async () => {
    const { rtc } = window;
    let pair = null;
    for (const stat of (await rtc.player.pc.getStats()).values()) {
      if (stat.type === 'candidate-pair' && stat.nominated && stat.state === 'succeeded') pair = stat;
    }
    rtc.clock = (await (await import('/latency-probe.js')).measureClockOffset('/api/debug/clock')) ?? rtc.clock;
    return {
      records: rtc.probe.records,
      unreadable: rtc.probe.unreadable,
      firstFrameAt: rtc.probe.firstFrameAt,
      connectStartedAt: rtc.connectStartedAt,
      clock: rtc.clock,
      errors: rtc.errors,
      rttMs: pair ? pair.currentRoundTripTime * 1000 : null,
    };
  });
  await page.evaluate(() => window.rtc.player.stop());
  console.log(JSON.stringify({ ...seen, problems }));
} finally {
  await close();
}

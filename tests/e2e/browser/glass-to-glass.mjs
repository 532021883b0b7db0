// Drives the page in its latency debug mode (?debug=latency) in headless Chromium: sample face,
// sample speech streamed at real-time pace, every shown frame's barcode read back. Prints one JSON
// object: what the page saw (frame index + display time, page clock), its clock offset to the
// server, hls.js latency samples, startup timings, and the server's frame hand-off times.
//
//   node tests/e2e/browser/glass-to-glass.mjs --url http://127.0.0.1:9999 --seconds 20 [--chunk-duration 0.5]

import { parseArgs } from 'node:util';
import { join } from 'node:path';

import { launch } from './chromium.mjs';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    seconds: { type: 'string', default: '20' },
    'chunk-duration': { type: 'string', default: '0.5' },
    screenshot: { type: 'string' },
    audio: { type: 'string' }, // a speech file to stream instead of assets/sample_speech.wav
  },
});
const url = values.url.replace(/\/+$/, '');
const ROOT = new URL('../../../', import.meta.url).pathname;

/**
 * Runs in the page: what the player did, to explain freezes. Every 100 ms the playhead, the buffer
 * ahead of it, the rate and hls.js's latency/target; every video 'waiting'/'playing'/'stalled'
 * event; hls.js's non-fatal errors (bufferStalledError, …); per loaded part or segment when its
 * request started and ended; per playlist load how long it took (a blocking reload is held).
 */
function recordPlayer() {
  const video = document.getElementById('video');
  const hls = window.facestream.player.hls;
  const log = { samples: [], events: [], errors: [], frags: [], playlists: [], loading: [] };
  window.facestream.playerLog = log;
  const now = () => performance.timeOrigin + performance.now();
  const ahead = () => {
    const t = video.currentTime;
    for (let i = 0; i < video.buffered.length; i++) {
      if (video.buffered.start(i) <= t + 0.05 && t <= video.buffered.end(i)) return video.buffered.end(i) - t;
    }
    return 0;
  };
  setInterval(() => {
    log.samples.push({
      at: now(), t: video.currentTime, ahead: ahead(), rate: video.playbackRate, ready: video.readyState,
      latency: hls?.latency ?? null, target: hls?.targetLatency ?? null,
    });
  }, 100);
  for (const type of ['waiting', 'playing', 'stalled', 'seeking', 'seeked']) {
    video.addEventListener(type, () => log.events.push({ type, at: now(), t: video.currentTime, ahead: ahead() }));
  }
  if (!hls) return;
  const { Events } = window.Hls;
  const wall = (ms) => performance.timeOrigin + ms;
  hls.on(Events.ERROR, (_e, d) => log.errors.push({ at: now(), details: d.details, fatal: d.fatal, t: video.currentTime, ahead: ahead() }));
  hls.on(Events.FRAG_LOADED, (_e, d) => {
    const st = (d.part ?? d.frag).stats.loading;
    log.frags.push({ sn: d.frag.sn, part: d.part?.index ?? null, start: wall(st.start), end: wall(st.end), bytes: (d.part ?? d.frag).stats.loaded });
  });
  hls.on(Events.LEVEL_LOADED, (_e, d) => {
    const st = d.stats.loading;
    const det = d.details;
    log.playlists.push({
      start: wall(st.start), end: wall(st.end), advanced: det.advanced, age: det.age, tuneInGoal: det.tuneInGoal ?? 0,
      last: [det.lastPartSn, det.lastPartIndex], asked: d.deliveryDirectives ? [d.deliveryDirectives.msn, d.deliveryDirectives.part] : null,
    });
  });
  hls.on(Events.FRAG_LOADING, (_e, d) => log.loading.push({ at: now(), sn: d.frag.sn, part: d.part?.index ?? null }));
  hls.on(Events.BUFFER_FLUSHED, (_e, d) => log.events.push({ type: `flushed:${d.type}`, at: now(), t: video.currentTime, ahead: ahead() }));
}

const { context, close } = await launch();
try {
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  await page.addInitScript(() => { // hls.js's own log (timestamped, bounded) to explain freezes
    const lines = [];
    window.hlsLines = lines;
    const to = (level) => (...args) => {
      lines.push([performance.timeOrigin + performance.now(), level, args.map(String).join(' ').slice(0, 300)]);
      if (lines.length > 30000) lines.shift();
    };
    window.facestreamHlsDebug = { trace: () => {}, debug: to('debug'), log: to('log'), info: to('info'), warn: to('warn'), error: to('error') };
  });
  await page.goto(`${url}/?debug=latency`);
  await page.getByRole('button', { name: 'Use the sample face' }).click();
  await page.waitForFunction(() => !document.getElementById('start').disabled);
  await page.locator('#params summary').click();
  await page.getByLabel('Chunk length (s)').fill(values['chunk-duration']);
  await page.getByRole('button', { name: 'Start session' }).click();
  await page.waitForFunction(() => window.facestream.client?.sessionId, null, { timeout: 20000 });
  await page.setInputFiles('#audio-file', values.audio || join(ROOT, 'assets/sample_speech.wav'));
  await page.getByRole('button', { name: 'Stream the file' }).click();
  await page.waitForFunction(() => window.facestream.probe?.firstFrameAt, null, { timeout: 20000 });
  await page.evaluate(recordPlayer);

  // hls.js's own estimates, sampled twice a second while the probe records.
  const hlsSamples = [];
  const end = Date.now() + Number(values.seconds) * 1000;
  while (Date.now() < end) {
    hlsSamples.push(await page.evaluate(() => {
      const hls = window.facestream.player.hls;
      const now = performance.timeOrigin + performance.now();
      return { latency: hls?.latency ?? null, pdtLatencyMs: hls?.playingDate ? now - hls.playingDate.getTime() : null };
    }));
    await page.waitForTimeout(500);
  }
  if (values.screenshot) await page.screenshot({ path: values.screenshot });

  const seen = await page.evaluate(() => ({
    sessionId: window.facestream.client.sessionId,
    records: window.facestream.probe.records,
    unreadable: window.facestream.probe.unreadable,
    firstFrameAt: window.facestream.probe.firstFrameAt,
    timings: window.facestream.timings,
    clock: window.facestream.clock,
    fatal: window.facestream.player.fatalErrors,
    player: window.facestream.playerLog ?? null,
    hlsLog: window.hlsLines ?? [],
  }));
  const answer = await fetch(`${url}/api/debug/sessions/${seen.sessionId}/frame-times`);
  const frameTimes = answer.ok ? await answer.json() : { error: `HTTP ${answer.status}` };
  await page.getByRole('button', { name: 'End session' }).click();
  console.log(JSON.stringify({ ...seen, hlsSamples, frameTimes, problems }));
} finally {
  await close();
}

// The facestream page: face → session → speech (microphone or file) → live video, with a status panel.
// Built on the same ChunkedStreamingClient users copy into their own pages.
// Debug/test mode `?debug=latency`: reads the frame-index barcode off every shown frame (see
// latency-probe.js); results are on `window.facestream.probe`.

import { ChunkedStreamingClient, FacestreamApiError } from './chunked-streaming-client.js';
import { MicCapture, decodeAudioFile, streamRealtime } from './audio-input.js';
import { LatencyProbe, measureClockOffset } from './latency-probe.js';
import { LivePlayer } from './player.js';
import { StatusPanel } from './status-panel.js';
import { RtcPlayer } from './rtc-player.js';
import { RtcSocket } from './rtc-socket.js';

const $ = (id) => document.getElementById(id);
const MAX_PENDING_FEEDS = 8; // chunks waiting for the server before the microphone is stopped
const debugLatency = new URLSearchParams(location.search).get('debug') === 'latency';

const video = $('video');
const status = new StatusPanel();
const state = {
  face: null, // File/Blob of the chosen photo
  client: null,
  mic: null,
  streamAbort: null,
  feedChain: Promise.resolve(),
  pendingFeeds: 0,
  feeds: [], // {at, bytes, isFinal, ok} per posted chunk, for the status line and tests
  finished: false,
  timings: {},
  probe: null,
  clock: null,
};
window.facestream = state;

const player = new LivePlayer(video, {
  onError: (message, fatal) => (fatal ? status.error(message) : status.say(message)),
  onEnded: () => status.say('The stream has ended.'),
});
state.player = player;
// WebRTC mode (the "Playback" switch): video over WebRTC, microphone audio over the session's
// WebSocket in 20 ms messages; HLS mode keeps /feed chunks (its player is ~1 s behind anyway).
const rtcPlayer = new RtcPlayer(video, {
  onError: (message, fatal) => (fatal ? status.error(message) : status.say(message)),
  onEnded: () => status.say('The stream has ended.'),
});
state.rtcPlayer = rtcPlayer;
state.socket = null;
const RTC_MESSAGE_SECONDS = 0.02;
const transport = () => document.querySelector('input[name="transport"]:checked')?.value ?? 'hls';

function plainError(error) {
  if (error instanceof FacestreamApiError) return error.message;
  if (error?.name === 'AbortError') return null;
  if (error instanceof TypeError) return 'Cannot reach the server. Is it running?';
  return error?.message ?? String(error);
}

function report(error) {
  const text = plainError(error);
  if (text) status.error(text);
}

function setBusy(active) {
  $('start').disabled = active || !state.face;
  $('end').disabled = !active;
  for (const id of ['mic', 'stream-file', 'finish', 'interrupt']) $(id).disabled = !active || state.finished;
  for (const input of document.querySelectorAll('input[name="transport"]')) input.disabled = active;
  $('stream-file').disabled ||= !$('audio-file').files.length;
}

function showFace(blob, caption) {
  const img = $('face-preview');
  if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
  img.dataset.url = blob instanceof Blob ? URL.createObjectURL(blob) : '';
  img.src = img.dataset.url || blob;
  img.alt = caption;
  img.hidden = false;
  $('face-caption').textContent = caption;
}

function chooseFace(file, caption) {
  state.face = file;
  showFace(file, caption);
  setBusy(Boolean(state.client));
}

$('face-file').addEventListener('change', (event) => {
  const [file] = event.target.files;
  if (file) chooseFace(file, `Your photo: ${file.name}`);
});

$('use-sample').addEventListener('click', async () => {
  try {
    const response = await fetch('sample_face.jpg');
    if (!response.ok) throw new Error('The sample face is missing on this server.');
    chooseFace(new File([await response.blob()], 'sample_face.jpg', { type: 'image/jpeg' }), 'The sample face (Grace Hopper, public domain)');
  } catch (error) {
    report(error);
  }
});

for (const input of document.querySelectorAll('input[type="range"]')) {
  const out = document.querySelector(`output[for="${input.id}"]`);
  input.addEventListener('input', () => { out.textContent = input.value; });
}

function readOptions() {
  const num = (id) => Number($(id).value);
  return {
    seed: Math.trunc(num('seed')),
    crop: $('crop').checked,
    chunkDuration: num('chunk-duration'),
    poseStyle: [num('pitch'), num('yaw'), num('roll')],
    gazeStyle: [num('gaze-x'), num('gaze-y')],
  };
}

async function startSession() {
  status.clear();
  state.finished = false;
  state.feeds = [];
  state.timings = { initStartedAt: performance.timeOrigin + performance.now() };
  const client = new ChunkedStreamingClient('');
  status.state('starting…');
  $('start').disabled = true;
  try {
    const session = await client.initSession(state.face, readOptions());
    state.client = client;
    state.timings.initAnsweredAt = performance.timeOrigin + performance.now();
    const preview = session.preview_url ?? session.crop_url;
    // Once known, the server's own crop replaces the local photo: it is exactly what gets animated.
    if (preview) showFace(client.url(preview), `The ${session.width}×${session.height} crop of ${state.face.name} the server animates`);
    status.say(session.message || 'Session started.');
    setBusy(true);
    const rtc = transport() === 'webrtc';
    status.watch(client, rtc ? rtcPlayer : player);
    if (debugLatency) await startProbe();
    if (rtc) {
      state.socket = new RtcSocket(client.sessionId, { onEvent: onSocketEvent });
      await state.socket.open();
      await rtcPlayer.play(client.sessionId);
      return;
    }
    await client.waitForPlaylist();
    state.timings.playlistReadyAt = performance.timeOrigin + performance.now();
    player.play(client.hlsUrl, { lowLatency: Boolean(session.ll_hls) });
  } catch (error) {
    report(error);
    if (!state.client) { status.state('none'); setBusy(false); }
  }
}

async function startProbe() {
  state.clock = await measureClockOffset(state.client.url('/api/debug/clock')).catch(() => null);
  state.probe = new LatencyProbe(video);
  state.probe.start();
}

video.addEventListener('playing', () => {
  if (state.client && !state.timings.firstFrameAt) {
    state.timings.firstFrameAt = state.probe?.firstFrameAt ?? performance.timeOrigin + performance.now();
    status.startup((state.timings.firstFrameAt - state.timings.initStartedAt) / 1000);
  }
});

/** Queues one chunk behind those already sent, so chunks reach the server in order. */
function feed(pcm, isFinal) {
  const client = state.client;
  state.pendingFeeds++;
  const entry = { at: Date.now(), bytes: pcm.length * 2, isFinal, ok: null };
  state.feeds.push(entry);
  state.feedChain = state.feedChain
    .then(() => client.feedPcm(pcm, isFinal))
    .then((answer) => { entry.ok = true; status.fed(answer); })
    .catch((error) => { entry.ok = false; report(error); })
    .finally(() => { state.pendingFeeds--; });
  if (isFinal) markFinished();
  return state.feedChain.then(() => entry.ok);
}

function markFinished() {
  state.finished = true;
  setBusy(true);
  status.say('Last chunk sent: the stream plays out what is queued, then ends.');
}

function showMic(active) {
  $('mic').setAttribute('aria-pressed', String(active));
  $('mic').textContent = active ? 'Stop microphone (finishes the speech)' : 'Start microphone';
}

function onSocketEvent(event) {
  if (event.type === 'backpressure' || event.type === 'error') status.error(event.message ?? event.type);
  else if (event.type === 'interrupted') status.say(`Interrupted: ${event.dropped_seconds} s of speech dropped.`);
}

/** WebRTC mode: the microphone goes to the session's WebSocket in 20 ms messages. */
function socketMic() {
  return new MicCapture({
    sampleRate: state.client.audioSampleRate,
    chunkSeconds: RTC_MESSAGE_SECONDS,
    onChunk: (pcm, isFinal) => {
      const entry = { at: Date.now(), bytes: pcm.length * 2, isFinal, ok: true, via: 'websocket' };
      if (pcm.length && !state.socket.sendPcm(pcm)) {
        entry.ok = false;
        status.error('The connection is not keeping up with the microphone; capture was stopped.');
        if (!isFinal) toggleMic();
      }
      state.feeds.push(entry);
      if (state.feeds.length > 1000) state.feeds.shift();
      if (isFinal) { state.socket.final(); markFinished(); }
    },
  });
}

async function interruptSpeech() {
  if (state.socket?.isOpen) return state.socket.interrupt();
  await state.client?.request('POST', `/api/audio-driven/chunked/interrupt/${state.client.sessionId}`);
  status.say('Interrupted.');
}

async function toggleMic() {
  if (state.mic) {
    const mic = state.mic;
    state.mic = null;
    showMic(false);
    await mic.stop(); // delivers the final partial chunk through onChunk
    return;
  }
  const mic = state.socket ? socketMic() : new MicCapture({
    sampleRate: state.client.audioSampleRate,
    chunkSeconds: state.client.chunkDuration,
    onChunk: (pcm, isFinal) => {
      if (isFinal) {
        feed(pcm, true); // may be empty: a final chunk without audio just ends the speech
      } else if (state.pendingFeeds >= MAX_PENDING_FEEDS) {
        status.error('The server is not keeping up with the microphone; capture was stopped.');
        toggleMic();
      } else {
        feed(pcm, false);
      }
    },
  });
  try {
    await mic.start();
    state.mic = mic;
    showMic(true);
    $('stream-file').disabled = true;
    status.say('Listening… speak now.');
  } catch (error) {
    report(error.name === 'NotAllowedError' ? new Error('Microphone access was refused.') : error);
  }
}

async function streamFile() {
  const [file] = $('audio-file').files;
  const client = state.client;
  $('stream-file').disabled = true;
  $('mic').disabled = true;
  state.streamAbort = new AbortController();
  try {
    status.say(`Decoding ${file.name}…`);
    const samples = await decodeAudioFile(file, client.audioSampleRate);
    status.say(`Streaming ${file.name} (${(samples.length / client.audioSampleRate).toFixed(1)} s) at real-time pace…`);
    await streamRealtime(samples, client.audioSampleRate, client.chunkDuration, async (pcm, isFinal) => {
      if (!(await feed(pcm, isFinal))) throw new DOMException('the server refused a chunk', 'AbortError');
    }, {
      signal: state.streamAbort.signal,
      onProgress: (fraction) => { $('audio-progress').value = fraction; },
    });
  } catch (error) {
    report(error);
  } finally {
    state.streamAbort = null;
  }
}

async function finish() {
  if (state.finished) return;
  if (state.mic) return toggleMic();
  state.streamAbort?.abort();
  await feed(new Int16Array(0), true);
}

async function endSession() {
  state.streamAbort?.abort();
  if (state.mic) { await state.mic.stop(); state.mic = null; }
  state.probe?.stop();
  player.stop();
  rtcPlayer.stop();
  state.socket?.close();
  state.socket = null;
  status.unwatch();
  const client = state.client;
  state.client = null;
  try { await client?.cleanup(); } catch (error) { report(error); }
  status.state('ended');
  showMic(false);
  setBusy(false);
}

$('audio-file').addEventListener('change', () => {
  const [file] = $('audio-file').files;
  $('audio-name').textContent = file ? `Chosen: ${file.name}` : 'No audio file chosen.';
  setBusy(Boolean(state.client));
});
$('start').addEventListener('click', startSession);
$('end').addEventListener('click', endSession);
$('mic').addEventListener('click', () => toggleMic().catch(report));
$('stream-file').addEventListener('click', streamFile);
$('finish').addEventListener('click', () => finish().catch(report));
$('interrupt').addEventListener('click', () => interruptSpeech().catch(report));
window.addEventListener('pagehide', () => { state.client?.cleanup({ keepalive: true }).catch(() => {}); });

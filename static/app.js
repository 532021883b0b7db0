// The facestream page: DOM wiring only. What a session does (start, feed, finish, interrupt, end)
// is session-controller.js, over one transport object (HLS or WebRTC) picked by the Playback switch.
// Debug/test mode `?debug=latency`: reads the frame-index barcode off every shown frame (see
// latency-probe.js); results are on `window.facestream.probe`.

import { FacestreamApiError } from './chunked-streaming-client.js';
import { MicCapture, decodeAudioFile, streamRealtime } from './audio-input.js';
import { LatencyProbe, measureClockOffset } from './latency-probe.js';
import { HlsTransport, RtcTransport, SessionController } from './session-controller.js';
import { StatusPanel } from './status-panel.js';

const $ = (id) => document.getElementById(id);
const MAX_PENDING_FEEDS = 8; // chunks waiting for the server before the microphone is stopped
const debugLatency = new URLSearchParams(location.search).get('debug') === 'latency';

const video = $('video');
const status = new StatusPanel();
const playerHooks = {
  onError: (message, fatal) => (fatal ? status.error(message) : status.say(message)),
  onEnded: () => status.say('The stream has ended.'),
};
const hls = new HlsTransport(video, playerHooks);
const rtc = new RtcTransport(video, playerHooks, onSocketEvent);
const controller = new SessionController({ hls, webrtc: rtc }, {
  onAnswer: (answer) => { if (answer?.session_id) status.fed(answer); },
  onError: (error) => report(error),
});
const ui = { face: null, mic: null, streamAbort: null, probe: null, clock: null };

/** What the browser tests and the latency benchmarks read (kept stable across refactors). */
window.facestream = {
  controller,
  get client() { return controller.client; },
  get feeds() { return controller.feeds; },
  get finished() { return controller.finished; },
  get timings() { return controller.timings; },
  get transport() { return controller.transport?.name ?? null; },
  get player() { return hls.player; },
  get rtcPlayer() { return rtc.player; },
  get socket() { return rtc.socket; },
  get probe() { return ui.probe; },
  get clock() { return ui.clock; },
};
const chosenTransport = () => document.querySelector('input[name="transport"]:checked')?.value ?? 'hls';

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
  $('start').disabled = active || !ui.face;
  $('end').disabled = !active;
  for (const id of ['mic', 'stream-file', 'finish', 'interrupt']) $(id).disabled = !active || controller.finished;
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
  ui.face = file;
  showFace(file, caption);
  setBusy(controller.active);
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
    apiKey: $('api-key').value.trim() || null,
  };
}

async function startSession() {
  status.clear();
  status.state('starting…');
  $('start').disabled = true;
  const name = chosenTransport();
  try {
    await controller.start(ui.face, readOptions(), name, {
      beforePlay: async (client) => {
        const session = client.session;
        const preview = session.preview_url ?? session.crop_url;
        // Once known, the server's own crop replaces the local photo: it is exactly what gets animated.
        // an <img> sends no headers: with keys on, the session token rides as ?token=
        const token = client.sessionToken ? `?token=${encodeURIComponent(client.sessionToken)}` : '';
        if (preview) showFace(client.url(preview) + token, `The ${session.width}×${session.height} crop of ${ui.face.name} the server animates`);
        status.say(session.message || 'Session started.');
        setBusy(true);
        status.watch(client, name === 'webrtc' ? rtc.player : hls.player);
        if (debugLatency) await startProbe(client);
      },
    });
  } catch (error) {
    report(error);
    if (!controller.active) { status.state('none'); setBusy(false); }
  }
}

async function startProbe(client) {
  ui.clock = await measureClockOffset(client.url('/api/debug/clock')).catch(() => null);
  ui.probe = new LatencyProbe(video);
  ui.probe.start();
}

video.addEventListener('playing', () => {
  const { timings } = controller;
  if (controller.active && !timings.firstFrameAt) {
    timings.firstFrameAt = ui.probe?.firstFrameAt ?? performance.timeOrigin + performance.now();
    status.startup((timings.firstFrameAt - timings.initStartedAt) / 1000);
  }
});

/** Sends one chunk through the session's transport; a final chunk disables the speech controls. */
function feed(pcm, isFinal) {
  const sent = controller.feed(pcm, isFinal);
  if (isFinal) markFinished();
  return sent;
}

function markFinished() {
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

async function interruptSpeech() {
  const answer = await controller.interrupt();
  if (answer?.dropped_seconds !== undefined) status.say(`Interrupted: ${answer.dropped_seconds} s of speech dropped.`);
  else if (answer) status.say('Interrupted.');
}

async function toggleMic() {
  if (ui.mic) {
    const mic = ui.mic;
    ui.mic = null;
    showMic(false);
    await mic.stop(); // delivers the final partial chunk through onChunk
    return;
  }
  const mic = new MicCapture({
    sampleRate: controller.client.audioSampleRate,
    chunkSeconds: controller.chunkSeconds,
    onChunk: (pcm, isFinal) => {
      if (isFinal) {
        feed(pcm, true); // may be empty: a final chunk without audio just ends the speech
      } else if (controller.pendingFeeds >= MAX_PENDING_FEEDS) {
        status.error('The server is not keeping up with the microphone; capture was stopped.');
        toggleMic();
      } else {
        feed(pcm, false).then((ok) => { if (!ok && ui.mic === mic) toggleMic(); });
      }
    },
  });
  try {
    await mic.start();
    ui.mic = mic;
    showMic(true);
    $('stream-file').disabled = true;
    status.say('Listening… speak now.');
  } catch (error) {
    report(error.name === 'NotAllowedError' ? new Error('Microphone access was refused.') : error);
  }
}

async function streamFile() {
  const [file] = $('audio-file').files;
  const client = controller.client;
  $('stream-file').disabled = true;
  $('mic').disabled = true;
  ui.streamAbort = new AbortController();
  try {
    status.say(`Decoding ${file.name}…`);
    const samples = await decodeAudioFile(file, client.audioSampleRate);
    status.say(`Streaming ${file.name} (${(samples.length / client.audioSampleRate).toFixed(1)} s) at real-time pace…`);
    await streamRealtime(samples, client.audioSampleRate, client.chunkDuration, async (pcm, isFinal) => {
      if (!(await feed(pcm, isFinal))) throw new DOMException('the server refused a chunk', 'AbortError');
    }, {
      signal: ui.streamAbort.signal,
      onProgress: (fraction) => { $('audio-progress').value = fraction; },
    });
  } catch (error) {
    report(error);
  } finally {
    ui.streamAbort = null;
  }
}

async function finish() {
  if (controller.finished) return;
  if (ui.mic) return toggleMic();
  ui.streamAbort?.abort();
  if (await controller.finish()) markFinished();
}

async function endSession() {
  ui.streamAbort?.abort();
  if (ui.mic) { await ui.mic.stop(); ui.mic = null; }
  ui.probe?.stop();
  status.unwatch();
  try { await controller.end(); } catch (error) { report(error); }
  status.state('ended');
  showMic(false);
  setBusy(false);
}

$('audio-file').addEventListener('change', () => {
  const [file] = $('audio-file').files;
  $('audio-name').textContent = file ? `Chosen: ${file.name}` : 'No audio file chosen.';
  setBusy(controller.active);
});
$('start').addEventListener('click', startSession);
$('end').addEventListener('click', endSession);
$('mic').addEventListener('click', () => toggleMic().catch(report));
$('stream-file').addEventListener('click', streamFile);
$('finish').addEventListener('click', () => finish().catch(report));
$('interrupt').addEventListener('click', () => interruptSpeech().catch(report));
window.addEventListener('pagehide', () => { controller.client?.cleanup({ keepalive: true }).catch(() => {}); });

// Unit tests of the page's pure pieces in node (no server, no browser): PCM helpers, the real-time
// file scheduler, the microphone worklet's resampler (AudioWorklet globals stubbed minimally), and
// the page's session controller over one transport object (static/session-controller.js).

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  API, ChunkedStreamingClient, floatToPcm16, pcm16Blob, pcm16ToWav, socketUrl,
} from '../../../static/chunked-streaming-client.js';
import { streamRealtime } from '../../../static/audio-input.js';
import { HlsTransport, RtcTransport, SessionController } from '../../../static/session-controller.js';
import { readWav } from './wav.mjs';

describe('PCM helpers', () => {
  test('floatToPcm16 clips and scales', () => {
    assert.deepEqual([...floatToPcm16(new Float32Array([0, 1, -1, 2, -2, 0.5]))], [0, 32767, -32768, 32767, -32768, 16384]);
  });

  test('pcm16ToWav writes a WAV that reads back sample for sample', async () => {
    const pcm = Int16Array.from({ length: 1001 }, (_, i) => ((i * 37) % 65536) - 32768);
    const path = join(mkdtempSync(join(tmpdir(), 'fs-wav-')), 'x.wav');
    writeFileSync(path, Buffer.from(await pcm16ToWav(pcm, 22050).arrayBuffer()));
    const back = readWav(path);
    assert.equal(back.sampleRate, 22050);
    assert.deepEqual([...back.samples], [...pcm]);
    const raw = new DataView(await pcm16Blob(pcm).arrayBuffer());
    assert.equal(raw.byteLength, 2002);
    assert.equal(raw.getInt16(2 * 500, true), pcm[500], 'raw PCM is little-endian');
  });
});

describe('streamRealtime', () => {
  test('sends every sample once, in order, at real-time pace, the last chunk final', async () => {
    const rate = 1000;
    const samples = Float32Array.from({ length: 1050 }, (_, i) => (i % 100) / 100);
    const sent = [];
    const start = performance.now();
    await streamRealtime(samples, rate, 0.2, async (pcm, isFinal) => {
      sent.push({ at: performance.now() - start, n: pcm.length, isFinal, first: pcm[0] });
    });
    assert.deepEqual(sent.map((s) => s.n), [200, 200, 200, 200, 200, 50]);
    assert.deepEqual(sent.map((s) => s.isFinal), [false, false, false, false, false, true]);
    assert.equal(sent.reduce((a, s) => a + s.n, 0), samples.length);
    sent.forEach((s, k) => {
      assert.ok(s.at >= k * 200 - 5, `chunk ${k} sent early at ${s.at.toFixed(0)} ms`);
      assert.ok(s.at < k * 200 + 150, `chunk ${k} sent late at ${s.at.toFixed(0)} ms`);
    });
  });

  test('stops when aborted', async () => {
    const abort = new AbortController();
    const sent = [];
    const run = streamRealtime(new Float32Array(1000), 1000, 0.1, async (pcm) => {
      sent.push(pcm.length);
      if (sent.length === 2) abort.abort(new DOMException('stopped', 'AbortError'));
    }, { signal: abort.signal });
    await assert.rejects(run, { name: 'AbortError' });
    assert.equal(sent.length, 2);
  });
});

async function loadWorklet(inputRate) {
  let Processor;
  globalThis.sampleRate = inputRate;
  globalThis.AudioWorkletProcessor = class { constructor() { this.port = { postMessage: () => {} }; } };
  globalThis.registerProcessor = (_name, cls) => { Processor = cls; };
  await import(`../../../static/pcm-capture-worklet.js?rate=${inputRate}`);
  return Processor;
}

function runWorklet(Processor, { targetRate, chunkSamples, input, quantum = 128 }) {
  const node = new Processor({ processorOptions: { targetRate, chunkSamples } });
  const chunks = [];
  node.port.postMessage = (message) => chunks.push(message);
  for (let at = 0; at < input.length; at += quantum) node.process([[input.subarray(at, at + quantum)]]);
  node.port.onmessage({ data: 'flush' });
  return chunks;
}

describe('microphone worklet', () => {
  for (const [inputRate, targetRate] of [[48000, 24000], [44100, 16000], [24000, 24000]]) {
    test(`${inputRate} Hz → ${targetRate} Hz: whole chunks, right length, clean sine`, async () => {
      const Processor = await loadWorklet(inputRate);
      const seconds = 1;
      const freq = 440;
      const input = Float32Array.from({ length: inputRate * seconds }, (_, i) => 0.5 * Math.sin((2 * Math.PI * freq * i) / inputRate));
      const chunkSamples = targetRate / 10;
      const chunks = runWorklet(Processor, { targetRate, chunkSamples, input });
      assert.ok(chunks.slice(0, -1).every((c) => c.pcm.length === chunkSamples && !c.flush));
      assert.equal(chunks.at(-1).flush, true);
      const out = Int16Array.from(chunks.flatMap((c) => [...c.pcm]));
      assert.ok(Math.abs(out.length - targetRate * seconds) <= 2, `got ${out.length} samples`);
      // Output sample j is the input at time j/targetRate - 1/inputRate (one input sample of delay).
      let worst = 0;
      for (let j = 1; j < out.length - 1; j++) {
        const expected = 0.5 * Math.sin(2 * Math.PI * freq * (j / targetRate - 1 / inputRate)) * 0x7fff;
        worst = Math.max(worst, Math.abs(out[j] - expected));
      }
      assert.ok(worst < 0.01 * 0x7fff, `max error ${worst}`);
    });
  }
});

// -- the page's session contract (static/session-controller.js): one transport object -------------

test('one API constant and the socket URL built from it', () => {
  assert.equal(API, '/api/audio-driven/chunked');
  assert.equal(socketUrl('ab12', 'https://h.example:8443'), `wss://h.example:8443${API}/ws/ab12`);
  assert.equal(socketUrl('ab12', 'http://127.0.0.1:9999/'), `ws://127.0.0.1:9999${API}/ws/ab12`);
  const client = new ChunkedStreamingClient('http://127.0.0.1:9999');
  client.sessionId = 'cd34';
  assert.equal(client.socketUrl(), `ws://127.0.0.1:9999${API}/ws/cd34`);
});

test('both transports answer the same calls', () => {
  const calls = ['start', 'send', 'final', 'interrupt', 'stop'];
  for (const Transport of [HlsTransport, RtcTransport]) {
    for (const name of calls) assert.equal(typeof Transport.prototype[name], 'function', `${Transport.name}.${name}`);
  }
});

test('the controller drives whichever transport was chosen, and logs what was sent', async () => {
  const log = [];
  const fake = (name) => ({
    name, via: name, pending: 0, chunkSeconds: name === 'webrtc' ? 0.02 : null,
    async start(client) { log.push([name, 'start', client.sessionId]); },
    async send(pcm, isFinal) {
      log.push([name, 'send', pcm.length, isFinal]);
      if (pcm.length === 3) throw new Error('refused');
      return { session_id: 's1' };
    },
    async interrupt() { log.push([name, 'interrupt']); return { dropped_seconds: 1 }; },
    stop() { log.push([name, 'stop']); },
  });
  const errors = [];
  const controller = new SessionController({ hls: fake('hls'), webrtc: fake('webrtc') }, { onError: (e) => errors.push(e.message) });
  const realInit = ChunkedStreamingClient.prototype.initSession;
  const realCleanup = ChunkedStreamingClient.prototype.cleanup;
  ChunkedStreamingClient.prototype.initSession = async function () { this.sessionId = 's1'; this.chunkDuration = 0.5; this.session = {}; return this.session; };
  ChunkedStreamingClient.prototype.cleanup = async function () { log.push(['client', 'cleanup']); this.sessionId = null; };
  try {
    await controller.start(new Blob([]), {}, 'webrtc');
    assert.equal(controller.chunkSeconds, 0.02);
    assert.equal(await controller.feed(new Int16Array(4)), true);
    assert.equal(await controller.feed(new Int16Array(3)), false);
    assert.deepEqual(errors, ['refused']);
    assert.deepEqual(await controller.interrupt(), { dropped_seconds: 1 });
    assert.equal(await controller.finish(), true);
    assert.equal(await controller.finish(), false, 'finish is sent once');
    assert.deepEqual(controller.feeds.map((f) => [f.ok, f.isFinal, f.via]), [[true, false, 'webrtc'], [false, false, 'webrtc'], [true, true, 'webrtc']]);
    await controller.end();
    assert.equal(controller.active, false);
  } finally {
    ChunkedStreamingClient.prototype.initSession = realInit;
    ChunkedStreamingClient.prototype.cleanup = realCleanup;
  }
  assert.deepEqual(log.map((l) => l.slice(0, 2).join(' ')), [
    'webrtc start', 'webrtc send', 'webrtc send', 'webrtc interrupt', 'webrtc send', 'webrtc stop', 'client cleanup',
  ]);
});

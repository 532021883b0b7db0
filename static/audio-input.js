// Speech sources for the page: an audio file streamed at real-time pace, or the microphone.
// Both hand out mono PCM16 chunks of the session's chunk_duration at its audio_sample_rate; the
// caller posts them to /feed. Why real-time pace for files: the server queues speech fed faster
// than real time (bounded, then 429), and a live demo should behave like a live talker.

import { floatToPcm16 } from './chunked-streaming-client.js';

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, Math.max(0, ms));
    signal?.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
  });

/** Decodes any format the browser knows into mono float samples at `sampleRate` (browser resampler). */
export async function decodeAudioFile(file, sampleRate) {
  const bytes = await file.arrayBuffer();
  // decodeAudioData resamples to its context's rate, so an offline context at the target rate does it all.
  const context = new OfflineAudioContext(1, 1, sampleRate);
  let buffer;
  try {
    buffer = await context.decodeAudioData(bytes);
  } catch {
    throw new Error(`"${file.name}" could not be decoded as audio by this browser`);
  }
  const mono = new Float32Array(buffer.length);
  for (let c = 0; c < buffer.numberOfChannels; c++) {
    const data = buffer.getChannelData(c);
    for (let i = 0; i < mono.length; i++) mono[i] += data[i] / buffer.numberOfChannels;
  }
  return mono;
}

/**
 * Sends `samples` in chunks of `chunkSeconds`, chunk k no earlier than start + k·chunkSeconds; the
 * last chunk is sent as final. The schedule is absolute, so a slow request delays one chunk without
 * slowing the stream. `send(pcm16, isFinal)` must resolve once the server accepted the chunk.
 */
export async function streamRealtime(samples, sampleRate, chunkSeconds, send, { signal, onProgress, now = () => performance.now() } = {}) {
  const chunkSamples = Math.max(1, Math.round(chunkSeconds * sampleRate));
  const chunks = Math.max(1, Math.ceil(samples.length / chunkSamples));
  const start = now();
  for (let k = 0; k < chunks; k++) {
    await sleep(start + k * chunkSeconds * 1000 - now(), signal);
    const pcm = floatToPcm16(samples.subarray(k * chunkSamples, (k + 1) * chunkSamples));
    await send(pcm, k === chunks - 1);
    onProgress?.((k + 1) / chunks);
  }
}

/** Microphone → PCM16 chunks via an AudioWorklet. `onChunk(pcm16, isFinal)` gets every chunk, in order. */
export class MicCapture {
  constructor({ sampleRate, chunkSeconds, onChunk }) {
    this.sampleRate = sampleRate;
    this.chunkSamples = Math.max(1, Math.round(chunkSeconds * sampleRate));
    this.onChunk = onChunk;
    this.context = null;
    this.stream = null;
    this.flushed = null;
  }

  async start() {
    this.finished = false;
    if (!navigator.mediaDevices?.getUserMedia) throw new Error('this browser cannot capture the microphone (a secure https:// page is needed)');
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    try {
      this.context = new AudioContext({ sampleRate: this.sampleRate, latencyHint: 'interactive' });
    } catch {
      this.context = new AudioContext({ latencyHint: 'interactive' }); // the worklet resamples instead
    }
    await this.context.audioWorklet.addModule(new URL('./pcm-capture-worklet.js', import.meta.url));
    const source = this.context.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.context, 'pcm-capture', {
      numberOfInputs: 1, numberOfOutputs: 0,
      processorOptions: { targetRate: this.sampleRate, chunkSamples: this.chunkSamples },
    });
    this.node.port.onmessage = ({ data }) => {
      // The worklet keeps running until the context closes: anything it posts after the final
      // (flush) chunk would reach the server after the end of speech, so it is dropped here.
      if (this.finished) return;
      if (data.flush) this.finished = true;
      this.onChunk(data.pcm, data.flush);
      if (data.flush) this.flushed?.();
    };
    source.connect(this.node);
    await this.context.resume();
  }

  /** Stops capture; the partial chunk still in the worklet is delivered as the final one. */
  async stop() {
    if (!this.context) return;
    const done = new Promise((resolve) => { this.flushed = resolve; });
    this.node.port.postMessage('flush');
    await Promise.race([done, sleep(1000)]);
    this.stream.getTracks().forEach((t) => t.stop());
    await this.context.close();
    this.context = null;
  }
}

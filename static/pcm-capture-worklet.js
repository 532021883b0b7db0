// AudioWorklet processor: microphone → mono PCM16 chunks at the session's sample rate.
//
// Why in the worklet: the audio thread sees every 128-frame render quantum on time, so no sample is
// lost when the page's main thread is busy; only whole chunks (chunk_duration of audio) cross to the
// main thread, as transferable buffers. Resampling is linear interpolation with state carried across
// quanta (no clicks at boundaries); the page asks for an AudioContext at the target rate first, so
// this usually runs at ratio 1 and the browser's own resampler does the work.

class PcmCaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate, chunkSamples } = options.processorOptions;
    this.step = sampleRate / targetRate; // input samples per output sample
    this.chunk = new Int16Array(chunkSamples);
    this.filled = 0;
    this.position = 0; // fractional read position into [previous sample, current block]
    this.previous = 0;
    this.port.onmessage = (event) => {
      if (event.data === 'flush') {
        this.emit(true);
      }
    };
  }

  push(value) {
    const s = Math.max(-1, Math.min(1, value));
    this.chunk[this.filled++] = Math.round(s < 0 ? s * 0x8000 : s * 0x7fff);
    if (this.filled === this.chunk.length) this.emit(false);
  }

  emit(flush) {
    const pcm = this.chunk.slice(0, this.filled);
    this.filled = 0;
    this.port.postMessage({ pcm, flush }, [pcm.buffer]);
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const n = channels[0].length;
    const mono = new Float32Array(n);
    for (const channel of channels) for (let i = 0; i < n; i++) mono[i] += channel[i] / channels.length;
    // Sample k of the block sits at position k + 1; position 0 is the last sample of the previous block.
    while (this.position <= n) {
      const k = Math.floor(this.position);
      const frac = this.position - k;
      const a = k === 0 ? this.previous : mono[k - 1];
      const b = k < n ? mono[k] : a;
      if (k === n && frac > 0) break;
      this.push(a + (b - a) * frac);
      this.position += this.step;
    }
    this.position -= n;
    this.previous = mono[n - 1];
    return true;
  }
}

registerProcessor('pcm-capture', PcmCaptureProcessor);

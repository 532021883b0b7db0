// facestream chunked streaming client (ES module, no dependencies; browsers and Node >= 20).
//
//   import { ChunkedStreamingClient } from './chunked-streaming-client.js';
//   const client = new ChunkedStreamingClient('http://127.0.0.1:9999');
//   const session = await client.initSession(photoFile, { seed: 42, chunkDuration: 1.0 });
//   await client.waitForPlaylist();                 // then play client.hlsUrl with hls.js
//   await client.feedAudioChunk(pcm16Blob);        // raw PCM s16le at session.audio_sample_rate, or WAV/MP3/...
//   await client.feedAudioChunk(lastBlob, true);    // final chunk: the stream plays it out and ends
//   await client.cleanup();
//
// Why the shape: it mirrors the published browser example (initSession / feedAudioChunk / getStatus /
// cleanup) so that existing pages keep working, and adds what live use needs: typed errors carrying
// the HTTP status and Retry-After, retrying "server busy" answers, and waiting for the first segment.

/** The one path prefix of the chunked-streaming API: every other module imports it from here. */
export const API = '/api/audio-driven/chunked';

/** ws:// or wss:// URL of a session's WebSocket, relative to `baseUrl` ('' = this page's origin). */
export function socketUrl(sessionId, baseUrl = '') {
  const base = new URL(baseUrl || location.origin);
  base.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
  base.pathname = `${base.pathname.replace(/\/+$/, '')}${API}/ws/${encodeURIComponent(sessionId)}`;
  return base.toString();
}

/** An HTTP answer other than 2xx, with the server's plain-words message. */
export class FacestreamApiError extends Error {
  constructor(status, message, body = null, retryAfter = null) {
    super(message);
    this.name = 'FacestreamApiError';
    this.status = status;
    this.body = body;
    this.retryAfter = retryAfter; // seconds, when the server sent Retry-After
  }
}

/** Float samples in [-1, 1] → 16-bit PCM (clipped, rounded). */
export function floatToPcm16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out[i] = Math.round(s < 0 ? s * 0x8000 : s * 0x7fff);
  }
  return out;
}

/** Raw little-endian PCM16 bytes as a Blob (the wire format for `audio_chunk` without a container). */
export function pcm16Blob(pcm16) {
  const bytes = new Uint8Array(pcm16.length * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < pcm16.length; i++) view.setInt16(i * 2, pcm16[i], true);
  return new Blob([bytes], { type: 'application/octet-stream' });
}

/** Mono PCM16 wrapped in a WAV container (carries its own sample rate). */
export function pcm16ToWav(pcm16, sampleRate) {
  const header = new DataView(new ArrayBuffer(44));
  const ascii = (offset, text) => [...text].forEach((c, i) => header.setUint8(offset + i, c.charCodeAt(0)));
  const dataBytes = pcm16.length * 2;
  ascii(0, 'RIFF');
  header.setUint32(4, 36 + dataBytes, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  header.setUint32(16, 16, true);
  header.setUint16(20, 1, true); // PCM
  header.setUint16(22, 1, true); // mono
  header.setUint32(24, sampleRate, true);
  header.setUint32(28, sampleRate * 2, true);
  header.setUint16(32, 2, true);
  header.setUint16(34, 16, true);
  ascii(36, 'data');
  header.setUint32(40, dataBytes, true);
  return new Blob([header.buffer, pcm16Blob(pcm16)], { type: 'audio/wav' });
}

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
  });

function messageOf(body, fallback) {
  if (!body || typeof body !== 'object') return fallback;
  const text = body.message ?? body.error ?? body.detail;
  if (typeof text === 'string' && text) return text;
  if (Array.isArray(text)) return text.map((d) => `${(d.loc ?? []).slice(-1)[0] ?? ''}: ${d.msg ?? d}`).join('; ');
  return fallback;
}

export class ChunkedStreamingClient {
  /**
   * @param {string} serverUrl  base URL of the facestream server; '' = the page's own origin.
   * @param {{busyRetries?: number, maxRetryWaitMs?: number, apiKey?: string|null}} [options]
   *   apiKey: the server's API key when it has keys (README "Security"); the session token from init is
   *   then sent on every session call automatically (Authorization: Bearer; ?token= on the WebSocket).
   */
  constructor(serverUrl = '', { busyRetries = 5, maxRetryWaitMs = 5000, apiKey = null } = {}) {
    this.serverUrl = serverUrl.replace(/\/+$/, '');
    this.apiKey = apiKey;
    this.sessionToken = null;
    this.busyRetries = busyRetries;
    this.maxRetryWaitMs = maxRetryWaitMs;
    this.sessionId = null;
    this.hlsUrl = null;
    this.chunkDuration = null;
    this.audioSampleRate = null;
    this.session = null; // the init answer as sent by the server (extra fields included)
  }

  url(path) {
    if (/^https?:/.test(path)) return path;
    const base = this.serverUrl || (typeof location !== 'undefined' ? location.origin : '');
    return new URL(path, `${base}/`).href;
  }

  async request(method, path, body, { retryBusy = false, signal, keepalive = false } = {}) {
    for (let attempt = 0; ; attempt++) {
      const credential = this.sessionToken || this.apiKey;
      const headers = credential ? { Authorization: `Bearer ${credential}` } : {};
      const response = await fetch(this.url(path), { method, body, signal, keepalive, headers });
      const text = await response.text();
      let json = null;
      try { json = text ? JSON.parse(text) : null; } catch { json = null; }
      if (response.ok) return json;
      const retryAfter = Number(response.headers.get('retry-after')) || null;
      const busy = response.status === 429 || response.status === 503;
      if (retryBusy && busy && attempt < this.busyRetries) {
        await sleep(Math.min(this.maxRetryWaitMs, (retryAfter ?? 0.5) * 1000), signal);
        continue;
      }
      const fallback = `${method} ${path} failed: HTTP ${response.status}${text && !json ? ` ${text.slice(0, 200)}` : ''}`;
      throw new FacestreamApiError(response.status, messageOf(json, fallback), json, retryAfter);
    }
  }

  /**
   * Creates a session from a face photo.
   * @param {Blob|File} imageFile
   * @param {{crop?: boolean, seed?: number, nfe?: number, cfgScale?: number, chunkDuration?: number,
   *          audioSampleRate?: number, poseStyle?: number[], gazeStyle?: number[], signal?: AbortSignal}} [options]
   * @returns the server's init answer ({status, session_id, hls_url, message, chunk_duration, audio_sample_rate, ...})
   */
  async initSession(imageFile, options = {}) {
    if (this.sessionId) throw new Error('this client already has a session; call cleanup() first');
    const form = new FormData();
    form.append('image', imageFile, imageFile.name || 'face.jpg');
    const fields = {
      crop: options.crop, seed: options.seed, nfe: options.nfe, cfg_scale: options.cfgScale,
      chunk_duration: options.chunkDuration, audio_sample_rate: options.audioSampleRate,
      pose_style: options.poseStyle && JSON.stringify(options.poseStyle),
      gaze_style: options.gazeStyle && JSON.stringify(options.gazeStyle),
    };
    for (const [name, value] of Object.entries(fields)) if (value !== undefined && value !== null) form.append(name, String(value));
    const session = await this.request('POST', `${API}/init`, form, { retryBusy: true, signal: options.signal });
    this.session = session;
    this.sessionId = session.session_id;
    this.sessionToken = session.session_token ?? null;
    this.hlsUrl = this.url(session.hls_url);
    this.chunkDuration = session.chunk_duration;
    this.audioSampleRate = session.audio_sample_rate;
    return session;
  }

  requireSession() {
    if (!this.sessionId) throw new Error('no session: call initSession() first');
    return this.sessionId;
  }

  /**
   * Sends one chunk of speech: raw PCM s16le mono at the session's audio_sample_rate, or a WAV/MP3/FLAC/OGG
   * file. Retries while the server answers 429/503 (queue full), honouring Retry-After. A final chunk
   * may pass null: the speech already sent plays out and the stream ends.
   * @param {Blob|ArrayBuffer|ArrayBufferView|null} audioBlob
   */
  async feedAudioChunk(audioBlob, isFinal = false, { signal } = {}) {
    const sessionId = this.requireSession();
    const form = new FormData();
    form.append('session_id', sessionId);
    if (audioBlob != null) { // a final chunk may carry no audio: "that was all"
      const blob = audioBlob instanceof Blob ? audioBlob : new Blob([audioBlob], { type: 'application/octet-stream' });
      const raw = !blob.type || blob.type === 'application/octet-stream';
      form.append('audio_chunk', blob, blob.name || (raw ? 'chunk.pcm' : `chunk.${blob.type.split('/')[1]}`));
    }
    form.append('is_final_chunk', isFinal ? 'true' : 'false');
    // ?session_id= is the balancer's affinity key (the body is multipart; a balancer cannot read it)
    return this.request('POST', `${API}/feed?session_id=${encodeURIComponent(sessionId)}`, form, { retryBusy: true, signal });
  }

  /** Convenience: an Int16Array (or Float32Array in [-1, 1]) at the session's rate, sent as raw PCM16. */
  async feedPcm(samples, isFinal = false, options = {}) {
    if (isFinal && samples.length === 0) return this.feedAudioChunk(null, true, options);
    const pcm = samples instanceof Int16Array ? samples : floatToPcm16(samples);
    return this.feedAudioChunk(pcm16Blob(pcm), isFinal, options);
  }

  /**
   * Barge-in: drops the queued and in-flight speech; the face is idle within ~100 ms of stream time.
   * @returns the server's answer ({status, session_id, dropped_seconds, ...})
   */
  async interrupt({ signal } = {}) {
    return this.request('POST', `${API}/interrupt/${encodeURIComponent(this.requireSession())}`, undefined, { signal });
  }

  /** ws:// URL of this session's WebSocket (20 ms PCM in, events out). */
  socketUrl() {
    const url = socketUrl(this.requireSession(), this.serverUrl);
    // browsers cannot set headers on a WebSocket: the session token rides as ?token=
    return this.sessionToken ? `${url}?token=${encodeURIComponent(this.sessionToken)}` : url;
  }

  async getStatus({ signal } = {}) {
    return this.request('GET', `${API}/status/${encodeURIComponent(this.requireSession())}`, undefined, { signal });
  }

  /** Resolves once the live playlist exists (first segment written), so players can attach without a 404. */
  async waitForPlaylist({ timeoutMs = 15000, intervalMs = 100, signal } = {}) {
    const deadline = Date.now() + timeoutMs;
    this.requireSession();
    for (;;) {
      const response = await fetch(this.hlsUrl, { cache: 'no-store', signal });
      const text = response.ok ? await response.text() : (await response.body?.cancel(), '');
      if (response.ok && text.includes('#EXTINF')) return text;
      if (Date.now() > deadline) throw new FacestreamApiError(response.status, 'the live stream did not start in time');
      await sleep(intervalMs, signal);
    }
  }

  /**
   * Ends the session on the server (stops its stream, removes its files). Safe to call twice.
   * Pass {keepalive: true} from a 'pagehide' handler so the request outlives the page.
   */
  async cleanup({ keepalive = false } = {}) {
    if (!this.sessionId) return null;
    const sessionId = this.sessionId;
    this.sessionId = null;
    try {
      return await this.request('DELETE', `${API}/session/${encodeURIComponent(sessionId)}`, undefined, { keepalive });
    } catch (error) {
      if (error instanceof FacestreamApiError && error.status === 404) return null; // already gone (expired)
      throw error;
    } finally {
      this.sessionToken = null;
    }
  }
}

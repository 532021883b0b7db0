// One live session as the page sees it: start → feed / finish / interrupt → end, over ONE transport.
//
// A transport is how video comes back and how speech goes out, and the page has two:
//   HlsTransport  video by HLS (hls-player.js: hls.js, LL-HLS when the init answer says `ll_hls`),
//                 speech as ordered POST /feed chunks of the session's chunk length;
//   RtcTransport  video by WebRTC (rtc-player.js), speech over the session's WebSocket
//                 (session-socket.js) in 20 ms messages.
// Both answer the same calls (start, send, final, interrupt, stop), so the controller and the page
// never branch on which one is in use. The controller owns the session's client, the log of what
// was sent (`feeds`, read by the status line and the browser tests) and the start-up timings.

import { ChunkedStreamingClient } from './chunked-streaming-client.js';
import { LivePlayer } from './hls-player.js';
import { RtcPlayer } from './rtc-player.js';
import { SessionSocket } from './session-socket.js';

const now = () => performance.timeOrigin + performance.now();

/** HLS playback; speech as /feed chunks, posted one after another so they arrive in order. */
export class HlsTransport {
  /** @param {HTMLVideoElement} video @param {{onError?: Function, onEnded?: Function}} hooks */
  constructor(video, hooks = {}) {
    this.name = 'hls';
    this.via = 'http'; // speech as POST /feed chunks
    this.player = new LivePlayer(video, hooks);
    this.chunkSeconds = null; // the session's chunk_duration
    this.client = null;
    this.chain = Promise.resolve();
    this.pending = 0; // chunks posted but not answered yet
  }

  async start(client, session, timings) {
    this.client = client;
    await client.waitForPlaylist();
    timings.playlistReadyAt = now();
    this.player.play(client.hlsUrl, { lowLatency: Boolean(session.ll_hls) });
  }

  /** Queues one chunk behind those already posted; resolves to the server's answer (throws its error). */
  send(pcm, isFinal) {
    const client = this.client;
    this.pending++;
    const sent = this.chain.then(() => client.feedPcm(pcm, isFinal));
    this.chain = sent.catch(() => {}).finally(() => { this.pending--; });
    return sent;
  }

  final() { return this.send(new Int16Array(0), true); }

  interrupt() { return this.client.interrupt(); }

  stop() {
    this.player.stop();
    this.client = null;
  }
}

/** WebRTC playback; speech over the session's WebSocket (nothing is queued in the page). */
export class RtcTransport {
  /**
   * @param {HTMLVideoElement} video
   * @param {{onError?: Function, onEnded?: Function}} hooks
   * @param {(event: object) => void} onEvent the socket's server events
   */
  constructor(video, hooks = {}, onEvent = () => {}) {
    this.name = 'webrtc';
    this.via = 'websocket';
    this.player = new RtcPlayer(video, hooks);
    this.onEvent = onEvent;
    this.chunkSeconds = 0.02;
    this.socket = null;
    this.pending = 0;
  }

  async start(client) {
    this.socket = new SessionSocket(client.socketUrl(), { onEvent: this.onEvent });
    await this.socket.open();
    await this.player.play(client.sessionId, client.sessionToken || client.apiKey);
  }

  /** Sends at once; rejects when the socket is closed or its buffer is over its bound. */
  async send(pcm, isFinal) {
    if (pcm.length && !this.socket?.sendPcm(pcm)) {
      throw new Error('The connection is not keeping up with the microphone; capture was stopped.');
    }
    if (isFinal) this.socket?.final();
    return { status: 'sent' };
  }

  final() { return this.send(new Int16Array(0), true); }

  async interrupt() {
    if (!this.socket?.isOpen) throw new Error('The session socket is closed.');
    this.socket.interrupt();
    return { status: 'sent' };
  }

  stop() {
    this.player.stop();
    this.socket?.close();
    this.socket = null;
  }
}

export class SessionController {
  /**
   * @param {{hls: HlsTransport, webrtc: RtcTransport}} transports
   * @param {{onAnswer?: (answer: object) => void, onError?: (error: unknown) => void}} [hooks]
   */
  constructor(transports, { onAnswer = () => {}, onError = () => {} } = {}) {
    this.transports = transports;
    this.onAnswer = onAnswer;
    this.onError = onError;
    this.transport = null;
    this.client = null;
    this.session = null;
    this.finished = false;
    this.feeds = []; // {at, bytes, isFinal, ok, via?} per chunk sent (the last 1000)
    this.timings = {};
  }

  get active() { return Boolean(this.client); }

  get pendingFeeds() { return this.transport?.pending ?? 0; }

  /** Seconds of speech per chunk for the microphone and file streaming on this transport. */
  get chunkSeconds() { return this.transport?.chunkSeconds ?? this.client?.chunkDuration ?? 1; }

  /**
   * Creates the session and starts playback on the chosen transport ('hls' or 'webrtc').
   * `options` are the init fields plus `apiKey` (only when the server has keys).
   * `beforePlay(client)` runs once the session exists, before playback starts (e.g. a latency probe).
   */
  async start(face, options, transportName, { beforePlay = async () => {} } = {}) {
    if (this.client) throw new Error('a session is already running; end it first');
    this.finished = false;
    this.feeds = [];
    this.timings = { initStartedAt: now() };
    const transport = this.transports[transportName] ?? this.transports.hls;
    const { apiKey = null, ...initOptions } = options;
    const client = new ChunkedStreamingClient('', { apiKey });
    this.session = await client.initSession(face, initOptions);
    this.client = client;
    this.transport = transport;
    this.timings.initAnsweredAt = now();
    await beforePlay(client);
    await transport.start(client, this.session, this.timings);
    return this.session;
  }

  /** Sends one chunk of PCM16 (may be empty when final); resolves true once the server took it. */
  async feed(pcm, isFinal = false) {
    const entry = { at: Date.now(), bytes: pcm.length * 2, isFinal, ok: null, via: this.transport?.via };
    this.feeds.push(entry);
    if (this.feeds.length > 1000) this.feeds.shift();
    if (isFinal) this.finished = true;
    try {
      const answer = await this.transport.send(pcm, isFinal);
      entry.ok = true;
      this.onAnswer(answer);
    } catch (error) {
      entry.ok = false;
      this.onError(error);
    }
    return entry.ok;
  }

  /** The last chunk (without audio): what is queued plays out, then the stream ends. */
  async finish() {
    if (this.finished || !this.client) return false;
    return this.feed(new Int16Array(0), true);
  }

  /** Barge-in: queued and in-flight speech is dropped; the face goes idle at once. */
  async interrupt() {
    if (!this.client) return null;
    return this.transport.interrupt();
  }

  /** Stops playback and the socket, then deletes the session on the server. */
  async end() {
    this.transport?.stop();
    this.transport = null;
    const client = this.client;
    this.client = null;
    await client?.cleanup();
  }
}

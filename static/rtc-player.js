// WebRTC playback of a session (the sub-second path): the browser offers to receive video and
// audio, POSTs the offer to /api/audio-driven/chunked/webrtc/{id} and plays the answer's stream.
//
// Why wait for ICE gathering before posting: the server (aiortc) takes one offer with every
// candidate in it and answers likewise (no trickle ICE), so one round trip sets up the call.

import { API } from './chunked-streaming-client.js';

/** Resolves once `pc` has gathered its candidates (or after `timeoutMs`, with what it has). */
export function iceGatheringDone(pc, timeoutMs = 3000) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    }
    function check() { if (pc.iceGatheringState === 'complete') done(); }
    pc.addEventListener('icegatheringstatechange', check);
  });
}

export class RtcPlayer {
  /**
   * @param {HTMLVideoElement} video
   * @param {{baseUrl?: string, iceServers?: RTCIceServer[], onError?: (message: string, fatal: boolean) => void, onEnded?: () => void}} [options]
   */
  constructor(video, { baseUrl = '', iceServers = [], onError = () => {}, onEnded = () => {} } = {}) {
    this.video = video;
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.iceServers = iceServers;
    this.onError = onError;
    this.onEnded = onEnded;
    this.pc = null;
    this.fatalErrors = [];
  }

  get engine() { return this.pc ? 'webrtc' : 'none'; }

  /** Not measured for WebRTC (the browser's jitter buffer is ~tens of ms): null like native HLS. */
  get latency() { return null; }

  get connectionState() { return this.pc?.connectionState ?? 'closed'; }

  /**
   * Starts receiving session `sessionId`; resolves when the answer is applied. `token`: the
   * session token (or an API key) when the server has keys (README "Security").
   */
  async play(sessionId, token = null) {
    this.stop();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    const stream = new MediaStream();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addEventListener('track', (event) => {
      stream.addTrack(event.track);
      if (this.video.srcObject !== stream) this.video.srcObject = stream;
    });
    pc.addEventListener('connectionstatechange', () => {
      if (pc !== this.pc) return;
      if (pc.connectionState === 'failed') {
        this.fatalErrors.push('connection failed');
        this.onError('The WebRTC connection to the server failed (a firewall, or no route between the two).', true);
      } else if (pc.connectionState === 'closed' || pc.connectionState === 'disconnected') {
        this.onEnded();
      }
    });
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringDone(pc);
    const response = await fetch(`${this.baseUrl}${API}/webrtc/${encodeURIComponent(sessionId)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.message || `the server refused the WebRTC offer (HTTP ${response.status})`);
    if (pc !== this.pc) return; // stopped meanwhile
    await pc.setRemoteDescription(body);
    this.video.play().catch(() => {}); // autoplay may wait for a gesture; the controls remain
  }

  stop() {
    const pc = this.pc;
    this.pc = null;
    if (pc) pc.close();
    if (this.video.srcObject) {
      for (const track of this.video.srcObject.getTracks()) track.stop();
      this.video.srcObject = null;
    }
  }
}

// The session's WebSocket (/api/audio-driven/chunked/ws/{id}): PCM16 in as binary messages, control
// messages ({"type": "final" | "interrupt" | "keepalive"}) as text, server events back as JSON.
// The WebRTC transport (session-controller.js) sends the microphone over it in 20 ms messages.

export class SessionSocket {
  /**
   * @param {string} url the session's socket URL (`client.socketUrl()`)
   * @param {{onEvent?: (event: object) => void, maxBufferedBytes?: number}} [options]
   */
  constructor(url, { onEvent = () => {}, maxBufferedBytes = 256 * 1024 } = {}) {
    this.url = url;
    this.onEvent = onEvent;
    this.maxBufferedBytes = maxBufferedBytes;
    this.ws = null;
    this.sent = 0; // binary messages sent (their seq numbers are 0 … sent-1)
    this.events = []; // the last 500 events, for the status line and tests
  }

  /** Resolves once the socket is open. */
  open() {
    const ws = new WebSocket(this.url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.addEventListener('message', ({ data }) => {
      if (typeof data !== 'string') return;
      const event = JSON.parse(data);
      this.events.push(event);
      if (this.events.length > 500) this.events.shift();
      this.onEvent(event);
    });
    return new Promise((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('error', () => reject(new Error('could not open the session WebSocket')), { once: true });
    });
  }

  get isOpen() { return this.ws?.readyState === WebSocket.OPEN; }

  /**
   * Sends one PCM16 message; false when the socket is closed or its send buffer is over
   * `maxBufferedBytes` (the network is not keeping up: the caller decides, nothing is queued here).
   */
  sendPcm(pcm16) {
    if (!this.isOpen || this.ws.bufferedAmount > this.maxBufferedBytes) return false;
    this.ws.send(pcm16.buffer.slice(pcm16.byteOffset, pcm16.byteOffset + pcm16.byteLength));
    this.sent++;
    return true;
  }

  control(type) {
    if (this.isOpen) this.ws.send(JSON.stringify({ type }));
  }

  final() { this.control('final'); }

  interrupt() { this.control('interrupt'); }

  close() {
    this.ws?.close();
    this.ws = null;
  }
}

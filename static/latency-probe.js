// Debug/test mode: reads the frame-index barcode (server/barcode.py; keep the two in step) off every
// frame the browser actually presents, and records when it was shown.
//
// Why requestVideoFrameCallback: it fires once per composited video frame with the time the frame is
// expected on screen (expectedDisplayTime, in performance.now()'s timebase). Display times are
// reported as Unix epoch milliseconds (performance.timeOrigin + expectedDisplayTime) so they compare
// with the server's time.time() stamps; the page also measures its offset to the server's clock.

export const CELLS = 32;
const START = [1, 0, 1, 1];
const END = [0, 1, 0];
const INDEX_BITS = 24;

/** Index encoded by 32 cell bits, or null when a pattern or the parity does not match. */
export function decodeBits(bits) {
  if (bits.length !== CELLS) return null;
  if (START.some((b, i) => bits[i] !== b) || END.some((b, i) => bits[CELLS - END.length + i] !== b)) return null;
  const data = bits.slice(START.length, START.length + INDEX_BITS);
  const ones = data.reduce((a, b) => a + b, 0);
  if (ones % 2 !== bits[START.length + INDEX_BITS]) return null;
  return data.reduce((value, bit) => value * 2 + bit, 0);
}

/** Reads the barcode from RGBA pixels of the top `cell` rows of a frame `width` pixels wide. */
export function readBarcode(rgba, width) {
  const cell = Math.floor(width / CELLS);
  if (cell < 4) return null;
  const lo = Math.floor(cell / 4);
  const hi = cell - lo;
  const means = [];
  for (let c = 0; c < CELLS; c++) {
    let sum = 0;
    let count = 0;
    for (let y = lo; y < hi; y++) {
      for (let x = c * cell + lo; x < c * cell + hi; x++) {
        const p = (y * width + x) * 4;
        sum += 0.299 * rgba[p] + 0.587 * rgba[p + 1] + 0.114 * rgba[p + 2];
        count++;
      }
    }
    means.push(sum / count);
  }
  const known = [...START.map((b, i) => [i, b]), ...END.map((b, i) => [CELLS - END.length + i, b])];
  const avg = (bit) => { const v = known.filter(([, b]) => b === bit).map(([i]) => means[i]); return v.reduce((a, b) => a + b, 0) / v.length; };
  const white = avg(1);
  const black = avg(0);
  if (white - black < 64) return null;
  const threshold = (white + black) / 2;
  return decodeBits(means.map((m) => (m > threshold ? 1 : 0)));
}

/** Records {index, shownAt} for every presented frame of `video` (shownAt: Unix epoch ms). */
export class LatencyProbe {
  constructor(video, { maxRecords = 20000 } = {}) {
    this.video = video;
    this.maxRecords = maxRecords;
    this.records = [];
    this.unreadable = 0;
    this.firstFrameAt = null; // epoch ms of the first frame shown at all
    this.canvas = document.createElement('canvas');
    this.context = this.canvas.getContext('2d', { willReadFrequently: true });
    this.running = false;
  }

  start() {
    if (!('requestVideoFrameCallback' in HTMLVideoElement.prototype)) throw new Error('requestVideoFrameCallback is not supported here');
    this.running = true;
    const onFrame = (now, metadata) => {
      if (!this.running) return;
      this.onFrame(metadata);
      this.video.requestVideoFrameCallback(onFrame);
    };
    this.video.requestVideoFrameCallback(onFrame);
  }

  stop() { this.running = false; }

  onFrame(metadata) {
    const shownAt = performance.timeOrigin + metadata.expectedDisplayTime;
    this.firstFrameAt ??= shownAt;
    const width = metadata.width || this.video.videoWidth;
    const cell = Math.floor(width / CELLS);
    if (cell < 4) return;
    if (this.canvas.width !== width) { this.canvas.width = width; this.canvas.height = cell; }
    // Only the strip is copied: source rect = the top `cell` rows at the video's intrinsic size.
    this.context.drawImage(this.video, 0, 0, width, cell, 0, 0, width, cell);
    const index = readBarcode(this.context.getImageData(0, 0, width, cell).data, width);
    if (index === null) { this.unreadable++; return; }
    if (this.records.length < this.maxRecords) this.records.push({ index, shownAt, mediaTime: metadata.mediaTime });
  }
}

/**
 * Offset to add to this page's epoch clock to get the server's (NTP-style, from a route answering
 * {"server_time": seconds}): the sample with the shortest round trip wins; its error is ≤ rtt/2.
 */
export async function measureClockOffset(url, samples = 5) {
  let best = null;
  for (let i = 0; i < samples; i++) {
    const t0 = performance.timeOrigin + performance.now();
    const response = await fetch(url, { cache: 'no-store' });
    const t1 = performance.timeOrigin + performance.now();
    if (!response.ok) return null;
    const { server_time: serverTime } = await response.json();
    const rtt = t1 - t0;
    const offset = serverTime * 1000 - (t0 + t1) / 2;
    if (!best || rtt < best.rttMs) best = { offsetMs: offset, rttMs: rtt };
  }
  return best;
}

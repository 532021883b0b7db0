// Live HLS player: hls.js (vendored, static/vendor/hls.min.js) where Media Source Extensions exist,
// the browser's own HLS (Safari, iOS) otherwise.

import { keepLiveSync } from './ll-sync.js';

/**
 * Low-latency live settings measured with 1 s TS segments: ~1.34 s glass-to-glass against ~1.6 s
 * with hls.js defaults and ~3.7 s when joining late with defaults. Sync one segment from the live
 * edge, allow drifting to three before seeking, and catch up by playing up to 1.5× faster.
 */
export const LIVE_CONFIG = Object.freeze({
  lowLatencyMode: true,
  liveSyncDurationCount: 1,
  liveMaxLatencyDurationCount: 3,
  maxLiveSyncPlaybackRate: 1.5,
  backBufferLength: 4,
});

/**
 * Low-Latency HLS (the server's `hls_mode=ll`, init answer `ll_hls: true`): 200 ms parts and
 * blocking playlist reload. No liveSyncDuration(Count) on purpose: hls.js then holds back the
 * playlist's PART-HOLD-BACK (3 parts, 0.6 s) instead of whole segments; keepLiveSync plays up to
 * 1.5× faster while the player is behind that.
 */
export const LL_CONFIG = Object.freeze({
  lowLatencyMode: true,
  maxLiveSyncPlaybackRate: 1, // catch-up is keepLiveSync's (ll-sync.js): hls.js needs > 1 s buffered
  liveSyncOnStallIncrease: 0.1, // a stall adds 0.1 s to the target, not a whole segment
  backBufferLength: 4,
  // Parts are parsed on the page's thread. With the worker, a back-buffer flush that completes
  // between the worker's "parsed" and "flushed" messages for a part makes hls.js 1.7 forget that
  // part's timing ("Found no media in … part"), treat it as a gap and freeze 3.5–3.8 s (about once
  // per 10 loaded minutes). On the page's thread both happen in one task, so no flush fits
  // between them; fMP4 parts are passed through, not transmuxed, so this costs the page little.
  enableWorker: false,
  // A part that does fail is retried after 200 ms (doubling to 1 s), not hls.js's 1 s → 8 s,
  // which is longer than the whole LL window.
  fragLoadPolicy: {
    default: {
      maxTimeToFirstByteMs: 10000,
      maxLoadTimeMs: 120000,
      timeoutRetry: { maxNumRetry: 4, retryDelayMs: 0, maxRetryDelayMs: 0 },
      errorRetry: { maxNumRetry: 6, retryDelayMs: 200, maxRetryDelayMs: 1000 },
    },
  },
});

/** Plain-words text for an hls.js error event. */
export function describeHlsError(data) {
  const what = {
    networkError: 'The video stream could not be loaded from the server',
    mediaError: 'The browser could not decode the video stream',
    muxError: 'The video stream is damaged',
  }[data.type] ?? 'The video player failed';
  return `${what} (${data.details}).`;
}

export class LivePlayer {
  /**
   * @param {HTMLVideoElement} video
   * @param {{onError?: (message: string, fatal: boolean) => void, onEnded?: () => void}} [hooks]
   */
  constructor(video, { onError = () => {}, onEnded = () => {} } = {}) {
    this.video = video;
    this.onError = onError;
    this.onEnded = onEnded;
    this.hls = null;
    this.fatalErrors = [];
    this.lowLatency = false;
  }

  get engine() {
    return this.hls ? 'hls.js' : this.video.src ? 'native' : 'none';
  }

  /** Seconds behind the live edge as hls.js estimates it (null with native HLS). */
  get latency() {
    return this.hls && Number.isFinite(this.hls.latency) ? this.hls.latency : null;
  }

  /**
   * @param {string} url the live playlist
   * @param {{lowLatency?: boolean}} [options] true for an LL-HLS stream (init answer `ll_hls`)
   */
  play(url, { lowLatency = false } = {}) {
    this.stop();
    this.lowLatency = lowLatency;
    const Hls = globalThis.Hls;
    if (Hls?.isSupported()) {
      // globalThis.facestreamHlsDebug: an optional hls.js logger ({log, warn, …}) for diagnosis
      const debug = globalThis.facestreamHlsDebug ? { debug: globalThis.facestreamHlsDebug } : {};
      const hls = new Hls({ ...(lowLatency ? LL_CONFIG : LIVE_CONFIG), ...debug });
      hls.on(Hls.Events.ERROR, (_event, data) => {
        if (!data.fatal) return;
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR && !this.recovered) {
          this.recovered = true; // one decoder reset is hls.js's documented remedy
          hls.recoverMediaError();
          return;
        }
        this.fatalErrors.push(data.details);
        this.onError(describeHlsError(data), true);
      });
      hls.on(Hls.Events.BUFFER_EOS, () => this.onEnded());
      hls.on(Hls.Events.MANIFEST_PARSED, () => this.startPlayback());
      hls.loadSource(url);
      hls.attachMedia(this.video);
      this.hls = hls;
      if (lowLatency) this.stopSync = keepLiveSync(hls, this.video);
    } else if (this.video.canPlayType('application/vnd.apple.mpegurl')) {
      this.video.src = url;
      this.video.addEventListener('ended', () => this.onEnded(), { once: true });
      this.startPlayback();
    } else {
      this.onError('This browser can play neither HLS nor Media Source video.', true);
    }
  }

  /** Plays with sound when the browser allows it, muted otherwise (autoplay rules). */
  async startPlayback() {
    try {
      await this.video.play();
    } catch {
      this.video.muted = true;
      try {
        await this.video.play();
        this.onError('Playing muted: the browser blocked sound. Use the player controls to unmute.', false);
      } catch {
        this.onError('The browser blocked playback; press play on the video.', false);
      }
    }
  }

  stop() {
    this.stopSync?.();
    this.stopSync = null;
    this.hls?.destroy();
    this.hls = null;
    this.recovered = false;
    this.video.removeAttribute('src');
    this.video.load();
  }
}

// Part-aware live sync for Low-Latency HLS. hls.js (1.7) only speeds playback up to reach its
// target latency while more than 1 s is buffered ahead, which an LL stream held 0.6 s behind the
// live edge never has, so a player that started a part or two late stays late for good. This
// keeps the rate itself (hls.js's own catch-up is turned off with maxLiveSyncPlaybackRate: 1),
// and after a long stall skips forward within the buffer rather than playing fast for seconds.

/**
 * Playback rate for a live player: 1 when at (or ahead of) the target, up to `maxRate` when
 * behind it, never faster than the buffer allows (it must not run dry: that is a stall).
 * @param {number} latency seconds behind the live edge
 * @param {number} target seconds behind the live edge wanted
 * @param {number} forward seconds buffered ahead of the playhead
 */
export function catchUpRate(latency, target, forward, { maxRate = 1.5, deadband = 0.08, minForward = 0.2 } = {}) {
  if (![latency, target, forward].every(Number.isFinite)) return 1;
  const behind = latency - target;
  if (behind <= deadband || forward <= minForward) return 1;
  return Math.round(Math.min(maxRate, 1 + behind) * 20) / 20;
}

/**
 * Seconds to skip forward when the player is so far behind (after a long stall) that playing
 * faster would take too long: back to the target, within what is buffered; 0 otherwise.
 */
export function skipAhead(latency, target, forward, { jumpAfter = 1.0, keep = 0.2 } = {}) {
  if (![latency, target, forward].every(Number.isFinite)) return 0;
  const behind = latency - target;
  if (behind <= jumpAfter) return 0;
  return Math.max(0, Math.min(behind, forward - keep));
}

/** Seconds of media buffered ahead of the playhead. */
export function forwardBuffer(video) {
  const t = video.currentTime;
  for (let i = 0; i < video.buffered.length; i++) {
    if (video.buffered.start(i) <= t + 0.05 && t <= video.buffered.end(i)) return video.buffered.end(i) - t;
  }
  return 0;
}

/** Adjusts `video.playbackRate` every `periodMs` from hls.js's latency estimate; returns a stop(). */
export function keepLiveSync(hls, video, { periodMs = 250, maxRate = 1.5 } = {}) {
  const timer = setInterval(() => {
    if (video.paused || !Number.isFinite(hls.latency) || !Number.isFinite(hls.targetLatency)) return;
    const forward = forwardBuffer(video);
    const skip = skipAhead(hls.latency, hls.targetLatency, forward);
    if (skip > 0.5) {
      video.currentTime += skip;
      return;
    }
    const rate = catchUpRate(hls.latency, hls.targetLatency, forward, { maxRate });
    if (video.playbackRate !== rate) video.playbackRate = rate;
  }, periodMs);
  return () => clearInterval(timer);
}

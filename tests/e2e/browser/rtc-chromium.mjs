// Chromium for the WebRTC tests and benchmark: the page tests' settings (chromium.mjs) plus what a
// loopback-only peer connection needs. The tests run Chromium and the server inside a network
// namespace whose only interface is `lo`; Chromium skips loopback host candidates unless told, and
// would hide its addresses behind mDNS names that nothing in the namespace resolves.

import { CHROMIUM_ARGS, launch } from './chromium.mjs';

export const RTC_CHROMIUM_ARGS = [
  ...CHROMIUM_ARGS,
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

/** A browser context in a new user-data-dir, set up for loopback WebRTC; close() removes the profile. */
export function launchForWebRtc({ viewport = { width: 1280, height: 900 } } = {}) {
  return launch({ viewport, args: RTC_CHROMIUM_ARGS });
}

/**
 * Runs in the page (pass to page.evaluate with the dotted path of an RTCPeerConnection under
 * window): the candidate pair ICE selected, as {local, remote, protocol, rttMs}, or null before one
 * is selected. The tests assert both ends are 127.0.0.1: only loopback carried the media.
 */
export async function selectedCandidatePair(pcPath) {
  const pc = pcPath.split('.').reduce((obj, key) => obj?.[key], window);
  if (!pc) return null;
  const stats = await pc.getStats();
  let pair = null;
  for (const s of stats.values()) {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  }
  if (!pair) {
    for (const s of stats.values()) {
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
    }
  }
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId);
  const remote = stats.get(pair.remoteCandidateId);
  return {
    local: local?.address ?? local?.ip ?? null,
    remote: remote?.address ?? remote?.ip ?? null,
    protocol: local?.protocol ?? null,
    rttMs: pair.currentRoundTripTime == null ? null : pair.currentRoundTripTime * 1000,
  };
}

// The page's part-aware live sync (static/ll-sync.js) in node: pure rate decisions.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { catchUpRate, skipAhead } from '../../../static/ll-sync.js';

test('plays at normal speed at or near the target latency', () => {
  assert.equal(catchUpRate(0.6, 0.6, 0.5), 1);
  assert.equal(catchUpRate(0.65, 0.6, 0.5), 1); // inside the dead band
  assert.equal(catchUpRate(0.4, 0.6, 0.5), 1); // ahead of the target: never slower than 1
});

test('speeds up in proportion to the lag, capped', () => {
  assert.equal(catchUpRate(0.9, 0.6, 0.5), 1.3);
  assert.equal(catchUpRate(3, 0.6, 2), 1.5);
  assert.equal(catchUpRate(3, 0.6, 2, { maxRate: 1.25 }), 1.25);
});

test('never speeds up into an empty buffer or on unknown figures', () => {
  assert.equal(catchUpRate(1.2, 0.6, 0.1), 1);
  assert.equal(catchUpRate(NaN, 0.6, 1), 1);
  assert.equal(catchUpRate(1, null, 1), 1);
});

test('skips forward within the buffer only when far behind', () => {
  assert.equal(skipAhead(1.2, 0.6, 2), 0); // 0.6 s behind: playing faster is enough
  assert.equal(skipAhead(3.1, 0.6, 3), 2.5); // back to the target
  assert.equal(skipAhead(3.1, 0.6, 1.2), 1); // no further than what is buffered (minus a margin)
  assert.equal(skipAhead(3.1, 0.6, 0.1), 0);
  assert.equal(skipAhead(undefined, 0.6, 3), 0);
});

test('LL parts are parsed on the page thread and a failed part is retried within a second', async () => {
  // hls.js 1.7 with its worker: a back-buffer flush landing between a part's "parsed" and
  // "flushed" messages made it treat the part as a gap (a 3.5-3.8 s freeze per ~10 loaded
  // minutes; benchmarks/glass_to_glass_llhls.py reports hlsjs_parts_without_media)
  const { LL_CONFIG, LIVE_CONFIG } = await import('../../../static/hls-player.js');
  assert.equal(LL_CONFIG.enableWorker, false);
  assert.notEqual(LIVE_CONFIG.enableWorker, false); // TS segments are transmuxed: worth a worker
  const retry = LL_CONFIG.fragLoadPolicy.default.errorRetry;
  assert.ok(retry.retryDelayMs <= 200 && retry.maxRetryDelayMs <= 1000, JSON.stringify(retry));
});

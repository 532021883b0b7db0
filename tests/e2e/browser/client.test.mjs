// The reusable JS client (static/chunked-streaming-client.js) against the real server.
// Run through pytest (tests/test_browser_page.py), which starts uvicorn and sets FACESTREAM_TEST_URL.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { ChunkedStreamingClient, FacestreamApiError, pcm16ToWav } from '../../../static/chunked-streaming-client.js';
import { serverUrl } from './chromium.mjs';
import { readWav } from './wav.mjs';

const ROOT = new URL('../../../', import.meta.url).pathname;
const face = () => new Blob([readFileSync(join(ROOT, 'assets/sample_face.jpg'))], { type: 'image/jpeg' });
const speech = readWav(join(ROOT, 'assets/sample_speech.wav'));

async function until(what, predicate, timeoutMs, intervalMs = 200) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

describe('against the server', () => {
  test('raw PCM chunks: init, playlist, feed, final → complete, then cleanup', async () => {
    const client = new ChunkedStreamingClient(serverUrl());
    const rate = speech.sampleRate;
    const session = await client.initSession(face(), { chunkDuration: 0.5, audioSampleRate: rate, seed: 7 });
    try {
      assert.equal(session.status, 'success');
      assert.match(session.session_id, /^[0-9a-f]{32}$/);
      assert.equal(session.hls_url, `/hls/${session.session_id}/playlist.m3u8`);
      assert.equal(session.chunk_duration, 0.5);
      assert.equal(session.audio_sample_rate, rate);
      assert.equal(client.hlsUrl, `${serverUrl()}${session.hls_url}`);
      assert.match(await client.waitForPlaylist({ timeoutMs: 10000 }), /#EXTINF/);

      const seconds = 3;
      const pcm = speech.samples.subarray(0, seconds * rate);
      const chunk = rate / 2;
      for (let start = 0; start < pcm.length; start += chunk) {
        const isFinal = start + chunk >= pcm.length;
        const answer = await client.feedPcm(pcm.subarray(start, start + chunk), isFinal);
        assert.equal(answer.status, 'success');
        assert.equal(answer.session_id, session.session_id);
      }
      const done = await until('status complete', async () => {
        const status = await client.getStatus();
        assert.notEqual(status.status, 'failed', `session failed: ${status.error}`);
        return status.status === 'complete' && status;
      }, 30000);
      assert.ok(done.total_frames_generated >= seconds * 25 - 1, `frames: ${done.total_frames_generated}`);
      const playlist = await (await fetch(client.hlsUrl)).text();
      assert.match(playlist, /#EXT-X-ENDLIST/);
      await assert.rejects(client.feedPcm(pcm.subarray(0, chunk)), (e) => e instanceof FacestreamApiError && e.status === 409);
    } finally {
      await client.cleanup();
    }
    assert.equal(await client.cleanup(), null, 'a second cleanup is a no-op');
  });

  test('WAV chunks at their own rate are accepted', async () => {
    const client = new ChunkedStreamingClient(serverUrl());
    await client.initSession(face(), {}); // default audio_sample_rate; the WAV carries 16 kHz
    try {
      const half = speech.sampleRate / 2;
      const answer = await client.feedAudioChunk(pcm16ToWav(speech.samples.subarray(0, half), speech.sampleRate));
      assert.equal(answer.status, 'success');
      const status = await client.getStatus();
      assert.equal(status.session_id, client.sessionId);
      assert.ok(['created', 'streaming'].includes(status.status), status.status);
    } finally {
      await client.cleanup();
    }
  });

  test('errors come back typed, with the server message in plain words', async () => {
    const client = new ChunkedStreamingClient(serverUrl());
    const notImage = new Blob([new TextEncoder().encode('this is not an image')], { type: 'image/jpeg' });
    await assert.rejects(client.initSession(notImage), (e) => {
      assert.ok(e instanceof FacestreamApiError);
      assert.ok(e.status >= 400 && e.status < 500, `status ${e.status}`);
      assert.ok(e.message.length > 5 && !/HTTP \d+$/.test(e.message), e.message);
      return true;
    });
    await assert.rejects(client.feedPcm(new Int16Array(100)), /no session/);

    await client.initSession(face(), {});
    const gone = client.sessionId;
    await client.cleanup();
    client.sessionId = gone; // pretend we still hold it
    await assert.rejects(client.getStatus(), (e) => e instanceof FacestreamApiError && e.status === 404);
    await assert.rejects(client.feedPcm(new Int16Array(100)), (e) => e instanceof FacestreamApiError && e.status === 404);
    assert.equal(await client.cleanup(), null, 'cleanup of an already deleted session is quiet');
  });
});

// The status panel: session state, frames, queued speech, live latency, startup time, messages.
// Polls the session's status once a second while a session runs; stops on its own at the end.

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
const ENDED = new Set(['complete', 'failed', 'closed']);

const STATE_WORDS = {
  created: 'started, waiting for speech',
  streaming: 'live',
  draining: 'playing out the last speech',
  complete: 'finished',
  failed: 'failed',
  closed: 'closed',
};

export class StatusPanel {
  constructor() {
    this.timer = null;
    this.last = null;
  }

  state(text) { $('st-state').textContent = text; }
  say(text) { $('message').textContent = text; }
  error(text) { $('error').textContent = text; }
  clear() { this.say(''); this.error(''); $('st-startup').textContent = '–'; }
  startup(seconds) { $('st-startup').textContent = `${seconds.toFixed(2)} s to the first frame`; }

  /** Shows what a /feed answer says right away (frames so far, speech queued). */
  fed(answer) {
    if (answer && typeof answer === 'object') this.show({ ...this.last, ...answer, status: answer.session_status ?? this.last?.status });
  }

  show(status) {
    this.last = status;
    if (status.status) this.state(STATE_WORDS[status.status] ?? status.status);
    const frames = status.total_frames_generated ?? status.frames_generated;
    if (frames !== undefined) $('st-frames').textContent = String(frames);
    const queued = status.queued_audio_seconds ?? status.queued_speech_seconds;
    if (queued !== undefined) $('st-queued').textContent = `${Number(queued).toFixed(1)} s`;
    else if (status.buffer_samples !== undefined) $('st-queued').textContent = `${status.buffer_samples} samples`;
    if (status.error) this.error(`The server reports: ${status.error}`);
  }

  watch(client, player) {
    this.unwatch();
    const tick = async () => {
      const latency = player.latency;
      $('st-latency').textContent = latency === null ? '–' : `${latency.toFixed(2)} s behind live`;
      $('st-player').textContent = `${player.engine}, ${player.video.paused ? 'paused' : 'playing'} at ${player.video.currentTime.toFixed(1)} s`;
      try {
        const status = await client.getStatus();
        this.show(status);
        if (ENDED.has(status.status)) return this.unwatch();
      } catch (error) {
        if (error?.status === 404) { this.state('expired or deleted'); return this.unwatch(); }
      }
      if (this.timer !== null) this.timer = setTimeout(tick, POLL_MS);
    };
    this.timer = setTimeout(tick, 0);
  }

  unwatch() {
    clearTimeout(this.timer);
    this.timer = null;
  }
}

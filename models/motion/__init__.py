"""Streaming audio→motion and idle motion for the CPU engine.

Mouth: loudness sets how far the jaw opens, the recognised phone sets which shape it takes.
A per-block level in dB is normalised against a tracked noise floor and a decaying speech peak
(``loudness``), so any voice at any gain moves the mouth and silence or a noise bed closes it.
pocketsphinx allphone decoding (``recognizer``) labels frames with English phones that map to
visemes (open / spread / rounded / bilabial press / labiodental ...) blended over ±2 frames for
coarticulation (``visemes``). Allphone rather than word decoding because mouth shapes need phones,
not words, and a phone loop has no vocabulary to fail on; the envelope keeps other languages and
mislabelled audio moving plausibly, since a wrong phone only changes the shape, not the timing.

Closure: M/B/P shut the lips whatever the loudness (``closure``): a frame recognised as a
bilabial, or whose sound is a closure valley (quieter than the open sound on both sides, without
frication), sets ``lip_press`` and multiplies the jaw by (1 - closure), so the loudness path can
never hold the lips apart; the allphone decoder alone labels only ~1/4 of aligned bilabials.

Idle: seeded blinks (``blinks``), breathing/drift/speech nods (``head``) and saccades (``gaze``).

Chunk invariance: ``MotionStream`` cuts the timeline into fixed 640-sample blocks (one per frame)
whatever the push sizes, and every state change happens once per block in block order: the
loudness trackers, the decoder (exactly one block per ``process_raw``; utterance start/end on
the block-level voice gate, bounded length), the partial-hypothesis read, and the idle
generators, which advance per emitted frame. A frame is emitted as soon as ``LOOKAHEAD_FRAMES``
later blocks exist (inside the block loop, before any later hypothesis is read), so its value
depends on the audio prefix only. Pooled decoders are reset per utterance (``reinit_feat`` plus
the stream's own saved CMN), so which decoder a stream gets cannot change its output either.

Cost: silence costs ~0.002 real-time (no decoding); voiced audio ~0.04 on one core, almost all
of it pocketsphinx (``topn`` 2: ~10 % faster than 4, at ~13 points of phone agreement; a fixed
-70 dBFS bed under every block keeps digital silence out of the decoder, which both doubles its
bilabial hits and lowers its cost).
"""

from models.motion.stream import LOOKAHEAD_FRAMES, MotionStream, validate_pcm

__all__ = ["LOOKAHEAD_FRAMES", "MotionStream", "validate_pcm"]

"""Audio in: decoding uploaded chunks, stateful resampling, and the per-session speech buffers."""

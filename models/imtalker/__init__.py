"""IMTalker neural engine: audio -> 32-d motion codes (flow matching) -> 512x512 frames (IMT renderer).

Module names and parameter names mirror the published checkpoints so their state dicts load
unchanged; the math is re-implemented from ARCHITECTURE.md of the conformance fixtures.
"""

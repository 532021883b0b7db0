"""Pure compute: face analysis, audio-to-motion, idle motion, renderers, engines.

Nothing in this package knows about asyncio, HTTP, sessions or ffmpeg (see docs/DESIGN.md).
"""

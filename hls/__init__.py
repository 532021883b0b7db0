"""Frame + audio -> bytes: ffmpeg HLS writer, MP4 recording, LL-HLS. Knows ffmpeg, not HTTP."""

"""Frame + audio -> bytes: ffmpeg HLS writer, MP4 recording, LL-HLS. Knows ffmpeg, not HTTP.

Entry points: ``hls.sink.HlsSink`` (live TS HLS + recording segments), ``hls.mp4.Mp4Writer`` and
``hls.mp4.remux_hls_to_mp4`` (MP4 files), ``hls.llhls.sink.LlHlsSink`` (LL-HLS parts), errors in
``hls.errors``. Every sink takes one tick per ``write(frame, audio)``: one ``VideoFrame`` and exactly
1/fps s of ``AudioSlice`` with the same index, so audio and video share one clock by construction.
"""

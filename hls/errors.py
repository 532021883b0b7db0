"""Errors a sink raises. The server maps them to session outcomes (restart the sink or fail the session)."""

from __future__ import annotations

from models.errors import FacestreamError


class SinkError(FacestreamError):
    """Base of every sink failure; ``str(err)`` is a message fit for a log or a session's error field."""


class SinkStalledError(SinkError):
    """The encoder fell ``queue_ticks`` behind and did not catch up within the write timeout.

    Nothing of the rejected tick was queued (neither its frame nor its audio), so the sink's
    audio and video stay locked; the caller may retry the same tick or give up on the sink.
    """


class SinkFailedError(SinkError):
    """ffmpeg exited or a pipe broke; the sink is dead. The message carries ffmpeg's last stderr lines."""


class SinkClosedError(SinkError):
    """A tick was written after ``end()`` or ``close()``."""

"""Domain errors raised by the compute layer. The server maps them to HTTP statuses in one place."""

from __future__ import annotations


class FacestreamError(Exception):
    """Base of every error that describes bad input or a bad state, never a bug."""


class InvalidImageError(FacestreamError):
    """The upload is not a decodable image (or is corrupt, or exceeds the pixel limit)."""


class ImageTooSmallError(FacestreamError):
    """The image, or the face in it, is too small to animate."""


class NoFaceFoundError(FacestreamError):
    """No face was detected in the image."""


class InvalidAudioError(FacestreamError):
    """The audio could not be decoded, or its samples are unusable (NaN/Inf, wrong shape)."""


class EngineUnavailableError(FacestreamError):
    """The requested engine cannot run here (missing weights, missing device)."""


class FaceTurnedAwayError(FacestreamError):
    """The face is turned too far from the camera (beyond ~45°) for a single-photo warp."""

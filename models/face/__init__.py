"""Face analysis: decode an upload, find the largest face, crop, and measure 478 landmarks."""

from models.face.analyzer import FaceAnalysis, FaceAnalyzer
from models.face.decode import DEFAULT_MAX_PIXELS, decode_image_bytes
from models.face.landmarks import FaceLandmarker

__all__ = ["DEFAULT_MAX_PIXELS", "FaceAnalysis", "FaceAnalyzer", "FaceLandmarker", "decode_image_bytes"]

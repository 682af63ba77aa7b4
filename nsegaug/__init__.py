"""nsegaug: NSegment+ label-only elastic deformation against implicit label noise."""

from . import deform
from .deform import DEFAULT_ALPHA_SIGMA, DeformResult
from .transform import NoisySegmentPlus

__version__ = "0.1.0"

__all__ = ["DEFAULT_ALPHA_SIGMA", "DeformResult", "NoisySegmentPlus", "__version__", "deform"]

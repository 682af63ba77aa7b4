"""nsegaug: NSegment+ label-only elastic deformation against implicit label noise."""

__version__ = "0.1.0"

# After __version__: the runner records it in every run's metadata.
from . import deform  # noqa: E402
from .deform import DEFAULT_ALPHA_SIGMA, DeformResult  # noqa: E402
from .runner import GenerateConfig, generate_dataset  # noqa: E402
from .transform import NoisySegmentPlus  # noqa: E402

__all__ = [
    "DEFAULT_ALPHA_SIGMA",
    "DeformResult",
    "GenerateConfig",
    "NoisySegmentPlus",
    "__version__",
    "deform",
    "generate_dataset",
]

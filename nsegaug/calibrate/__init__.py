"""How strong for my labels: the NSegment+ strength whose copies differ from a map as its annotators do.

``nsegaug calibrate`` and its library. Read in this order:

- :mod:`nsegaug.calibrate.measure`: how one annotation differs from another
  (changed pixels, boundary displacement by object size and class);
- :mod:`nsegaug.calibrate.search`: the distance minimised, the grid, the
  sampling, the search over sets of (alpha, sigma) pairs and thresholds;
- :mod:`nsegaug.calibrate.copies`: the strengths' and the noise's copies,
  measured as ``generate`` and ``noise`` make them, and the noise's fit;
- :mod:`nsegaug.calibrate.pairs`: the two folders paired and checked;
- :mod:`nsegaug.calibrate.run`: a calibration from start to end;
- :mod:`nsegaug.calibrate.report`, :mod:`nsegaug.calibrate.text`,
  :mod:`nsegaug.calibrate.figure`, :mod:`nsegaug.calibrate.output`: its files.
"""

from __future__ import annotations

from .measure import Disagreement, compare
from .output import calibrate_into
from .run import CalibrateConfig, Calibration, calibrate
from .search import Grid, distance

__all__ = [
    "CalibrateConfig",
    "Calibration",
    "Disagreement",
    "Grid",
    "calibrate",
    "calibrate_into",
    "compare",
    "distance",
]

"""How strong for my labels: the NSegment+ strength whose copies differ from a map as its annotators do.

``nsegaug calibrate`` and its library. Read in this order:

- [`nsegaug.calibrate.measure`][nsegaug.calibrate.measure]: how one annotation differs from another
  (changed pixels, boundary displacement by object size and class);
- [`nsegaug.calibrate.search`][nsegaug.calibrate.search]: the distance minimised, the grid, the
  sampling, the search over sets of (alpha, sigma) pairs and thresholds;
- ``nsegaug.calibrate.copies``: the strengths' and the noise's copies,
  measured as ``generate`` and ``noise`` make them, and the noise's fit;
- ``nsegaug.calibrate.pairs``: the two folders paired and checked;
- ``nsegaug.calibrate.run``: a calibration from start to end;
- ``nsegaug.calibrate.report``, ``nsegaug.calibrate.text``,
  ``nsegaug.calibrate.figure``, ``nsegaug.calibrate.output``: its files.
"""

from __future__ import annotations

from .measure import BIN_PX, Disagreement, compare
from .output import calibrate_into
from .run import CalibrateConfig, Calibration, calibrate
from .search import Grid, distance

__all__ = [
    "BIN_PX",
    "CalibrateConfig",
    "Calibration",
    "Disagreement",
    "Grid",
    "calibrate",
    "calibrate_into",
    "compare",
    "distance",
]

"""Render the long-schedule study's committed results again with this version's report: nothing is trained.

    python examples/robustness/long/render.py

results.json holds the 30 runs (final metrics, per-class IoU, every evaluation); the report's numbers are drawn
from them again: readings, verdicts, class collapse, the collapse-robust metrics, the headline, results.md and
the charts. Two things the study of that time did not record are given here from the documents of that time:

- the primary metric, boundary IoU, named by PREREGISTRATION.md (0a2d65b) before any NSegment+ training;
- the code: an export of the pre-registration commit 0a2d65b (README.md, "This run"), recorded with its source.

Not recoverable: each unit's clock times (the run's units.jsonl was not kept), the per-class boundary and band
IoU at each evaluation (only at the last), and the pixels of each class in the validation labels (the classes
with an IoU are judged instead).
"""

from __future__ import annotations

from pathlib import Path

from nsegaug.study.report import render_again

RESULTS = Path(__file__).resolve().parent / "results" / "results.json"
CODE = {
    "nsegaug": "0.1.0",
    "commit": "0a2d65b47ce491e9c3164d22105a8f8c20f3884a",
    "dirty": False,
    "source": "examples/robustness/long/README.md, written when the study started: the code was an export of the "
    "pre-registration commit (git archive 0a2d65b); not recorded by the study itself",
}

if __name__ == "__main__":
    for path in render_again(RESULTS, primary="boundary_miou", code=CODE):
        print(path)

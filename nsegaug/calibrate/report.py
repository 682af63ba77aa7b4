"""A calibration's files: ``params.toml`` (for ``--params``), ``report.md``, ``calibration.json`` and the figure.

Every file is written whole or not at all ([`write_file`][nsegaug.storage.write_file]),
and only after the calibration has succeeded: a refused calibration writes
nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from .. import storage
from .._files.params_file import NOISE_TABLE, RECORD_TABLE, toml_text
from .._version import __version__
from ..params import format_alpha_sigma
from .measure import BIN_PX, CAP_PX, SIZE_EDGES, SIZE_LABELS, Disagreement
from .run import Calibration
from .search import displacement_scale

PARAMS_NAME = "params.toml"
REPORT_NAME = "report.md"
JSON_NAME = "calibration.json"
FIGURE_NAME = "displacement"  # .png and .svg


def quantile(counts: np.ndarray, q: float) -> float:
    """The ``q`` quantile (px, to a quarter pixel) of a displacement histogram; NaN when it is empty."""
    total = counts.sum()
    if not total:
        return float("nan")
    return float(np.searchsorted(np.cumsum(counts), q * total, side="left") * BIN_PX)


def strengths(calibration: Calibration) -> dict[str, Disagreement]:
    """The measured disagreements by name: the annotations', the recommendation's, the paper's, the noise's."""
    found = {
        "annotations": calibration.target,
        "recommended": calibration.achieved,
        "paper default": calibration.paper,
    }
    if calibration.noise is not None:
        found["noise defaults"] = calibration.noise.default
        found["noise fitted"] = calibration.noise.fitted
    return found


def distances(calibration: Calibration) -> dict[str, tuple[float, float, float]]:
    """Each strength's distance from the annotations, with its bootstrap interval over the maps."""
    found = {}
    for name, measured in strengths(calibration).items():
        if name != "annotations":
            found[name] = (float(calibration.distance_of(measured)), *calibration.interval_of(measured))
    return found


def params_toml(calibration: Calibration, measured: dict, command_line: Sequence[str]) -> str:
    """``params.toml``: generate's options at the top, noise's in ``[noise]``, the record in ``[calibration]``."""
    config, params = calibration.config, calibration.params
    record = {
        "model": config.model,
        "distance_px": round(float(measured["recommended"][0]), 4),
        "paper_default_distance_px": round(float(measured["paper default"][0]), 4),
        "maps": calibration.maps,
        "sampled_maps": len(calibration.sampled),
        "seed": config.seed,
        "ignore_index": config.ignore_index,
        "labels": storage.shown(config.labels),
        "reference": storage.shown(config.reference),
        "command": " ".join(command_line),
        "nsegaug": __version__,
    }
    tables = {}
    if calibration.noise is not None:
        noise = calibration.noise.params
        tables[NOISE_TABLE] = {
            "models": ",".join(noise.models),
            "max_radius": noise.max_radius,
            "max_epsilon": noise.max_epsilon,
            "jitter_amplitude": noise.jitter_amplitude,
            "jitter_sigma": noise.jitter_sigma,
        }
        record["noise_distance_px"] = round(float(measured["noise fitted"][0]), 4)
        record["noise_default_distance_px"] = round(float(measured["noise defaults"][0]), 4)
    tables[RECORD_TABLE] = record
    header = (
        "The NSegment+ strength whose copies differ from the reference as the annotations do.\n"
        "Use: nsegaug generate --params THIS_FILE ...; nsegaug train --online --params THIS_FILE ...;\n"
        "[noise]: nsegaug noise --params THIS_FILE ... (report.md says how these were found)."
    )
    top = {"alpha_sigma": format_alpha_sigma(params.alpha_sigma), "area_thresh": params.area_thresh}
    return toml_text(top, tables, header)


def calibration_json(calibration: Calibration, measured: dict) -> str:
    """Everything measured, for programs: the counts of each strength, the distances, the settings."""
    config = calibration.config
    record = {
        "nsegaug": __version__,
        "model": config.model,
        "alpha_sigma": [list(pair) for pair in calibration.params.alpha_sigma],
        "area_thresh": calibration.params.area_thresh,
        "predicted_distance_px": float(calibration.recommendation.predicted),
        "by_threshold": [
            {"area_thresh": threshold, "alpha_sigma": [list(pair) for pair in pairs], "predicted_distance_px": value}
            for threshold, pairs, value in calibration.recommendation.by_threshold
        ],
        "distances_px": {name: list(values) for name, values in measured.items()},
        "grid": {
            "alphas": list(config.grid.alphas),
            "sigmas": list(config.grid.sigmas),
            "thresholds": list(config.grid.thresholds),
        },
        "bins": {"displacement_px": BIN_PX, "cap_px": CAP_PX, "size_edges_px": list(SIZE_EDGES)},
        "maps": calibration.maps,
        "sampled": list(calibration.sampled),
        "seed": config.seed,
        "elapsed_s": round(calibration.elapsed_s, 3),
        "measured": {name: item.to_dict() for name, item in strengths(calibration).items()},
    }
    if calibration.noise is not None:
        record["noise"] = {**calibration.noise.params.to_dict(), "scale": calibration.noise.scale}
    return json.dumps(record, indent=1, sort_keys=True) + "\n"


def size_rows(calibration: Calibration) -> list[tuple[str, dict]]:
    """Per size bin with boundary pixels: the share of them, and each strength's mean, median and 90th
    percentile displacement."""
    pooled = {name: item.pooled() for name, item in strengths(calibration).items()}
    target = pooled["annotations"]
    total = target.sum()
    rows = []
    for index, label in enumerate(SIZE_LABELS):
        if not target[index].sum():
            continue
        stats = {"share": target[index].sum() / total}
        for name, counts in pooled.items():
            mean = strengths(calibration)[name].mean_displacement()[index]
            stats[name] = (mean, quantile(counts[index], 0.5), quantile(counts[index], 0.9))
        rows.append((label, stats))
    return rows


def strength_line(calibration: Calibration) -> str:
    """The recommendation in one line, with the rms displacement of its fields."""
    params = calibration.params
    return (
        f"alpha_sigma {format_alpha_sigma(params.alpha_sigma)}, area_thresh {params.area_thresh:g} "
        f"(fields of rms {displacement_scale(params.alpha_sigma):.2f} px; the paper's grid: "
        f"{displacement_scale(calibration.config.paper_params.alpha_sigma):.2f} px)"
    )

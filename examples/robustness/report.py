"""The study's numbers and pictures: per-cell means, paired differences with their confidence intervals, the
convergence check, the Markdown tables, the paired chart and the curves (Pillow only)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont
from plan import CONDITIONS, METHODS

METRICS = ("miou", "boundary_miou", "band_miou")
METRIC_NAMES = {"miou": "mIoU", "boundary_miou": "boundary IoU", "band_miou": "band mIoU"}
CONDITION_NAMES = {"clean": "clean training labels", "noisy": "noisy training labels"}
METHOD_NAMES = {"baseline": "baseline", "nsegment+": "NSegment+"}
METHOD_COLOURS = {"baseline": (96, 125, 139), "nsegment+": (230, 126, 34)}
# Convergence, as the issue asks of the clean-label baseline: at least this mIoU, and a change of less than
# this many points over the last quarter of training.
MIN_MIOU = 0.60
MAX_LAST_QUARTER_POINTS = 0.5


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1); the spread of a single value is 0."""
    values = [float(value) for value in values]
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((value - mean) ** 2 for value in values) / (len(values) - 1))


def t_quantile(df: int, level: float = 0.95) -> float:
    """Student's t quantile for a two-sided ``level`` interval with ``df`` degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, df))


def paired(values: dict[int, float], others: dict[int, float]) -> dict:
    """``values - others`` seed by seed: the differences, their mean, std and 95 % interval (t, n - 1 df)."""
    seeds = sorted(set(values) & set(others))
    differences = [values[seed] - others[seed] for seed in seeds]
    mean, std = mean_std(differences)
    entry = {"seeds": seeds, "values": differences, "mean": mean, "std": std, "n": len(seeds)}
    if len(seeds) > 1:
        half = t_quantile(len(seeds) - 1) * std / math.sqrt(len(seeds))
        entry.update(ci95=[mean - half, mean + half], excludes_zero=bool(mean - half > 0 or mean + half < 0))
    else:
        entry.update(ci95=None, excludes_zero=False)
    return entry


def summarize_runs(runs: Sequence[dict], metric: str = "miou") -> dict:
    """Per condition: each method's values by seed with mean and std, and the paired NSegment+ - baseline.

    Runs are paired by seed: the two methods of one seed share initial
    weights, data order and crops, so their difference is the method's
    effect plus the noise of training.
    """
    summary = {}
    for condition in CONDITIONS:
        chosen = [run for run in runs if run["condition"] == condition and run.get(metric) is not None]
        by_method = {
            method: {run["seed"]: run[metric] for run in chosen if run["method"] == method} for method in METHODS
        }
        if not any(by_method.values()):
            continue
        entry = {}
        for method, values in by_method.items():
            mean, std = mean_std(list(values.values()))
            entry[method] = {"seeds": sorted(values), "values": [values[seed] for seed in sorted(values)]}
            entry[method].update(mean=mean, std=std, n=len(values))
        entry["difference"] = paired(by_method["nsegment+"], by_method["baseline"])
        summary[condition] = entry
    return summary


def convergence(evals: Sequence[dict], total_steps: int, metric: str = "miou") -> dict:
    """The last quarter of a run: the change of ``metric`` (points) from the last evaluation at or before 3/4 of
    the steps to the end, and the largest minus the smallest evaluation in that quarter."""
    points = [(row["step"], row[metric]) for row in evals if row.get(metric) is not None]
    if not points:
        return {"final": None, "last_quarter_change": None, "last_quarter_range": None}
    quarter = 0.75 * total_steps
    before = [value for step, value in points if step <= quarter]
    start = before[-1] if before else points[0][1]
    within = [start] + [value for step, value in points if step > quarter]
    final = points[-1][1]
    return {
        "final": final,
        "last_quarter_change": 100 * (final - start),
        "last_quarter_range": 100 * (max(within) - min(within)),
    }


def convergence_verdict(runs: Sequence[dict]) -> dict:
    """Whether the clean-label baseline converged, seed by seed: final mIoU and its last-quarter change."""
    chosen = [run for run in runs if run["condition"] == "clean" and run["method"] == "baseline"]
    seeds = {run["seed"]: run["convergence"] for run in chosen}
    plateau = all(abs(entry["last_quarter_change"]) < MAX_LAST_QUARTER_POINTS for entry in seeds.values())
    reached = all(entry["final"] >= MIN_MIOU for entry in seeds.values())
    return {
        "seeds": seeds,
        "plateau": bool(seeds) and plateau,
        "reached_min_miou": bool(seeds) and reached,
        "criteria": f"final mIoU >= {MIN_MIOU}, |change over the last quarter| < {MAX_LAST_QUARTER_POINTS} points",
    }


def _cell(entry: dict, signed: bool = False) -> str:
    if entry["n"] == 0 or math.isnan(entry["mean"]):
        return "n/a"
    sign = "+" if signed else ""
    return f"{entry['mean']:{sign}.4f} ± {entry['std']:.4f}"


def _interval(entry: dict) -> str:
    if not entry.get("ci95"):
        return "n/a"
    low, high = entry["ci95"]
    return f"[{low:+.4f}, {high:+.4f}]"


def markdown_table(summaries: dict[str, dict]) -> str:
    """One row per (metric, condition): each method's mean ± std, the paired difference, its 95 % interval."""
    lines = [
        "| metric | training labels | baseline | NSegment+ | NSegment+ − baseline (paired) | 95 % CI | seeds |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for metric, summary in summaries.items():
        for condition, entry in summary.items():
            difference = entry["difference"]
            lines.append(
                f"| {METRIC_NAMES[metric]} | {condition} | {_cell(entry['baseline'])} | {_cell(entry['nsegment+'])} | "
                f"{_cell(difference, signed=True)} | {_interval(difference)} | {difference['n']} |"
            )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- pictures


def draw_paired_chart(summaries: dict[str, dict], title: str) -> Image.Image:
    """A panel per metric; in it, per condition, each seed's baseline and NSegment+ joined by a line."""
    panel_width, height = 300, 380
    image = Image.new("RGB", (panel_width * len(summaries), height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((10, 6), title, fill=(0, 0, 0), font=font)
    for index, (metric, summary) in enumerate(summaries.items()):
        _paired_panel(draw, font, index * panel_width, panel_width, height, METRIC_NAMES[metric], summary)
    return image


def _paired_panel(draw, font, origin: int, width: int, height: int, name: str, summary: dict) -> None:
    left, top, right, bottom = origin + 48, 40, origin + width - 12, height - 70
    values = [v for entry in summary.values() for method in METHODS for v in entry[method]["values"]]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max((high - low) * 0.15, 0.005)
    low, high = low - pad, high + pad

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * (value - low) / (high - low)

    draw.text((left, top - 18), name, fill=(0, 0, 0), font=font)
    draw.rectangle((left, top, right, bottom), outline=(150, 150, 150))
    for step in range(5):
        value = low + (high - low) * step / 4
        draw.text((origin + 4, y_of(value) - 6), f"{value:.3f}", fill=(0, 0, 0), font=font)
    group = (right - left) / max(len(summary), 1)
    for group_index, (condition, entry) in enumerate(summary.items()):
        x_base = left + group_index * group + group * 0.3
        x_plus = left + group_index * group + group * 0.7
        base = dict(zip(entry["baseline"]["seeds"], entry["baseline"]["values"], strict=True))
        plus = dict(zip(entry["nsegment+"]["seeds"], entry["nsegment+"]["values"], strict=True))
        for seed in sorted(set(base) & set(plus)):
            draw.line((x_base, y_of(base[seed]), x_plus, y_of(plus[seed])), fill=(190, 190, 190), width=1)
        for x, values, method in ((x_base, base, "baseline"), (x_plus, plus, "nsegment+")):
            for value in values.values():
                y = y_of(value)
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=METHOD_COLOURS[method])
            mean = entry[method]["mean"]
            if not math.isnan(mean):
                draw.line((x - 10, y_of(mean), x + 10, y_of(mean)), fill=(0, 0, 0), width=2)
        difference = entry["difference"]
        label = f"{difference['mean']:+.4f}" if difference["n"] else "n/a"
        interval = _interval(difference)
        draw.text((left + group_index * group + 4, bottom + 6), condition, fill=(0, 0, 0), font=font)
        draw.text((left + group_index * group + 4, bottom + 20), f"diff {label}", fill=(0, 0, 0), font=font)
        draw.text((left + group_index * group + 4, bottom + 34), interval, fill=(90, 90, 90), font=font)
    draw.text((origin + 8, height - 16), "dots: seeds (baseline left), bar: mean", fill=(90, 90, 90), font=font)


def draw_curves(runs: Sequence[dict]) -> Image.Image:
    """Validation mIoU (solid) and boundary IoU (thin) against the epoch, a panel per (condition, method)."""
    cells = [(condition, method) for condition in CONDITIONS for method in METHODS]
    panel, margin = (320, 220), 40
    image = Image.new("RGB", (panel[0] * 2, panel[1] * 2), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    epochs = max((row["epoch"] for run in runs for row in run.get("evals", [])), default=1)
    palette = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (140, 86, 75), (23, 190, 207)]
    for index, (condition, method) in enumerate(cells):
        x0, y0 = (index % 2) * panel[0], (index // 2) * panel[1]
        left, top, right, bottom = x0 + margin, y0 + 24, x0 + panel[0] - 10, y0 + panel[1] - 24
        draw.rectangle((left, top, right, bottom), outline=(150, 150, 150))
        draw.text((left, y0 + 6), f"{METHOD_NAMES[method]}, {condition} labels", fill=(0, 0, 0), font=font)
        for value in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
            y = bottom - (bottom - top) * (value - 0.4) / 0.6
            draw.line((left, y, right, y), fill=(235, 235, 235))
            draw.text((x0 + 4, y - 6), f"{value:.1f}", fill=(0, 0, 0), font=font)

        box = (left, top, right, bottom)
        chosen = [run for run in runs if run["condition"] == condition and run["method"] == method]
        for colour, run in zip(palette, sorted(chosen, key=lambda run: run["seed"]), strict=False):
            for key, thickness in (("miou", 2), ("boundary_miou", 1)):
                points = [
                    _place(box, epochs, row["epoch"], row[key]) for row in run["evals"] if row.get(key) is not None
                ]
                if len(points) > 1:
                    draw.line(points, fill=colour, width=thickness)
        draw.text((right - 90, bottom + 6), f"epochs 0 to {epochs:g}", fill=(0, 0, 0), font=font)
    draw.text(
        (8, image.height - 14), "thick: mIoU, thin: boundary IoU; a colour per seed", fill=(90, 90, 90), font=font
    )
    return image


def _place(box: tuple[float, float, float, float], epochs: float, epoch: float, value: float) -> tuple[float, float]:
    """A curve's point in its panel: epochs across, values 0.4 to 1 up."""
    left, top, right, bottom = box
    share = (min(max(value, 0.4), 1.0) - 0.4) / 0.6
    return left + (right - left) * epoch / epochs, bottom - (bottom - top) * share

"""Summaries of the experiment's runs: mean and spread per setting, the Markdown table and the bar chart (Pillow)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

CONDITIONS = ("clean", "noisy")
METHODS = ("baseline", "nsegment+")
CONDITION_NAMES = {"clean": "clean training labels", "noisy": "noisy training labels"}
METHOD_NAMES = {"baseline": "baseline", "nsegment+": "NSegment+"}
METHOD_COLOURS = {"baseline": (120, 144, 156), "nsegment+": (230, 126, 34)}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1); the spread of a single value is 0."""
    values = [float(value) for value in values]
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((value - mean) ** 2 for value in values) / (len(values) - 1))


def summarize_runs(runs: Sequence[dict], metric: str = "miou") -> dict:
    """Per condition: each method's values by seed, mean and std, and the paired NSegment+ - baseline differences.

    Runs are paired by seed: the two methods of one seed share initial weights,
    data order and crops, so their difference is the method's effect plus the
    noise of training, and its spread over seeds says how far to trust it.
    """
    summary = {}
    for condition in CONDITIONS:
        chosen = [run for run in runs if run["condition"] == condition]
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
        paired = sorted(set(by_method["baseline"]) & set(by_method["nsegment+"]))
        differences = [by_method["nsegment+"][seed] - by_method["baseline"][seed] for seed in paired]
        mean, std = mean_std(differences)
        entry["difference"] = {"seeds": paired, "values": differences, "mean": mean, "std": std, "n": len(paired)}
        # A difference is only worth reading when it is larger than its own seed-to-seed spread.
        entry["difference"]["exceeds_std"] = bool(len(paired) > 1 and abs(mean) > std)
        summary[condition] = entry
    return summary


def _cell(entry: dict, signed: bool = False) -> str:
    if entry["n"] == 0 or math.isnan(entry["mean"]):
        return "n/a"
    sign = "+" if signed else ""
    return f"{entry['mean']:{sign}.4f} ± {entry['std']:.4f}"


def markdown_table(summary: dict) -> str:
    """One row per training-label condition: mean ± std mIoU of each method and their paired difference."""
    seeds = max((entry[method]["n"] for entry in summary.values() for method in METHODS), default=0)
    lines = [
        "| training labels | baseline mIoU | NSegment+ mIoU | NSegment+ − baseline (paired) | seeds |",
        "|---|---:|---:|---:|---:|",
    ]
    for condition, entry in summary.items():
        lines.append(
            f"| {condition} | {_cell(entry['baseline'])} | {_cell(entry['nsegment+'])} | "
            f"{_cell(entry['difference'], signed=True)} | {entry['difference']['n'] or seeds} |"
        )
    return "\n".join(lines) + "\n"


def draw_chart(summary: dict, title: str = "mIoU on the clean validation labels") -> Image.Image:
    """Grouped bars (one group per condition, one bar per method), ± std whiskers and a dot per seed."""
    width, height = 640, 400
    left, top, right, bottom = 64, 48, width - 16, height - 64
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((left, 14), title, fill=(0, 0, 0), font=font)

    highest = max(
        (
            max([entry[m]["mean"] + entry[m]["std"], *entry[m]["values"]])
            for entry in summary.values()
            for m in METHODS
            if entry[m]["n"]
        ),
        default=1.0,
    )
    scale_top = _nice_top(highest)

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * max(0.0, min(value, scale_top)) / scale_top

    for step in range(6):
        value = scale_top * step / 5
        y = y_of(value)
        draw.line((left, y, right, y), fill=(230, 230, 230))
        draw.text((8, y - 6), f"{value:.{_decimals(scale_top)}f}", fill=(0, 0, 0), font=font)
    draw.line((left, top, left, bottom), fill=(80, 80, 80))
    draw.line((left, bottom, right, bottom), fill=(80, 80, 80))
    draw.text((8, top - 24), "mIoU", fill=(0, 0, 0), font=font)

    groups = list(summary)
    group_width = (right - left) / max(len(groups), 1)
    bar_width = group_width / (len(METHODS) + 1.5)
    for group_index, condition in enumerate(groups):
        entry = summary[condition]
        group_left = left + group_index * group_width + bar_width * 0.75
        for method_index, method in enumerate(METHODS):
            stats = entry[method]
            if not stats["n"]:
                continue
            x1 = group_left + method_index * bar_width
            x2 = x1 + bar_width * 0.9
            centre = (x1 + x2) / 2
            draw.rectangle((x1, y_of(stats["mean"]), x2, bottom), fill=METHOD_COLOURS[method])
            low, high = y_of(stats["mean"] - stats["std"]), y_of(stats["mean"] + stats["std"])
            draw.line((centre, low, centre, high), fill=(0, 0, 0), width=2)
            draw.line((centre - 6, low, centre + 6, low), fill=(0, 0, 0), width=2)
            draw.line((centre - 6, high, centre + 6, high), fill=(0, 0, 0), width=2)
            for offset, value in zip(_spread(len(stats["values"])), stats["values"], strict=True):
                x, y = centre + offset * bar_width * 0.3, y_of(value)
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), outline=(0, 0, 0), fill=(255, 255, 255))
            label = f"{stats['mean']:.{_decimals(scale_top) + 1}f}"
            draw.text((centre - 3 * len(label), min(high, y_of(stats["mean"])) - 16), label, fill=(0, 0, 0), font=font)
        name = CONDITION_NAMES.get(condition, condition)
        draw.text(
            (left + group_index * group_width + group_width / 2 - 3 * len(name), bottom + 8),
            name,
            fill=(0, 0, 0),
            font=font,
        )

    legend_x = left
    for method in METHODS:
        draw.rectangle((legend_x, height - 28, legend_x + 14, height - 14), fill=METHOD_COLOURS[method])
        draw.text((legend_x + 20, height - 27), METHOD_NAMES[method], fill=(0, 0, 0), font=font)
        legend_x += 120
    draw.text((legend_x, height - 27), "bar: mean, whisker: ± std, dots: seeds", fill=(90, 90, 90), font=font)
    return image


def _nice_top(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k above ``value`` (with some headroom), for the axis."""
    if not value > 0 or math.isnan(value):
        return 1.0
    target = value * 1.15
    power = 10 ** math.floor(math.log10(target))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= target:
            return factor * power
    return 10 * power


def _spread(count: int) -> list[float]:
    """Horizontal offsets in [-1, 1] for ``count`` dots, so seeds with equal values stay visible."""
    if count <= 1:
        return [0.0] * count
    return [-1 + 2 * index / (count - 1) for index in range(count)]


def _decimals(scale_top: float) -> int:
    """Decimals that tell the ticks 0, top/5, ..., top apart (2 for an axis up to 0.5, 4 up to 0.005)."""
    return max(1, 1 - math.floor(math.log10(scale_top / 5)))

"""The study's two pictures, drawn with Pillow (as train's curves.png; no plotting library): the paired chart
(a dot per seed, a line joining the runs of one seed) and the validation curves of every run."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from .analysis import METRIC_NAMES, METRICS

PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (140, 86, 75), (23, 190, 207)]
GREY, BLACK, LIGHT = (120, 120, 120), (0, 0, 0), (200, 200, 200)


def paired_chart(summary: dict, methods: Sequence[str], conditions: Sequence[str]) -> Image.Image:
    """A panel per metric; in it a group per condition, a column per method, each seed's runs joined by a line
    (the pair shares everything but the labels), a black bar at each cell's mean."""
    panel_width = max(260, 90 * len(methods) * len(conditions) + 70)
    height = 400
    image = Image.new("RGB", (panel_width * len(METRICS), height), "white")
    draw, font = ImageDraw.Draw(image), ImageFont.load_default()
    for index, metric in enumerate(METRICS):
        _paired_panel(draw, font, index * panel_width, panel_width, height, metric, summary[metric], methods)
    return image


def _paired_panel(draw, font, origin, width, height, metric, by_condition, methods) -> None:
    left, top, right, bottom = origin + 52, 34, origin + width - 10, height - 60
    cells = [entry["cells"][method] for entry in by_condition.values() for method in methods]
    values = [value for cell in cells for value in cell["values"]]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max((high - low) * 0.1, 0.005)
    low, high = (low - pad if low - pad > 0 or low < 0 else 0.0), high + pad

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * (value - low) / (high - low)

    draw.text((left, 8), METRIC_NAMES[metric], fill=BLACK, font=font)
    draw.rectangle((left, top, right, bottom), outline=GREY)
    for step in range(5):
        value = low + (high - low) * step / 4
        draw.text((origin + 4, y_of(value) - 6), f"{value:.3f}", fill=BLACK, font=font)
    group = (right - left) / max(len(by_condition), 1)
    for group_index, (condition, entry) in enumerate(by_condition.items()):
        columns = {
            method: left + group * (group_index + (index + 0.5) / len(methods)) for index, method in enumerate(methods)
        }
        by_seed: dict[int, list[tuple[float, float]]] = {}
        for method, x in columns.items():
            cell = entry["cells"][method]
            for seed, value in zip(cell["seeds"], cell["values"], strict=True):
                by_seed.setdefault(seed, []).append((x, y_of(value)))
        for points in by_seed.values():
            if len(points) > 1:
                draw.line(points, fill=LIGHT, width=1)
        for index, (method, x) in enumerate(columns.items()):
            cell = entry["cells"][method]
            for value in cell["values"]:
                y = y_of(value)
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=PALETTE[index % len(PALETTE)])
            if not math.isnan(cell["mean"]):
                draw.line((x - 9, y_of(cell["mean"]), x + 9, y_of(cell["mean"])), fill=BLACK, width=2)
            draw.text((x - 20, bottom + 20 + 12 * (index % 2)), method[:14], fill=PALETTE[index % len(PALETTE)])
        draw.text((left + group * group_index + 4, bottom + 6), f"{condition} labels", fill=BLACK, font=font)
    draw.text((origin + 8, height - 14), "dot: a seed; line: its runs; bar: mean", fill=GREY, font=font)


def curves_chart(runs: Sequence[dict], methods: Sequence[str], conditions: Sequence[str]) -> Image.Image:
    """A panel per (condition, method): validation mIoU (thick) and boundary IoU (thin) against the step,
    a colour per seed."""
    cells = [(condition, method) for condition in conditions for method in methods]
    panel, columns = (320, 220), min(len(cells), 4)
    rows = math.ceil(len(cells) / columns)
    image = Image.new("RGB", (panel[0] * columns, panel[1] * rows + 16), "white")
    draw, font = ImageDraw.Draw(image), ImageFont.load_default()
    keys = ("miou", "boundary_miou")
    values = [row[key] for run in runs for row in run["evals"] for key in keys if row.get(key) is not None]
    low = max(0.0, math.floor(min(values, default=0.0) * 10) / 10)
    last = max((row["step"] for run in runs for row in run["evals"]), default=1)
    seeds = sorted({run["seed"] for run in runs})
    for index, (condition, method) in enumerate(cells):
        x0, y0 = (index % columns) * panel[0], (index // columns) * panel[1]
        box = (x0 + 40, y0 + 24, x0 + panel[0] - 10, y0 + panel[1] - 24)
        draw.rectangle(box, outline=GREY)
        draw.text((box[0], y0 + 6), f"{method}, {condition} labels", fill=BLACK, font=font)
        for fraction in (0.0, 0.5, 1.0):
            y = box[3] - (box[3] - box[1]) * fraction
            draw.text((x0 + 4, y - 6), f"{low + (1 - low) * fraction:.2f}", fill=BLACK, font=font)
        draw.text((box[2] - 70, box[3] + 6), f"step 0-{last}", fill=BLACK, font=font)
        for run in runs:
            if (run["condition"], run["method"]) != (condition, method):
                continue
            colour = PALETTE[seeds.index(run["seed"]) % len(PALETTE)]
            for key, thickness in (("miou", 2), ("boundary_miou", 1)):
                points = [
                    _place(box, last, low, row["step"], row[key]) for row in run["evals"] if row.get(key) is not None
                ]
                if len(points) > 1:
                    draw.line(points, fill=colour, width=thickness)
                for x, y in points[-1:]:
                    draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
    draw.text((8, image.height - 14), "thick: mIoU, thin: boundary IoU; a colour per seed", fill=GREY, font=font)
    return image


def _place(box, last: int, low: float, step: int, value: float) -> tuple[float, float]:
    left, top, right, bottom = box
    share = (min(max(value, low), 1.0) - low) / ((1.0 - low) or 1.0)
    return left + (right - left) * step / max(last, 1), bottom - (bottom - top) * share

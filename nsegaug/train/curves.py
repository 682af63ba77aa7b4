"""``curves.png``: training loss and the validation metrics against the step, drawn with Pillow (no plotting
library)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PIL import Image, ImageDraw, ImageFont

PANEL = (440, 300)
MARGIN = (56, 30, 16, 40)  # left, top, right, bottom
LOSS_COLOUR = (31, 119, 180)
# The validation metrics drawn in the right panel: metrics.jsonl key, legend, colour.
METRICS = (
    ("miou", "mIoU", (214, 39, 40)),
    ("band_miou", "band mIoU", (44, 160, 44)),
    ("boundary_miou", "boundary mIoU", (148, 103, 189)),
)


def draw_curves(loss: Sequence[tuple[int, float]], evals: Sequence[Mapping], total_steps: int) -> Image.Image:
    """Two panels side by side, over steps 0..``total_steps``: loss (left), and the validation metrics of the
    ``evals`` rows (metrics.jsonl) that hold them (right)."""
    image = Image.new("RGB", (PANEL[0] * 2, PANEL[1]), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    finite_loss = [(step, value) for step, value in loss if value == value]
    top = max((value for _, value in finite_loss), default=1.0)
    _frame(draw, font, (0, 0), "training loss", (0.0, top * 1.05 or 1.0), total_steps)
    _line(draw, (0, 0), finite_loss, (0.0, top * 1.05 or 1.0), total_steps, LOSS_COLOUR)
    _frame(draw, font, (PANEL[0], 0), "validation", (0.0, 1.0), total_steps)
    shown = 0
    for key, name, colour in METRICS:
        points = [(row["step"], row[key]) for row in evals if row.get(key) is not None and row[key] == row[key]]
        if not points:
            continue
        _line(draw, (PANEL[0], 0), points, (0.0, 1.0), total_steps, colour)
        legend = (PANEL[0] + MARGIN[0] + 110 + 110 * shown, 8)
        draw.text(legend, name, fill=colour, font=font)
        shown += 1
    return image


def _box(origin) -> tuple[float, float, float, float]:
    return (
        origin[0] + MARGIN[0],
        origin[1] + MARGIN[1],
        origin[0] + PANEL[0] - MARGIN[2],
        origin[1] + PANEL[1] - MARGIN[3],
    )


def _frame(draw, font, origin, title, value_range, total_steps) -> None:
    left, top, right, bottom = _box(origin)
    draw.rectangle((left, top, right, bottom), outline=(120, 120, 120))
    draw.text((left, origin[1] + 8), title, fill=(0, 0, 0), font=font)
    low, high = value_range
    for fraction in (0.0, 0.5, 1.0):
        y = bottom - fraction * (bottom - top)
        draw.line((left - 4, y, left, y), fill=(120, 120, 120))
        draw.text((origin[0] + 6, y - 6), f"{low + fraction * (high - low):.3g}", fill=(0, 0, 0), font=font)
    steps = max(total_steps, 1)
    for fraction in (0.0, 0.5, 1.0):
        x = left + fraction * (right - left)
        draw.line((x, bottom, x, bottom + 4), fill=(120, 120, 120))
        draw.text((x - 10, bottom + 8), f"{round(fraction * steps)}", fill=(0, 0, 0), font=font)
    draw.text((right - 30, bottom + 22), "step", fill=(0, 0, 0), font=font)


def _line(draw, origin, points, value_range, total_steps, colour) -> None:
    left, top, right, bottom = _box(origin)
    low, high = value_range
    steps = max(total_steps, 1)

    def place(step: int, value: float) -> tuple[float, float]:
        share = (min(max(value, low), high) - low) / ((high - low) or 1.0)
        return left + (right - left) * step / steps, bottom - (bottom - top) * share

    placed = [place(step, value) for step, value in points]
    if len(placed) > 1:
        draw.line(placed, fill=colour, width=2)
    for x, y in placed if len(placed) <= 50 else placed[-1:]:
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)

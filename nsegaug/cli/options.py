"""Options and parameter types shared by several commands."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..deform import DEFAULT_ALPHA_SIGMA, check_alpha_sigma


class AlphaSigmaList(click.ParamType):
    """``1:3,15:5,30:10`` -> ((1, 3), (15, 5), (30, 10))."""

    name = "ALPHA:SIGMA,..."

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            pairs = tuple(_pair(item) for item in value.split(",") if item.strip())
            return check_alpha_sigma(pairs)
        except ValueError as error:
            self.fail(f"{value!r}: {error}; expected e.g. 1:3,15:5,30:10", param, ctx)


def _pair(item: str) -> tuple[float, float]:
    alpha, sigma = item.split(":")  # ValueError unless exactly one ':'
    return _number(alpha), _number(sigma)


def _number(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() else value


def format_alpha_sigma(pairs) -> str:
    return ",".join(f"{alpha:g}:{sigma:g}" for alpha, sigma in pairs)


alpha_sigma_option = click.option(
    "--alpha-sigma",
    "alpha_sigma",
    type=AlphaSigmaList(),
    default=format_alpha_sigma(DEFAULT_ALPHA_SIGMA),
    show_default=True,
    help="(alpha, sigma) pairs to draw from, as ALPHA:SIGMA,...",
)
area_thresh_option = click.option(
    "--area-thresh",
    type=click.FloatRange(min=0),
    default=1000,
    show_default=True,
    help="Components of at most this many pixels are protected from deformation.",
)
ignore_index_option = click.option(
    "--ignore-index",
    type=int,
    default=None,
    help="Label value never taken as a small object (e.g. 255); default: none, as the reference.",
)
seed_option = click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Base seed.")


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, as in containers and batch jobs)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


jobs_option = click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=available_cores,
    show_default="all cores",
    help="Worker processes; outputs are the same for any number.",
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar; only errors and the summary.")
variant_option = click.option(
    "--variant",
    type=click.Choice(["nsegment+", "nsegment"]),
    default="nsegment+",
    show_default=True,
    help="nsegment is the pilot method: no small-object suppression.",
)
precision_option = click.option(
    "--precision",
    type=click.Choice(["float32", "float64"]),
    default="float32",
    show_default=True,
    help="float64 is bit-identical to the reference code, and slower.",
)
pattern_option = click.option("--pattern", default=None, help="Glob on file names, e.g. '*_labelTrainIds.png'.")
label_suffix_option = click.option(
    "--label-suffix", default="", help="Suffix of label stems, removed to pair with images (_gtFine_labelTrainIds)."
)
image_suffix_option = click.option("--image-suffix", default="", help="Suffix of image stems, e.g. _leftImg8bit.")
palette_option = click.option(
    "--palette",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="JSON/CSV of colour -> class index, for colour-coded RGB label maps.",
)

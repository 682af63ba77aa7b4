"""``nsegaug calibrate``: the NSegment+ strength whose copies differ from a map as its annotators do."""

from __future__ import annotations

import click

from ..params import CALIBRATION_ALPHAS, CALIBRATION_SIGMAS, CALIBRATION_THRESHOLDS
from . import Command, command_line
from .options import Location, palette_option, pattern_option, quiet_option, seed_option, storage_options_option

EXAMPLE = "nsegaug calibrate --labels second_reader/labels --reference first_reader/labels --out calibration"


class NumberList(click.ParamType):
    """``1,5,10`` -> (1, 5, 10): numbers >= 0 (whole ones as int), at least one."""

    name = "N,..."

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            numbers = tuple(float(item) for item in value.split(","))
        except ValueError:
            self.fail(f"{value!r}: numbers separated by commas, e.g. 1,15,30", param, ctx)
        if not numbers or min(numbers) < 0:
            self.fail(f"{value!r}: numbers >= 0, at least one", param, ctx)
        return tuple(int(number) if number.is_integer() else number for number in numbers)


def _shown(values: tuple) -> str:
    return ",".join(f"{value:g}" for value in values)


@click.command(cls=Command, epilog=f"Example:\n\n  {EXAMPLE}")
@click.option(
    "--labels",
    type=Location(exists=True, file_okay=False),
    required=True,
    help="The annotations to imitate (a second reader, noisy labels), walked recursively.",
)
@click.option(
    "--reference",
    type=Location(exists=True, file_okay=False),
    required=True,
    help="The same maps as annotated by the reference (the first reader, cleaned labels): the copies are made "
    "from these. Paired with --labels by relative path and stem.",
)
@click.option("--out", type=Location(file_okay=False), required=True, help="Output folder (or s3://... prefix).")
@click.option(
    "--equal-readers",
    is_flag=True,
    help="Two readers of equal standing: two independent copies should differ as the two annotations do  "
    "[default: the reference is the truth, a copy should differ from it as a label map does]",
)
@click.option("--ignore-index", type=int, default=None, help="Label value that is never a class (e.g. 255).")
@click.option(
    "--alphas", type=NumberList(), default=_shown(CALIBRATION_ALPHAS), show_default=True, help="alphas tried (px)."
)
@click.option(
    "--sigmas", type=NumberList(), default=_shown(CALIBRATION_SIGMAS), show_default=True, help="sigmas tried (px)."
)
@click.option(
    "--thresholds",
    type=NumberList(),
    default=_shown(CALIBRATION_THRESHOLDS),
    show_default=True,
    help="Area thresholds tried (px).",
)
@click.option(
    "--max-pairs",
    type=click.IntRange(1, 8),
    default=4,
    show_default=True,
    help="Most (alpha, sigma) pairs in the set recommended.",
)
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=24,
    show_default=True,
    help="Reference maps deformed at every grid point (chosen by seed and path); all pairs are measured.",
)
@click.option(
    "--copies", type=click.IntRange(1, 16), default=1, show_default=True, help="Copies per sampled map and grid point."
)
@click.option(
    "--check-copies",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Copies per sampled map with the recommended and the paper's strength, to measure both.",
)
@seed_option
@pattern_option
@click.option("--label-suffix", default="", help="Suffix of the --labels stems, removed to pair them.")
@click.option("--reference-suffix", default="", help="Suffix of the --reference stems, removed to pair them.")
@palette_option
@click.option("--noise/--no-noise", "fit_noise", default=True, show_default=True, help="Also fit nsegaug noise.")
@click.option("--figure/--no-figure", default=True, show_default=True, help="Draw the figure (needs nsegaug[plots]).")
@quiet_option
@storage_options_option
def calibrate(out, equal_readers, alphas, sigmas, thresholds, figure, quiet, storage_options, **options) -> None:
    """Measure how two annotations of the same maps disagree, and the NSegment+ strength that matches it.

    Writes OUT/params.toml (alpha_sigma and area_thresh for generate --params
    and train --online --params; a [noise] table for noise --params),
    OUT/report.md, OUT/calibration.json and OUT/displacement.png and .svg.
    Maps that do not pair, differ in size or disagree on most pixels are
    refused, naming the file, and nothing is written.
    """
    from .. import storage
    from ..calibrate import CalibrateConfig, Grid, calibrate_into
    from ..params import format_alpha_sigma
    from . import reporting

    storage.configure(storage_options)
    model = "equal-readers" if equal_readers else "reference"
    config = CalibrateConfig(model=model, grid=Grid(alphas, sigmas, thresholds), **options)
    report = reporting(quiet)
    calibration, written = calibrate_into(
        config, out, figure, command_line(click.get_current_context()), report["log"], report["progress"]
    )
    params = calibration.params
    click.echo(
        f"recommended: --alpha-sigma {format_alpha_sigma(params.alpha_sigma)} --area-thresh {params.area_thresh:g} "
        f"({calibration.maps} pairs of maps, {calibration.elapsed_s:.0f} s); wrote {len(written)} files to "
        f"{storage.shown(out)}",
        err=True,
    )

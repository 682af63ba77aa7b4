"""``nsegaug noise``: a noisy version of every label map, to measure what annotation error costs a model."""

from __future__ import annotations

import click

from ..params import NOISE_MODELS, NoiseParams
from ..params_file import NOISE_TABLE
from . import Command
from .jobs import job_options, run_job_command
from .options import apply_params_file, params_file_option, png_level_option, spec_options

EXAMPLE = "nsegaug noise --labels examples/data/train/labels --out out/noisy --models boundary,jitter --seed 1"


class NameList(click.ParamType):
    """``a,b,c`` -> ("a", "b", "c"), each one of ``choices``."""

    name = "NAME,..."

    def __init__(self, choices: tuple[str, ...]) -> None:
        self.choices = choices

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        names = tuple(name.strip() for name in value.split(",") if name.strip())
        unknown = [name for name in names if name not in self.choices]
        if unknown or not names:
            self.fail(f"{value!r}: choose from {', '.join(self.choices)}", param, ctx)
        return names


class IntegerList(click.ParamType):
    name = "N,..."

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, tuple):
            return value
        try:
            return tuple(int(item) for item in value.split(",") if item.strip())
        except ValueError:
            self.fail(f"{value!r}: integers separated by commas, e.g. 11,12", param, ctx)


NOISE_TYPES = {
    "models": NameList(NOISE_MODELS),
    "max_radius": click.IntRange(min=0),
    "max_epsilon": click.FloatRange(min=0),
    "jitter_amplitude": click.FloatRange(min=0),
    "jitter_sigma": click.FloatRange(min=0, min_open=True),
    "bias_radius": click.IntRange(min=0),
    "bias_wide": click.FloatRange(0, 1),
    "bias_classes": IntegerList(),
    "ignore_index": int,
}


@click.command(cls=Command, epilog=f"Example:\n\n  {EXAMPLE}")
@job_options
@spec_options(NoiseParams, NOISE_TYPES, {"models": ",".join})
@params_file_option
@png_level_option
def noise(quiet, resume, overwrite, **options) -> None:
    """Write a noisy version of every label map: annotation error, seeded and reproducible.

    Models, applied in this order: bias (every object drawn --bias-radius px
    too wide or too narrow: one annotator's habit), boundary (each object
    grown or shrunk by up to --max-radius px), simplify (outlines clicked with
    too few vertices), jitter (a hand that wobbles slowly). No class is
    invented and no object erased; only pixels near a class boundary change.
    OUT mirrors LABELS (same names, formats and palettes), with
    OUT/manifest.jsonl giving each map's changed-pixel fraction.
    """
    from ..noise import NoiseConfig, add_noise

    names = NOISE_TYPES.keys()
    provenance = apply_params_file(click.get_current_context(), options, NOISE_TABLE, tuple(names))
    params = NoiseParams(**{name: options.pop(name) for name in list(options) if name in names})
    config = NoiseConfig(params=params, provenance=provenance, **options)
    run_job_command("noise", add_noise, config, resume, overwrite, quiet)

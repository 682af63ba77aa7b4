"""``nsegaug noise``: a noisy version of every label map, to measure what annotation error costs a model."""

from __future__ import annotations

import click

from .._files.params_file import NOISE_TABLE
from ..options import apply_params_file
from ..options.noise import NOISE_TYPES, noise_options
from ..params import NoiseParams
from . import Command
from .jobs import run_job_command

EXAMPLE = "nsegaug noise --labels examples/data/train/labels --out out/noisy --models boundary,jitter --seed 1"


@click.command(cls=Command, epilog=f"Example:\n\n  {EXAMPLE}")
@noise_options
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

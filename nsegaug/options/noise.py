"""The options of ``nsegaug noise``: a job over a label folder and the noise models' parameters (built from
[`NoiseParams`][nsegaug.params.NoiseParams]' fields)."""

from __future__ import annotations

import click

from ..params import NOISE_MODELS, NoiseParams
from . import params_file_option, png_level_option, spec_options
from . import parser as bare_parser
from .jobs import job_options


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


def noise_options(command):
    """Every option of ``nsegaug noise``, in the order its help lists them."""
    for option in reversed(
        [
            job_options,
            spec_options(NoiseParams, NOISE_TYPES, {"models": ",".join}),
            params_file_option,
            png_level_option,
        ]
    ):
        command = option(command)
    return command


def parser() -> click.Command:
    """``nsegaug noise``'s options as a bare command (see [`parser`][nsegaug.options.parser])."""
    return bare_parser("noise", noise_options)

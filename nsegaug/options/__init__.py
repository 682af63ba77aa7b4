"""The commands' options, declared once: the one home of what each ``nsegaug`` command accepts.

This package holds the options shared by several commands (here; the
deformation's are built from its spec's fields) and, in a module per
command, each command's own (`nsegaug.options.generate`,
`nsegaug.options.noise`, `nsegaug.options.train`). The commands in
``nsegaug.cli`` decorate themselves with them, and ``nsegaug study`` reads
them (`command_options`) to turn a study file's tables into the same
flags, checked by the same types: the study sits below the commands and
never imports them.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from pathlib import Path

import click

from .._resources.cpus import available_cpus, default_jobs
from ..errors import UsageError
from ..params import ENGINES, PRECISIONS, UNITS, VARIANTS, DeformParams, check_alpha_sigma, format_alpha_sigma


class AlphaSigmaList(click.ParamType):
    """``1:3,15:5,30:10`` -> ((1, 3), (15, 5), (30, 10))."""

    name = "ALPHA:SIGMA,..."

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            # Every comma separates two pairs: "1:3,," is a pair and two empty ones, not one pair.
            pairs = tuple(_pair(item) for item in value.split(","))
            return check_alpha_sigma(pairs)
        except (UsageError, ValueError) as error:
            self.fail(f"{value!r}: {error}; expected e.g. 1:3,15:5,30:10", param, ctx)


def _pair(item: str) -> tuple[float, float]:
    if not item.strip():
        raise ValueError("an empty pair between commas")
    alpha, sigma = item.split(":")  # ValueError unless exactly one ':'
    return _number(alpha), _number(sigma)


def _number(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() else value


class Location(click.ParamType):
    """A local path (checked as ``click.Path`` checks it) or an fsspec URL such as ``s3://bucket/prefix``
    (checked when it is used: a store is not reached while parsing options)."""

    name = "PATH|URL"

    def __init__(self, exists: bool = False, file_okay: bool = True, dir_okay: bool = True) -> None:
        self.local = click.Path(exists=exists, file_okay=file_okay, dir_okay=dir_okay, path_type=Path)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and "://" in value:
            return value
        return self.local.convert(value, param, ctx)


class LocalPath(click.ParamType):
    """A path on this machine (checked as ``click.Path`` checks it), for an option whose file or folder is read or
    written by code that needs a local disk; a URL is refused with ``why``, shown without its credentials
    (``file://`` names a local path)."""

    name = "PATH"

    def __init__(self, why: str, exists: bool = False, file_okay: bool = True, dir_okay: bool = True) -> None:
        self.why = why
        self.local = click.Path(exists=exists, file_okay=file_okay, dir_okay=dir_okay, path_type=Path)
        self.name = self.local.name  # shown as click.Path shows it: FILE, DIRECTORY or PATH

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.startswith("file://"):
            value = value[len("file://") :]
        elif isinstance(value, str) and "://" in value:
            from ..storage import public

            self.fail(f"{public(value)}: {self.why}, not a URL", param, ctx)
        return self.local.convert(value, param, ctx)


class JsonObject(click.ParamType):
    name = "JSON"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, dict):
            return value
        import json

        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as error:
            self.fail(f"not JSON ({error.msg})", param, ctx)
        if not isinstance(parsed, dict):
            self.fail("a JSON object is expected, e.g. '{\"anon\": true}'", param, ctx)
        return parsed


storage_options_option = click.option(
    "--storage-options",
    type=JsonObject(),
    default=None,
    help='fsspec options of s3:// (gs://, az://, ...) locations as JSON, e.g. \'{"client_kwargs": '
    '{"endpoint_url": "http://minio:9000"}}\'; credentials come from the environment otherwise. Never recorded.',
)


def spec_options(spec: type, types: Mapping[str, object], formats: Mapping[str, Callable] | None = None):
    """A decorator adding one option per field of the dataclass ``spec`` named in ``types``.

    ``--field-name``, stored under the field's name, of the click type given,
    with the field's default (shown through ``formats[name]`` where given)
    and the help text in the field's metadata. So an option is declared once,
    where its parameter is, and every command taking it shows the same thing.
    """
    formats = formats or {}

    def decorate(command):
        for spec_field in reversed([item for item in dataclasses.fields(spec) if item.name in types]):
            default = spec_field.default
            shown = formats[spec_field.name](default) if spec_field.name in formats else default
            command = click.option(
                "--" + spec_field.name.replace("_", "-"),
                spec_field.name,
                type=types[spec_field.name],
                default=shown,
                show_default=default is not None,
                help=spec_field.metadata.get("help"),
            )(command)
        return command

    return decorate


DEFORM_TYPES = {
    "alpha_sigma": AlphaSigmaList(),
    "area_thresh": click.FloatRange(min=0),
    "ignore_index": int,
    "variant": click.Choice(VARIANTS),
    "precision": click.Choice(PRECISIONS),
    "units": click.Choice(UNITS),
    "engine": click.IntRange(min(ENGINES), max(ENGINES)),
}


def deform_options(*names: str):
    """The [`DeformParams`][nsegaug.params.DeformParams] options (all of them, or those named)."""
    wanted = names or tuple(DEFORM_TYPES)
    return spec_options(
        DeformParams, {name: DEFORM_TYPES[name] for name in wanted}, {"alpha_sigma": format_alpha_sigma}
    )


params_file_option = click.option(
    "--params",
    "params_file",
    type=LocalPath("a params file is read from this machine", exists=True, dir_okay=False),
    default=None,
    help="A params.toml of nsegaug calibrate: its values for this command's options; an option given here "
    "overrides the file's. The run records where each value came from.",
)


def apply_params_file(ctx: click.Context, options: dict, table: str | None, names) -> dict | None:
    """Take the values of ``names`` from ``options["params_file"]`` (popped) where the command line gave none.

    Each file value is checked by the option's own click type, as if typed;
    returns the record of where each value came from (None without a file).
    """
    from click.core import ParameterSource

    from .._files.params_file import params_table
    from ..storage import sha256_file

    path = options.pop("params_file", None)
    if path is None:
        return None
    values = params_table(path, table, tuple(names))
    params = {param.name: param for param in ctx.command.params}
    sources = {}
    for name in names:
        given = ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
        if name in values and not given:
            value = values[name]
            if isinstance(value, list) and params[name].nargs == 1:
                value = ",".join(str(item) for item in value)  # a TOML list for an A,B,... option
            try:
                options[name] = params[name].type.convert(value, params[name], ctx)
            except click.BadParameter as error:
                raise UsageError(f"{path}: {name}: {error.message}") from error
            sources[name] = "params file"
        else:
            sources[name] = "command line" if given else "default"
    return {"params_file": str(path), "params_file_sha256": sha256_file(path), "sources": sources}


seed_option = click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Base seed.")
prob_option = click.option(
    "--prob",
    type=click.FloatRange(0, 1),
    default=1.0,
    show_default=True,
    help="Chance that a copy is deformed; an undeformed copy is written and recorded as such.",
)


# The name the commands import; nsegaug._resources.cpus owns the count.
available_cores = available_cpus

jobs_option = click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=default_jobs,
    show_default="one per CPU this process may use: affinity, cgroup quota",
    help="Worker processes, each running OpenCV on one thread (at most one per mask and per CPU); outputs are the "
    "same for any number.",
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar; only errors and the summary.")
pattern_option = click.option("--pattern", default=None, help="Glob on file names, e.g. '*_labelTrainIds.png'.")
label_suffix_option = click.option(
    "--label-suffix", default="", help="Suffix of label stems, removed to pair with images (_gtFine_labelTrainIds)."
)
image_suffix_option = click.option("--image-suffix", default="", help="Suffix of image stems, e.g. _leftImg8bit.")
palette_option = click.option(
    "--palette",
    type=Location(exists=True, dir_okay=False),
    default=None,
    help="JSON/CSV of colour -> class index, for colour-coded RGB label maps.",
)


def walk_options(command):
    """How a label folder is walked and paired with images: shared by every command that walks one."""
    for option in (palette_option, image_suffix_option, label_suffix_option, pattern_option):
        command = option(command)
    return command


png_level_option = click.option(
    "--png-level",
    type=click.IntRange(0, 9),
    default=None,
    help="zlib level of the PNGs written: 0 fastest and largest, 9 smallest and slowest; recorded in the "
    "metadata  [default: 6, Pillow's]",
)


# The commands whose options a caller below the command line (``nsegaug study``) may read.
COMMANDS_WITH_OPTIONS = ("generate", "noise", "train")


def command_options(name: str) -> dict[str, click.Option]:
    """The options of ``nsegaug NAME`` (generate, noise, train) by their Python names, from their one home."""
    if name not in COMMANDS_WITH_OPTIONS:
        raise ValueError(f"no declared options for nsegaug {name}; known: {', '.join(COMMANDS_WITH_OPTIONS)}")
    command = importlib.import_module(f"{__name__}.{name}").parser()
    return {param.name: param for param in command.params if isinstance(param, click.Option)}


def parser(name: str, decorate: Callable) -> click.Command:
    """A bare click command of ``name`` with the options ``decorate`` adds: what the command parses, without its
    body (for a caller that checks or parses that command's arguments)."""
    return click.command(name)(decorate(_no_body))


def _no_body(**options) -> None:
    """The body of a `parser` command: parsing is all it is for."""

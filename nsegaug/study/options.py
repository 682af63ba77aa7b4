"""A study file's [generate], [noise] and [train] tables as command-line flags of those commands.

The flags come from the commands' own click options, declared in
`nsegaug.options` (the study never imports the commands), so every option of
``nsegaug train`` (``--model pkg:factory``, ``--schedule``, ``--crop``, ...)
is available under its own name (``model``, ``schedule``, ``crop = [64, 64]``)
and is checked by the command's own type before anything runs. The keys the
study sets itself (data, seeds, methods, run folders) are refused there.
"""

from __future__ import annotations

import click

from ..errors import UsageError
from ..options import command_options

# Set by the study for every unit; a table that sets them would break the pairing or the layout.
COMMON_OWNED = ("labels", "images", "out", "resume", "overwrite", "quiet", "storage_options", "ignore_index")
OWNED = {
    "generate": (*COMMON_OWNED, "seed", "jobs", "dry_run", "prob"),
    "noise": (*COMMON_OWNED, "jobs"),
    "train": (
        *COMMON_OWNED,
        "manifest",
        "val_labels",
        "val_images",
        "num_classes",
        "prob",
        "baseline",
        "online",
        "alpha_sigma",
        "area_thresh",
        "seed",
        "params_file",
    ),
}
WHERE_ELSE = {
    "seed": "the study's seeds ([study] seeds)",
    "prob": "[study] prob",
    "alpha_sigma": "[generate] alpha_sigma (also used by nsegment+online)",
    "area_thresh": "[generate] area_thresh (also used by nsegment+online)",
    "ignore_index": "[data] ignore_index",
    "num_classes": "[data] num_classes",
    "params_file": "[generate] params (its alpha_sigma and area_thresh are also nsegment+online's)",
}


def flags(command: str, values: dict, where: str = "") -> list[str]:
    """``values`` (a study table) as flags of ``nsegaug COMMAND``, each value checked by the option's own type."""
    params = command_options(command)
    argv: list[str] = []
    for key, value in values.items():
        name = "params_file" if key == "params" else key.replace("-", "_")
        if name in OWNED[command]:
            elsewhere = WHERE_ELSE.get(name, "the study itself")
            raise UsageError(f"{where}[{command}] {key}: set by {elsewhere}, not in this table")
        if name not in params:
            raise UsageError(f"{where}[{command}] {key}: not an option of nsegaug {command}")
        argv += option_flags(params[name], value, f"{where}[{command}] {key}")
    return argv


def option_flags(param: click.Option, value, where: str) -> list[str]:
    """One option's flags for ``value``: ``--x`` / ``--no-x`` for a switch, ``--x A B`` for two values."""
    if param.is_flag:
        if not isinstance(value, bool):
            raise UsageError(f"{where}: true or false, got {value!r}")
        if value:
            return [param.opts[0]]
        return [param.secondary_opts[0]] if param.secondary_opts else []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(items) != param.nargs or any(isinstance(item, (bool, dict, list)) for item in items):
        raise UsageError(f"{where}: {param.nargs} value(s) expected, got {value!r}")
    texts = [str(item) for item in items]
    for text in texts:
        try:
            param.type.convert(text, param, None)
        except click.BadParameter as error:
            raise UsageError(f"{where}: {error.message}") from error
    return [param.opts[0], *texts]


def parse_assignments(pairs: tuple[str, ...], option: str) -> dict:
    """``KEY=VALUE`` options as a table: VALUE read as TOML (``3``, ``0.5``, ``true``, ``[64, 64]``) or a string."""
    values = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} {pair!r}: expected KEY=VALUE, e.g. epochs=8")
        values[key.strip()] = toml_value(text.strip())
    return values


def toml_value(text: str):
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            return _plain_value(text)
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: a model name, a schedule, a path


def _plain_value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text, text)

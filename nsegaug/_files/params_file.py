"""The strength file (``params.toml``): written by ``nsegaug calibrate``, read by ``generate``, ``train`` and
``noise`` with ``--params FILE``.

Its top-level keys are options of ``nsegaug generate`` under their own names,
as in a study file's ``[generate]`` table; its ``[noise]`` table holds options
of ``nsegaug noise``; its ``[calibration]`` table is the record of how the
values were found (read by people, ignored by the commands)::

    alpha_sigma = "15:5,30:5"
    area_thresh = 64

    [noise]
    max_radius = 1
    max_epsilon = 1.25
    jitter_amplitude = 0.5

    [calibration]
    model = "equal-readers"
    distance_px = 0.21

Pure Python: importing this module costs nothing.
"""

from __future__ import annotations

import math
import os

from ..errors import UsageError

# The keys a command takes from the file, by the table they are in (None: the top level).
DEFORM_KEYS = ("alpha_sigma", "area_thresh")
NOISE_TABLE = "noise"
RECORD_TABLE = "calibration"


def read_toml(path: os.PathLike | str, what: str = "params file") -> dict:
    """A TOML file's tables (tomllib on Python 3.11+, else tomli when installed); a bad file is a UsageError
    naming it (``what``: what the file is, for the message)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise UsageError(f"{path}: reading a {what} needs Python 3.11+ or `pip install tomli`") from None
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise UsageError(f"{path}: cannot read the {what} ({error.strerror or error})") from error
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{path}: not valid TOML ({error})") from error


def read_params_file(path: os.PathLike | str) -> dict:
    """The params file's tables (see [`read_toml`][nsegaug._files.params_file.read_toml])."""
    return read_toml(path, "params file")


def params_table(path: os.PathLike | str, table: str | None, known: tuple[str, ...]) -> dict:
    """The values of ``table`` (None: the top level) of the file, refusing keys a command would not know."""
    tables = read_params_file(path)
    values = tables if table is None else tables.get(table, {})
    if not isinstance(values, dict):
        raise UsageError(f"{path}: [{table}] must be a table")
    if table is None:
        values = {key: value for key, value in values.items() if not isinstance(value, dict)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        where = f"[{table}]" if table else "its top level"
        raise UsageError(f"{path}: unknown key(s) {', '.join(unknown)} in {where}; it takes {', '.join(known)}")
    return values


def toml_text(values: dict, tables: dict[str, dict] | None = None, header: str = "") -> str:
    """A TOML document of plain values (str, int, float, bool, lists of them) and one level of tables."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += [f"{key} = {_toml_value(value)}" for key, value in values.items() if value is not None]
    for name, table in (tables or {}).items():
        lines += ["", f"[{name}]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in table.items() if value is not None]
    return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML has no {value}")
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")

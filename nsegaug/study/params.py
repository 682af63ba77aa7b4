"""A study file's ``params = "FILE"``: the strength a calibration wrote (``nsegaug calibrate``'s params.toml).

In ``[generate]`` it sets ``alpha_sigma`` and ``area_thresh`` from the file's
top level, for the offline copies and for ``nsegment+online`` alike (which
take [generate]'s deformation); in ``[noise]`` it sets the options of the
file's ``[noise]`` table. A key written in the study's table (or given with
``--generate-option`` / ``--noise-option``) overrides the file's, as an
option on the command line overrides ``--params`` on the commands, and the
study records where each value came from (``params_sources`` in study.json
and results.json, a line in results.md).

The file is passed on to the units as the commands' own ``--params``, so each
unit records its provenance too, and a dry run shows it. The file is read
when the study is described (a dry run included): a missing or bad file, an
unknown key or a bad value is refused then, naming the file.
"""

from __future__ import annotations

from .._files.params_file import DEFORM_KEYS, NOISE_TABLE, params_table
from ..errors import UsageError

KEY = "params"
ALIAS = "params_file"  # the commands' own name for the option, accepted as the same key
# The study table -> the table of the params file it reads (None: the top level).
FILE_TABLE = {"generate": None, "noise": NOISE_TABLE}


def split(table: dict, where: str = "") -> tuple[dict, str | None]:
    """A study table without its ``params`` key, and that key's value (None when absent)."""
    rest = dict(table)
    found = [rest.pop(key) for key in (KEY, ALIAS) if key in rest]
    if len(found) > 1:
        raise UsageError(f"{where}{KEY} and {ALIAS} are the same key: give one")
    if found and not isinstance(found[0], str):
        raise UsageError(f"{where}{KEY}: a file name, got {found[0]!r}")
    return rest, found[0] if found else None


def file_keys(command: str) -> tuple[str, ...]:
    """The keys ``nsegaug COMMAND --params`` takes from the file."""
    if command == "generate":
        return DEFORM_KEYS
    from ..options.noise import NOISE_TYPES

    return tuple(NOISE_TYPES)


def sources(command: str, table: dict, where: str = "") -> dict | None:
    """Where each value the file could set comes from, for the study's ``[command]`` table (None: no file).

    The file is read and each value checked by the command's own option type;
    a bad file is a UsageError naming it."""
    from ..options import command_options
    from ..storage import sha256_file
    from .options import option_flags

    rest, path = split(table, f"{where}[{command}] ")
    if path is None:
        return None
    values = params_table(path, FILE_TABLE[command], file_keys(command))
    params = command_options(command)
    for key, value in values.items():
        if isinstance(value, list) and params[key].nargs == 1:
            value = ",".join(str(item) for item in value)
        option_flags(params[key], value, f"{path}: {key}")
    record = {key: "params file" if key in values else "default" for key in file_keys(command)}
    record.update({key: "study table" for key in rest if key in record})
    return {"params_file": path, "params_file_sha256": sha256_file(path), "sources": record}


def flags(path: str | None) -> list[str]:
    """The commands' own option for the file."""
    return [] if path is None else ["--params", path]


def describe(params_sources: dict) -> str:
    """One line of results.md: which file set which values, and which the study's tables overrode."""
    parts = []
    for command, entry in params_sources.items():
        taken = [key for key, source in entry["sources"].items() if source == "params file"]
        overridden = [key for key, source in entry["sources"].items() if source == "study table"]
        text = f"[{command}] params = {entry['params_file']} (sha256 {entry['params_file_sha256'][:12]})"
        text += f": {', '.join(taken) or 'nothing'} from the file"
        if overridden:
            text += f"; {', '.join(overridden)} from the study's table (file or options)"
        parts.append(text)
    return "; ".join(parts)

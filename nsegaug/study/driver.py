"""A study from start to end: the record of its description, the data units, the trainings, the outputs; and
the dry run, which prints the plan and writes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .._files import lock
from .._files.label_folders import is_inside
from .._files.local import make_folders, remove_made_folders
from ..errors import FolderHeld, StorageError, UsageError, shown_path
from ..storage import write_bytes_atomic
from .plan import Layout, Unit, plan_units
from .report import study_record, write_outputs
from .run import UNITS_LOG, StudyError, UnitLog, run_units, thread_environment, threads_per_run
from .spec import StudySpec

STUDY_RECORD = "study.json"


def run_study(spec: StudySpec, out: Path, parallel: int, say: Callable[[str], None]) -> dict:
    """Run every unit not finished yet (data first, then the trainings, ``parallel`` at a time), then write the
    outputs and end with the headline (the primary comparison, one line per metric, and its warnings); returns
    results.json's record. Raises StudyError naming the units that failed; on Ctrl-C, stops the running units
    (recorded as interrupted), says how to resume and raises KeyboardInterrupt again."""
    out = Path(out)
    check_data(spec)
    units = plan_units(spec, out, threads_per_run(parallel))
    made = make_folders(out, "cannot create the study's folder")
    # One study per folder, for its whole life; its units nest their own runs inside it by delegation.
    with _held(out, made) as identity:
        _refuse_folders_led_outside(out, units)
        record = {"study": spec.to_dict(), "commands": [unit.shell() for unit in units]}
        write_bytes_atomic(out / STUDY_RECORD, (json.dumps(record, indent=2) + "\n").encode("utf-8"), durable=False)
        try:
            run_stages(units, out, parallel, say, lock.child_environment(identity))
        except KeyboardInterrupt:
            say("interrupted: rerun the same command to resume")
            raise
        results = study_record(spec, units, out, thread_environment(threads_per_run(parallel)))
        return _finish(out, results, say)


@contextmanager
def _held(out: Path, made: list[Path]) -> Iterator[dict]:
    """The study's hold on ``out`` (its identity, for the units' delegation); the folders made only to be held,
    then refused, are removed again."""
    try:
        with lock.hold(out, "study") as identity:
            yield identity
    except FolderHeld:
        remove_made_folders(made)
        raise


def _refuse_folders_led_outside(out: Path, units: list[Unit]) -> None:
    """A study writes only inside its folder: a link among the folders it writes in (``logs``, ``data``, ``runs``
    and below; planted, or left by a tool) that leads elsewhere is refused, naming it, before anything is
    written through it. A link that stays inside is followed, as generate follows one."""
    layout = Layout(out)
    for folder in sorted({unit.out for unit in units} | {layout.log(unit.name).parent for unit in units}):
        if is_inside(folder, out):
            continue
        relative = folder.relative_to(out).parts
        parts = [out.joinpath(*relative[:length]) for length in range(1, len(relative) + 1)]
        link = next((part for part in parts if part.is_symlink() and not is_inside(part, out)), folder)
        raise StorageError(
            link,
            f"a link to {shown_path(link.resolve())} leads outside the study's folder; a study writes only inside it",
        )


def _finish(out: Path, results: dict, say: Callable[[str], None]) -> dict:
    written = write_outputs(out, results, say)
    say("wrote " + ", ".join(str(path) for path in written))
    for line in results["headline"]:
        say(line)
    say(f"every comparison: {out / 'results.md'}")
    return results


def run_stages(
    units: list[Unit], out: Path, parallel: int, say: Callable[[str], None], delegation: dict[str, str]
) -> None:
    """The noise, then the copies, then the trainings; a stage with a failed unit stops the study there.
    ``delegation``: the environment that lets the units hold folders inside the study's."""
    layout, log = Layout(out), UnitLog(out / UNITS_LOG)
    stages = [[unit for unit in units if unit.kind == kind] for kind in ("noise", "generate", "train")]
    for number, stage in enumerate(stages):
        if not stage:
            continue
        failures = run_units(stage, parallel, log, layout.log, say, delegation)
        if failures:
            later = " (the later steps need it: not run)" if number < len(stages) - 1 else ""
            raise StudyError(f"{len(failures)} unit(s) failed{later}:\n" + "\n".join(failures))


def check_data(spec: StudySpec) -> None:
    """Refuse, naming it, a local data folder of the study that does not exist, is not a folder, or holds no
    label map: before any unit runs, and in a dry run, which would otherwise plan commands that cannot run.
    Folders in object storage are checked by the units that read them."""
    from .. import storage
    from .._files.label_folders import iter_label_files

    for key in ("labels", "images", "val_labels", "val_images", "noisy_labels"):
        folder = getattr(spec, key)
        if folder is None or storage.is_url(folder):
            continue
        if not Path(folder).is_dir():
            problem = "does not exist" if not Path(folder).exists() else "is not a folder"
            raise UsageError(f"{folder}: the study's {key} folder {problem}")
        if key in ("labels", "val_labels", "noisy_labels") and next(iter_label_files(Path(folder)), None) is None:
            raise UsageError(f"{folder}: the study's {key} folder holds no label map")


def plan_text(spec: StudySpec, units: list[Unit], parallel: int) -> str:
    """The dry run's plan: every command, in order, with the environment the trainings get."""
    trainings = [unit for unit in units if unit.kind == "train"]
    environment = " ".join(f"{key}={value}" for key, value in thread_environment(threads_per_run(parallel)).items())
    lines = [
        f"study: {', '.join(spec.methods)} x {', '.join(spec.conditions)} labels x seeds "
        f"{', '.join(map(str, spec.seeds))}",
        f"{len(units) - len(trainings)} data command(s), then {len(trainings)} training(s), {parallel} at a time, "
        f"each with {environment}:",
        "",
        *(unit.shell() for unit in units),
    ]
    return "\n".join(lines)

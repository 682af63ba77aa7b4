"""A property of the job engine: whatever a user does to an output folder, nothing outside it changes, no other
run's file is removed, and the folder ends holding exactly what its manifest lists.

Hypothesis draws sequences of real runs (fresh, resume, overwrite; through the Python API and as processes
killed with SIGKILL or started two at a time), with links and edited records planted in between: a link to a
file elsewhere named as the lock, runs nested inside the output folder or around it, a run inside another
while that one runs (stopped with SIGSTOP mid-run, so they meet whatever the machine's load). After every step
the files outside ``--out`` (the sources, a neighbour's folder) are byte for byte as before, the folders of the
runs the step did not start are as before, and a run nested with one that ran meanwhile still has every file
its manifest lists; at the end the user removes what they planted and starts again, which must succeed with
the folder as its manifest says.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from folders import files, listed, snapshot
from runs import DATA

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from nsegaug._files.lock import LOCK_NAME  # noqa: E402
from nsegaug.errors import NsegaugError, RunRefused  # noqa: E402
from nsegaug.generate import GenerateConfig, generate_dataset  # noqa: E402
from nsegaug.manifest import MANIFEST_NAME, META_NAME  # noqa: E402

ACTIONS = ("fresh", "resume", "overwrite", "kill", "together", "link_out", "edit_row", "link_labels", "drop_meta")
NESTING = ("link_lock", "inside_while_running", "around_while_running", "around")
# The folders each action starts runs in (the others' files must stay as they are); ``out`` for the rest.
TARGETS = {"inside_while_running": ("out", "inner"), "around_while_running": ("out", "inner"), "around": ("box",)}
FLAGS = {"fresh": {}, "resume": {"resume": True}, "overwrite": {"overwrite": True}}


class World:
    """A labels folder, a neighbour's folder beside the output, the output folder itself, a folder for a run
    inside it (``inner``) and one around it (``box``)."""

    def __init__(self, root: Path) -> None:
        self.root, self.labels, self.neighbour = root, root / "labels", root / "neighbour"
        self.box = root / "box"
        self.out = self.box / "out"
        self.inner = self.out / "inner"
        (self.labels / "day").mkdir(parents=True)
        for index in range(3):
            shutil.copy(DATA / "train" / "labels" / f"scene_{index:04d}.png", self.labels / ("day" if index else ""))
        # The neighbour holds files named as outputs are: a run led there by a link would overwrite or delete them.
        (self.neighbour / "day").mkdir(parents=True)
        for name in ("scene_0000_nsp1.png", "day/scene_0001_nsp1.png", "scene_0001_nsp1.png", "victim.txt"):
            (self.neighbour / name).write_bytes(b"the neighbour's " + name.encode())
        self.planted: list[Path] = []

    def outside(self) -> dict:
        return {"labels": snapshot(self.labels), "neighbour": snapshot(self.neighbour)}

    def folders(self) -> dict[str, dict]:
        """Each run folder's entries, without those of the run folders inside it."""
        return {
            "box": without(snapshot(self.box), "out"),
            "out": without(snapshot(self.out), "inner"),
            "inner": snapshot(self.inner),
        }

    def config(self, seed: int = 0, out: Path | None = None) -> GenerateConfig:
        return GenerateConfig(labels=self.labels, out=out or self.out, copies=2, seed=seed)

    def command(self, *flags: str, seed: int = 0, out: Path | None = None, copies: int = 2) -> list[str]:
        arguments = ["--labels", str(self.labels), "--out", str(out or self.out), "--copies", str(copies)]
        arguments += ["--seed", str(seed)]
        return [sys.executable, "-m", "nsegaug", "generate", *arguments, "--quiet", "--jobs", "1", *flags]


def without(entries: dict, folder: str) -> dict:
    return {name: value for name, value in entries.items() if name != folder and not name.startswith(folder + "/")}


def whole(folder: Path) -> bool:
    """A finished run's folder holds every file its manifest lists (True where no finished run is recorded)."""
    try:
        if json.loads((folder / META_NAME).read_text())["status"] != "complete":
            return True
        rows = [json.loads(line) for line in (folder / MANIFEST_NAME).read_text().splitlines()]
    except (OSError, ValueError):
        return True
    return all(os.path.lexists(folder / row["output"]) for row in rows if row["output"])


def api_run(world: World, out: Path, flag: str) -> None:
    try:
        generate_dataset(world.config(out=out), log=print, **FLAGS[flag])
    except NsegaugError:
        pass  # refused, or failed with one line: the property is about what it touched


def under_way(out: Path) -> bool:
    """Whether the run of ``running`` has recorded itself (its 40 copies tell it from the others) and then written
    rows: the manifest an earlier run left is gone by the time a run records itself."""
    try:
        meta = json.loads((out / META_NAME).read_text())
        return meta["status"] == "running" and "40" in meta["command_line"] and bool((out / MANIFEST_NAME).read_text())
    except (OSError, ValueError, KeyError):
        return False


@contextmanager
def running(world: World, out: Path):
    """A run into ``out`` stopped (SIGSTOP) mid-run, once its manifest has rows (or refused at once): another run
    meets it there whatever the load; it goes on at the end of the block."""
    process = subprocess.Popen(world.command("--overwrite", out=out, copies=40), stderr=subprocess.PIPE)
    try:
        while process.poll() is None and not under_way(out):
            time.sleep(0.01)
        if process.poll() is None:
            process.send_signal(signal.SIGSTOP)
        yield
    finally:
        process.send_signal(signal.SIGCONT)
        process.communicate(timeout=300)


def act(world: World, action: str, draw) -> None:
    if action in ("fresh", "resume", "overwrite"):
        api_run(world, world.out, action)
    elif action == "inside_while_running":
        with running(world, world.out):
            api_run(world, world.inner, draw(st.sampled_from(list(FLAGS))))
    elif action == "around_while_running":
        world.out.mkdir(parents=True, exist_ok=True)
        with running(world, world.inner):
            api_run(world, world.out, draw(st.sampled_from(list(FLAGS))))
    elif action == "around":
        api_run(world, world.box, draw(st.sampled_from(list(FLAGS))))
    elif action == "link_lock" and not (world.out / LOCK_NAME).is_symlink():
        world.out.mkdir(parents=True, exist_ok=True)
        (world.out / LOCK_NAME).unlink(missing_ok=True)
        (world.out / LOCK_NAME).symlink_to(world.neighbour / "victim.txt")
        world.planted.append(world.out / LOCK_NAME)
    elif action == "kill":
        process = subprocess.Popen(world.command(draw(st.sampled_from(["--overwrite", "--resume"]))))
        time.sleep(draw(st.floats(0.3, 2.0)))
        process.send_signal(signal.SIGKILL)
        process.wait()
    elif action == "together":
        processes = [
            subprocess.Popen(world.command("--overwrite", seed=seed), stderr=subprocess.PIPE) for seed in (0, 1)
        ]
        for process in processes:
            process.communicate(timeout=120)
    elif action == "link_out" and world.out.is_dir() and not (world.out / "day").is_symlink():
        shutil.rmtree(world.out / "day", ignore_errors=True)
        (world.out / "day").symlink_to(world.neighbour / "day")
        world.planted.append(world.out / "day")
    elif action == "edit_row" and (world.out / MANIFEST_NAME).is_file():
        lines = (world.out / MANIFEST_NAME).read_text().splitlines()
        outputs = [number for number, line in enumerate(lines) if json.loads(line)["output"]]
        if outputs:
            number = draw(st.sampled_from(outputs))
            row = json.loads(lines[number])
            row["output"] = draw(
                st.sampled_from(["../neighbour/scene_0000_nsp1.png", str(world.labels / "scene_0000.png"), "../labels"])
            )
            lines[number] = json.dumps(row)
            (world.out / MANIFEST_NAME).write_text("\n".join(lines) + "\n")
    elif action == "link_labels" and not (world.labels / "linked").is_symlink():
        (world.labels / "linked").symlink_to(world.out)
        world.planted.append(world.labels / "linked")
    elif action == "drop_meta":
        (world.out / META_NAME).unlink(missing_ok=True)


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,  # the same sequences in every run of the suite
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=st.lists(st.sampled_from(ACTIONS + NESTING * 2), min_size=2, max_size=6), data=st.data())
def test_nothing_outside_the_output_changes_and_the_folder_ends_as_its_manifest_says(tmp_path_factory, actions, data):
    world = World(tmp_path_factory.mktemp("world"))
    for action in actions:
        before, folders = world.outside(), world.folders()
        act(world, action, data.draw)
        after = world.outside()
        if action == "link_labels":  # the user's own link among the labels: the one change expected there
            before["labels"]["linked"] = after["labels"].get("linked")
        assert after == before, f"{action} changed something outside the output folder"
        now = world.folders()
        for name in set(folders) - set(TARGETS.get(action, ("out",))):
            assert now[name] == folders[name], f"{action} changed the folder of another run ({name})"
        assert whole(world.inner), f"{action} removed a file of the run nested in {world.out}"
    for link in world.planted:
        link.unlink()
    finish(world, actions)
    assert files(world.out) == listed(world.out)
    assert not (world.out / LOCK_NAME).exists()


def finish(world: World, actions: list[str]) -> None:
    """The user starts again in ``out``, moving away what nsegaug refuses to take for its own."""
    try:
        generate_dataset(world.config(), overwrite=True, log=print)
        return
    except RunRefused as error:
        if "holds the folder of another nsegaug run" not in str(error):
            # Without its metadata and with a damaged manifest, nothing says the files are nsegaug's: the folder
            # is refused, never emptied. The user moves it away and starts again.
            assert "drop_meta" in actions and "holds files no nsegaug run wrote" in str(error)
    shutil.rmtree(world.inner, ignore_errors=True)  # another run's folder: moved away, never taken for this one's
    try:
        generate_dataset(world.config(), overwrite=True, log=print)
    except RunRefused as error:
        assert "drop_meta" in actions and "holds files no nsegaug run wrote" in str(error)
        shutil.rmtree(world.out)
        generate_dataset(world.config(), log=print)

"""A property of the job engine: whatever a user does to an output folder, nothing outside it changes, and the
folder ends holding exactly what its manifest lists.

Hypothesis draws sequences of real runs (fresh, resume, overwrite; through the Python API and as processes
killed with SIGKILL or started two at a time), with links and edited records planted in between. After every
step the files outside ``--out`` (the sources, a neighbour's folder) are byte for byte as before; at the end
the user removes what they planted and starts again, which must succeed with the folder as its manifest says.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from folders import files, listed, snapshot

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from nsegaug.errors import NsegaugError, RunRefused  # noqa: E402
from nsegaug.generate import GenerateConfig, generate_dataset  # noqa: E402
from nsegaug.lock import LOCK_NAME  # noqa: E402
from nsegaug.manifest import MANIFEST_NAME, META_NAME  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
ACTIONS = ("fresh", "resume", "overwrite", "kill", "together", "link_out", "edit_row", "link_labels", "drop_meta")


class World:
    """A labels folder, a neighbour's folder beside the output, and the output folder itself."""

    def __init__(self, root: Path) -> None:
        self.root, self.labels, self.neighbour, self.out = root, root / "labels", root / "neighbour", root / "out"
        (self.labels / "day").mkdir(parents=True)
        for index in range(3):
            shutil.copy(SAMPLES / "train" / "labels" / f"scene_{index:04d}.png", self.labels / ("day" if index else ""))
        # The neighbour holds files named as outputs are: a run led there by a link would overwrite or delete them.
        (self.neighbour / "day").mkdir(parents=True)
        for name in ("scene_0000_nsp1.png", "day/scene_0001_nsp1.png", "scene_0001_nsp1.png"):
            (self.neighbour / name).write_bytes(b"the neighbour's " + name.encode())
        self.planted: list[Path] = []

    def outside(self) -> dict:
        return {"labels": snapshot(self.labels), "neighbour": snapshot(self.neighbour)}

    def config(self, seed: int = 0) -> GenerateConfig:
        return GenerateConfig(labels=self.labels, out=self.out, copies=2, seed=seed)

    def command(self, *flags: str, seed: int = 0) -> list[str]:
        arguments = ["--labels", str(self.labels), "--out", str(self.out), "--copies", "2", "--seed", str(seed)]
        return [sys.executable, "-m", "nsegaug", "generate", *arguments, "--quiet", "--jobs", "1", *flags]


def act(world: World, action: str, draw) -> None:
    if action in ("fresh", "resume", "overwrite"):
        try:
            generate_dataset(world.config(), resume=action == "resume", overwrite=action == "overwrite", log=print)
        except NsegaugError:
            pass  # refused, or failed with one line: the property is about what it touched
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
@given(actions=st.lists(st.sampled_from(ACTIONS), min_size=2, max_size=6), data=st.data())
def test_nothing_outside_the_output_changes_and_the_folder_ends_as_its_manifest_says(tmp_path_factory, actions, data):
    world = World(tmp_path_factory.mktemp("world"))
    for action in actions:
        before = world.outside()
        act(world, action, data.draw)
        after = world.outside()
        if action == "link_labels":  # the user's own link among the labels: the one change expected there
            before["labels"]["linked"] = after["labels"].get("linked")
        assert after == before, f"{action} changed something outside the output folder"
    for link in world.planted:
        link.unlink()
    try:
        generate_dataset(world.config(), overwrite=True, log=print)
    except RunRefused as error:
        # Without its metadata and with a damaged manifest, nothing says the files are nsegaug's: the folder is
        # refused, never emptied. The user moves it away and starts again.
        assert "drop_meta" in actions and "holds files no nsegaug run wrote" in str(error)
        shutil.rmtree(world.out)
        generate_dataset(world.config(), log=print)
    assert files(world.out) == listed(world.out)
    assert not (world.out / LOCK_NAME).exists()

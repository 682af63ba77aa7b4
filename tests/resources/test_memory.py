"""Memory a run can see coming: a map's estimate held before it is decoded, shared by the workers of a machine,
refused in one line when it cannot fit (real limits: an address-space limit, a memory cgroup)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from runs import ROOT

from nsegaug._resources import memory
from nsegaug.errors import NotEnoughMemory
from nsegaug.generate import map_memory
from nsegaug.params import DeformParams
from nsegaug.synthetic import street_scene

SAMPLE = ROOT / "examples" / "data" / "train" / "labels" / "scene_0000.png"


def write_street_png(path: Path, height: int, width: int) -> None:
    """A palette PNG of street scenes, tiled (a large map made quickly, with many components)."""
    tile = street_scene(1024, 1024, 150, seed=7)
    write_png(path, np.ascontiguousarray(np.tile(tile, (-(-height // 1024), -(-width // 1024)))[:height, :width]))


def write_background_png(path: Path, height: int, width: int) -> None:
    """A palette PNG of one background component around scattered objects (an aerial view, a medical slice): an
    object whose box is the whole map, which the noise models work on whole (their largest need)."""
    segment = street_scene(height, width, height * width // 7000, seed=7)
    segment[np.isin(segment, (0, 1, 2, 8, 10))] = 0  # the road, sidewalk, building, vegetation and sky bands
    write_png(path, segment)


def write_png(path: Path, segment: np.ndarray) -> None:
    height, width = segment.shape
    image = Image.frombuffer("P", (width, height), segment, "raw", "P", 0, 1)
    image.putpalette(bytes(range(256)) * 3)
    image.save(path, compress_level=1)


@pytest.fixture
def ledger_here(tmp_path, monkeypatch):
    """The ledger of this test alone (TMPDIR decides where it is), for this process and those it starts."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr("tempfile.tempdir", str(folder))
    return folder


# A run in this process (--jobs 1) under an address-space limit: room for what it holds now plus LIMIT_MB.
LIMITED_RUN = """
import resource, sys
import cv2, numpy, PIL.Image, scipy.ndimage, scipy.sparse.csgraph
import nsegaug.cli, nsegaug.generate, nsegaug.deform, nsegaug.noise, nsegaug.noise_models, nsegaug._jobs
size = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
limit = size + int(sys.argv[1]) * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
nsegaug.cli.main(sys.argv[2:])
"""


def test_a_map_that_cannot_fit_is_refused_with_its_estimate_and_the_run_goes_on(tmp_path, ledger_here):
    labels, out = tmp_path / "labels", tmp_path / "out"
    labels.mkdir()
    write_street_png(labels / "huge.png", 9000, 9000)  # 81 Mpx: about 700 MiB at its peak, estimated
    (labels / "small.png").write_bytes(SAMPLE.read_bytes())
    args = ["generate", "--labels", labels, "--out", out, "-k", "1", "-j", "1", "-q", "--max-pixels", 10**8]
    done, refusal = _refused_under_300_mib(args)
    assert len(refusal) == 1 and "needs about" in refusal[0] and "(9000x9000 px)" in refusal[0], done.stderr
    assert "is available" in refusal[0]
    assert (out / "small_nsp1.png").is_file() and not (out / "huge_nsp1.png").exists()


def _refused_under_300_mib(args: list) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Runs nsegaug with ``args`` in 300 MiB of address space (LIMITED_RUN): it must fail a mask, the others done,
    without a traceback; returns the run and its lines that name huge.png."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LIMITED_RUN), "300", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr  # a mask failed; the others were done
    assert "Traceback" not in done.stderr
    return done, [line for line in done.stderr.splitlines() if "huge.png" in line]


def test_the_estimate_covers_what_generate_holds(tmp_path, ledger_here):
    """The estimate of a 6000x6000 map against the peak RSS of a real run (its interpreter's own size set apart)."""
    labels, out = tmp_path / "labels", tmp_path / "out"
    labels.mkdir()
    write_street_png(labels / "big.png", 6000, 6000)
    small = tmp_path / "small"
    small.mkdir()
    (small / "small.png").write_bytes(SAMPLE.read_bytes())
    run = [sys.executable, "-m", "nsegaug", "generate", "--out", tmp_path / "out_small", "-k", "2", "-j", "1", "-q"]
    baseline = _peak_rss([*map(str, run), "--labels", str(small)])  # the interpreter and its libraries
    peak = _peak_rss([*map(str, run[:4]), "--labels", str(labels), "--out", str(out), *map(str, run[6:])])
    estimate = map_memory((6000, 6000), "P", (labels / "big.png").stat().st_size, DeformParams())
    assert peak - baseline < estimate < 3 * (peak - baseline)


def test_noise_refuses_a_map_that_cannot_fit_with_its_estimate_and_the_run_goes_on(tmp_path, ledger_here):
    """On e41daf4 noise decoded the map and failed only once out of memory, with no estimate (and under a cgroup
    limit, where a process is killed instead, nothing stopped it)."""
    labels, out = tmp_path / "labels", tmp_path / "out"
    labels.mkdir()
    write_street_png(labels / "huge.png", 6000, 6000)  # 36 Mpx: about 2.4 GiB estimated
    (labels / "small.png").write_bytes(SAMPLE.read_bytes())
    args = ["noise", "--labels", labels, "--out", out, "-j", "1", "-q"]
    done, refusal = _refused_under_300_mib(args)
    assert len(refusal) == 1, done.stderr
    assert "needs about" in refusal[0] and "of memory to add noise (6000x6000 px)" in refusal[0], done.stderr
    assert "is available" in refusal[0]
    assert (out / "small.png").is_file() and not (out / "huge.png").exists()


# The models at their defaults, and all four at large sizes (bias is off by default).
LARGE_NOISE = {"models": "bias,boundary,simplify,jitter", "max_radius": 20, "max_epsilon": 20, "bias_radius": 20,
               "jitter_amplitude": 10, "jitter_sigma": 100}  # fmt: skip


@pytest.mark.parametrize(
    ("write", "settings"),
    [(write_background_png, {}), (write_background_png, LARGE_NOISE), (write_street_png, {})],
    ids=["background-defaults", "background-all-large", "tiled-streets-defaults"],
)
def test_the_estimate_covers_what_noise_holds(tmp_path, ledger_here, write, settings):
    """The estimate of a 4000x4000 map against the peak RSS of a real noise run (its interpreter's own size set
    apart): on a background that spans the map (the models' largest need, which the estimate assumes) and on tiled
    street scenes (small objects only)."""
    from nsegaug.noise import noise_memory  # not on e41daf4, which held nothing for noise
    from nsegaug.params import NoiseParams

    labels, small = tmp_path / "labels", tmp_path / "small"
    labels.mkdir()
    small.mkdir()
    write(labels / "big.png", 4000, 4000)
    (small / "small.png").write_bytes(SAMPLE.read_bytes())
    options = [item for name, value in settings.items() for item in (f"--{name.replace('_', '-')}", str(value))]
    run = [sys.executable, "-m", "nsegaug", "noise", "-j", "1", "-q", *options]
    baseline = _peak_rss([*run, "--labels", str(small), "--out", str(tmp_path / "out_small")])
    peak = _peak_rss([*run, "--labels", str(labels), "--out", str(tmp_path / "out")]) - baseline
    params = NoiseParams(**{**settings, **({"models": settings["models"].split(",")} if settings else {})})
    estimate = noise_memory((4000, 4000), "P", (labels / "big.png").stat().st_size, params)
    assert peak < estimate < 3 * peak


def _peak_rss(command: list[str]) -> int:
    wrapper = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)"
    )
    done = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_a_reservation_waits_for_another_process_to_give_memory_back(ledger_here):
    """Hold most of the machine's memory in the ledger here; a second process asking for more waits until it is
    given back. Nothing is allocated: the ledger is what the processes of a machine agree on."""
    available = memory.available_memory()
    assert available is not None
    waiter = textwrap.dedent(
        f"""
        import time
        from nsegaug._resources import memory
        start = time.monotonic()
        with memory.reserved({available // 2}, "second.png"):
            print(round(time.monotonic() - start, 1))
        """
    )
    with memory.reserved(available - available // 4, "first.png"):
        second = subprocess.Popen(
            [sys.executable, "-c", waiter], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        # It says when it starts waiting (a clock here would race its start-up on a loaded machine).
        assert select.select([second.stderr], [], [], 60)[0], "nothing said while waiting"
        assert second.stderr.readline().startswith("note: second.png: waits for ") and second.poll() is None
    waited = float(second.communicate(timeout=60)[0])
    assert second.returncode == 0 and waited > 0
    with pytest.raises(NotEnoughMemory, match=r"huge\.png: needs about .* of memory to deform \(a\), and"):
        with memory.reserved(available * 4, "huge.png", " (a)"):
            pass


def test_reservations_of_processes_that_died_are_dropped(ledger_here):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    memory.ledger_path().write_text(f'{{"{int(dead.stdout)}.1.1": {10**15}}}')
    with memory.reserved(memory.LEDGER_FLOOR + (1 << 20), "x.png"):
        pass
    assert memory.ledger_path().read_text() == "{}"


def _memory_cgroup(name: str, limit: int) -> Path | None:
    """A memory cgroup of this machine with ``limit`` bytes (v2 or v1), or None where none can be made here."""
    for parent, limit_file in ((Path("/sys/fs/cgroup/unified"), "memory.max"), (Path("/sys/fs/cgroup"), "memory.max"),
                               (Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes")):  # fmt: skip
        if not (parent / ("cgroup.procs")).exists() or not os.access(parent, os.W_OK):
            continue
        if limit_file == "memory.max" and "memory" not in (parent / "cgroup.controllers").read_text().split():
            continue
        group = parent / name
        try:
            group.mkdir()
            (group / limit_file).write_text(str(limit))
            return group
        except OSError:
            if group.exists():
                group.rmdir()
    return None


def test_jobs_2_on_huge_maps_under_a_cgroup_limit_deforms_them_one_at_a_time(tmp_path, ledger_here):
    """Two workers, maps of which one fits in the cgroup's memory at a time and two do not: every copy is made
    and no process is killed (on 0f2d1df the workers are killed by the cgroup's OOM killer)."""
    limit = 1100 * 2**20
    group = _memory_cgroup(f"nsegaug-test-{os.getpid()}", limit)
    if group is None:
        pytest.skip("no memory cgroup can be made here (needs root and a writable cgroup file system)")
    try:
        labels, out = tmp_path / "labels", tmp_path / "out"
        labels.mkdir()
        for index in range(3):
            write_street_png(labels / f"map_{index}.png", 7000, 7000)  # estimated ~500 MiB each
        done = subprocess.run(
            [sys.executable, "-m", "nsegaug", "generate", "--labels", labels, "--out", out, "-k", "1", "-j", "2", "-q"],
            capture_output=True,
            text=True,
            timeout=600,
            preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())),
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert sorted(path.name for path in out.glob("*.png")) == [f"map_{index}_nsp1.png" for index in range(3)]
    finally:
        for _ in range(50):  # the group empties once its processes are reaped
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def test_a_process_stopped_while_it_holds_the_ledger_does_not_hang_the_others(tmp_path, ledger_here):
    """Ctrl-Z on one nsegaug process of a machine, at the instant it holds the ledger's lock: another run still
    deforms its maps (counting alone), instead of waiting for that process forever."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "from nsegaug._resources import memory\n"
            "descriptor = os.open(memory.ledger_path(), os.O_RDWR | os.O_CREAT, 0o600)\n"
            "fcntl.flock(descriptor, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        os.kill(holder.pid, signal.SIGSTOP)
        labels, out = tmp_path / "labels", tmp_path / "out"
        labels.mkdir()
        (labels / "a.png").write_bytes(SAMPLE.read_bytes())
        command = [sys.executable, "-m", "nsegaug", "generate", "--labels", labels, "--out", out, "-k", "2", "-q"]
        run = subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert sorted(path.name for path in out.glob("a_nsp*.png")) == ["a_nsp1.png", "a_nsp2.png"]
        # A map large enough to be shared out: its reservation waits LEDGER_WAIT_S for the lock at most, then
        # goes on counting alone (here: taking, resizing and giving back a reservation).
        start = time.monotonic()
        with memory.reserved(2 * memory.LEDGER_FLOOR, "large.png") as held:
            held.resize(3 * memory.LEDGER_FLOOR)
        assert time.monotonic() - start < 4 * memory.LEDGER_WAIT_S
    finally:
        holder.kill()
        holder.wait()


# Holds MiB (argv[1]) in the ledger and allocates it, says so, and gives it back when stdin closes; its array is
# freed when it exits, argv[2] seconds later (0: at once), as a worker's arrays outlive its reservation.
HOLDER = """
import sys
import time
import numpy as np
from nsegaug._resources import memory
with memory.reserved(int(sys.argv[1]) << 20, "b.png"):
    held = np.ones(int(sys.argv[1]) << 20, np.uint8)
    print("holds", flush=True)
    sys.stdin.read()
time.sleep(float(sys.argv[2]))
"""

# Reserves MiB (argv[1]), allocates it, then grows to MiB (argv[2]) and allocates that too.
ASKER = """
import sys
import numpy as np
from nsegaug._resources import memory
first, then = int(sys.argv[1]) << 20, int(sys.argv[2]) << 20
with memory.reserved(first, "a.png") as held:
    taken = [np.ones(first, np.uint8)]
    print("reserved", flush=True)
    held.resize(then)
    taken.append(np.ones(then - first, np.uint8))
print("finished", flush=True)
"""


@pytest.mark.parametrize(
    "other, first, then, late",
    [(600, 600, 600, 0), (350, 300, 700, 0), (600, 600, 600, 1)],
    ids=["reserve", "resize", "reserve, freed late"],
)
def test_a_map_that_fits_alone_waits_for_another_process_instead_of_being_refused(
    ledger_here, other, first, then, late
):
    """A cgroup of 1200 MiB, another process holding (and using) some of it: a map that fits once it is given
    back waits for it and is deformed, whether it asks for all its memory at once or grows its reservation to it
    (on 0f2d1df: refused, the headroom read counted the other's memory twice), and when the other frees its
    memory a second after it gave it back in the ledger (on 5678f20: refused in that second, 1 suite in 9)."""
    group = _memory_cgroup(f"nsegaug-wait-{os.getpid()}", 1200 * 2**20)
    if group is None:
        pytest.skip("no memory cgroup can be made here (needs root and a writable cgroup file system)")
    enter = lambda: (group / "cgroup.procs").write_text(str(os.getpid()))  # noqa: E731
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(other), str(late)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=enter,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "holds"
        asker = subprocess.Popen(
            [sys.executable, "-c", ASKER, str(first), str(then)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=enter,
        )  # fmt: skip
        if first < then:  # its first reservation fits beside the other's; growing it does not
            assert asker.stdout.readline().strip() == "reserved"
        time.sleep(3)
        assert asker.poll() is None, asker.communicate()  # waiting for the holder, not refused
        holder.stdin.close()
        holder.wait(timeout=60)
        out, err = asker.communicate(timeout=120)
        assert asker.returncode == 0 and out.split()[-1:] == ["finished"], err
    finally:
        for process in (holder, *([asker] if "asker" in locals() else [])):
            process.kill()
            process.wait()
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def test_two_reservations_that_each_wait_for_the_other_to_grow_do_not_wait_forever(ledger_here):
    """Two workers each hold 45 % of the memory and each grow to 110 %: each would wait for the other to give its
    memory back. The younger gives way (refused, its memory given back) and the elder grows."""
    available = memory.available_memory()
    assert available is not None
    outcomes, both_hold = {}, threading.Barrier(2)

    def work(name: str, delay: float) -> None:
        time.sleep(delay)  # the elder first
        with memory.reserved(available * 45 // 100, f"{name}.png") as held:
            both_hold.wait(timeout=30)
            try:
                held.resize(available * 110 // 100)
                outcomes[name] = "grown"
            except NotEnoughMemory as refusal:
                outcomes[name] = str(refusal)

    workers = [threading.Thread(target=work, args=(name, delay)) for name, delay in (("elder", 0), ("younger", 0.5))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert outcomes["elder"] == "grown"
    assert outcomes["younger"].startswith("younger.png: needs about") and "other workers hold" in outcomes["younger"]
    assert memory.ledger_path().read_text() == "{}"


# Waits for memory as a worker does: reserving all of it at once, or growing a reservation to it (a closer
# estimate of its map, once its header is read).
WAITERS = {
    "reserve": "from nsegaug._resources import memory\nwith memory.reserved({half}, 'a.png'):\n    print('done')\n",
    "resize": "from nsegaug._resources import memory\nwith memory.reserved(1, 'a.png') as held:\n"
    "    held.resize({half})\n    print('done')\n",
}


@pytest.mark.parametrize("waiter_code", WAITERS.values(), ids=WAITERS)
def test_waiting_behind_a_stopped_process_is_said_with_its_pid(ledger_here, waiter_code):
    """A process holding most of the memory in the ledger is stopped (SIGSTOP, as Ctrl-Z): another that needs
    memory waits for it, and says so in one line naming it as stopped; resumed and done, it lets the other go on
    (on 0f2d1df the wait said nothing; on c7f0ef0 a reservation growing said nothing either)."""
    import select

    available = memory.available_memory()
    assert available is not None
    in_the_ledger_only = HOLDER.replace("np.ones(", "(lambda size, kind: size)(")  # nothing allocated
    holder = subprocess.Popen(
        [sys.executable, "-c", in_the_ledger_only, str(available * 3 // 4 >> 20), "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    waiter = None
    try:
        assert holder.stdout.readline().strip() == "holds"
        os.kill(holder.pid, signal.SIGSTOP)
        waiter = subprocess.Popen(
            [sys.executable, "-c", waiter_code.format(half=available // 2)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        ready, _, _ = select.select([waiter.stderr], [], [], 60)
        assert ready, "nothing said while waiting"
        line = waiter.stderr.readline()
        assert line.startswith("note: a.png: waits for ") and line.endswith(
            f"stopped, and giving nothing back until resumed: pid {holder.pid} (kill -CONT {holder.pid})\n"
        ), line
        assert waiter.poll() is None  # still waiting: the holder may be resumed
        os.kill(holder.pid, signal.SIGCONT)
        holder.stdin.close()
        out, err = waiter.communicate(timeout=60)
        assert waiter.returncode == 0 and out.strip() == "done", err
    finally:
        for process in (holder, waiter):
            if process is not None:
                process.kill()
                process.wait()

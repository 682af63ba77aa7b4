"""What a job does with one mask (`MaskJob`), what a worker returns (`MaskOutcome`), and the
summary of a run (`JobSummary`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from .._files.label_folders import Sample
from .config import JobConfig

if TYPE_CHECKING:
    from .._resources.memory import Reservation

# A map's (width, height) and image mode, read from its header (None: a header Pillow cannot read).
Header = tuple[tuple[int, int] | None, str | None]


@dataclass(frozen=True)
class Output:
    """One file a mask's job writes: its name (relative to the output folder) and bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class MaskOutcome:
    """What a worker did with one mask: its rows, or one line saying why it failed; and lines to warn with."""

    label: str
    rows: list = field(default_factory=list)
    error: str | None = None
    warnings: tuple[str, ...] = ()
    unpaired: bool = False
    size_differs: str | None = None  # the line saying its image has another size (io.size_mismatch)


class MaskJob:
    """What a job does with one mask; subclasses define the abstract parts.

    ``kind`` is recorded in the metadata; ``row_type`` is the manifest row
    ([`nsegaug.manifest`][nsegaug.manifest]). ``make`` runs in a worker.
    """

    kind: ClassVar[str]
    row_type: ClassVar[type]
    outputs_noun: ClassVar[str] = "outputs"  # what the summary calls the files written

    def __init__(self, config: JobConfig) -> None:
        self.config = config

    def parameters(self) -> dict:
        """Everything that decides the outputs: recorded in the metadata, compared on resume."""
        raise NotImplementedError

    def outputs(self, label: str) -> list[str]:
        """The files the job writes for ``label``, relative to the output folder."""
        raise NotImplementedError

    def make(self, sample: Sample, source: Path, data: bytes) -> tuple[list, list[Output]]:
        """The rows and output files of one mask, from its source's bytes (no file written here)."""
        raise NotImplementedError

    def is_complete(self, rows: Mapping[int, object]) -> bool:
        """Whether a mask's rows, by their ``key``, are all the rows a finished mask has."""
        raise NotImplementedError

    def observe(self, rows: list) -> None:
        """See the rows of one finished mask (for `report`)."""

    def report(self) -> tuple[dict, list[str]]:
        """Counts for the metadata and warnings for the user, from what `observe` saw."""
        return {}, []


@contextmanager
def map_reserved(
    source: Path, data: bytes, estimate: Callable[[tuple[int, int] | None, str | None], int], doing: str
) -> Iterator[tuple[Reservation, Header]]:
    """Hold the memory a job takes for one map while the block runs, from before the map is decoded.

    ``estimate(size, mode)`` is that memory, from the image's header (size
    None: a header Pillow cannot read, a NIfTI volume's for one; reading the
    file says what is wrong). The workers of a run, and the runs of a machine,
    work on as many huge maps at once as fit and wait for the rest; a map that
    cannot fit even alone is a [`NotEnoughMemory`][nsegaug.errors.NotEnoughMemory] naming the file, the
    estimate and the map's size, which the run reports as one line and goes on
    (see [`reserved`][nsegaug._resources.memory.reserved]). Yields the reservation, to resize once the map
    is known better, and the header.
    """
    from .._resources.memory import reserved
    from ..io import image_header

    size, mode = image_header(data)
    detail = f" ({size[0]}x{size[1]} px)" if size else ""
    with reserved(estimate(size, mode), str(source), detail, doing=doing) as held:
        yield held, (size, mode)


@dataclass
class JobSummary:
    masks: int = 0  # masks done in this run
    outputs_written: int = 0
    skipped: int = 0  # masks already complete (resume)
    failed: int = 0
    unpaired: int = 0  # masks without an image (with images)
    size_differs: list[str] = field(default_factory=list)  # masks whose image has another size: the lines said
    elapsed: float = 0.0
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    outputs_name: str = "outputs written"

    @property
    def masks_per_second(self) -> float:
        return self.masks / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def copies_written(self) -> int:
        """The name ``generate`` gives the outputs written."""
        return self.outputs_written

    def line(self) -> str:
        return (
            f"masks: {self.masks}, {self.outputs_name}: {self.outputs_written}, skipped: {self.skipped}, "
            f"failed: {self.failed}, elapsed: {self.elapsed:.1f}s, masks/s: {self.masks_per_second:.2f}"
        )

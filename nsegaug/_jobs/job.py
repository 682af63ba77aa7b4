"""What a job does with one mask (`MaskJob`), what a worker returns (`MaskOutcome`), and the
summary of a run (`JobSummary`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from .._files.label_folders import Sample
from .config import JobConfig


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

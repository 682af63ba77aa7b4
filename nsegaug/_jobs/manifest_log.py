"""The manifest a run writes, on a disk or in a bucket (`ManifestLog`)."""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from .. import storage
from ..errors import StorageError
from ..manifest import MANIFEST_NAME, append_rows, sort_manifest
from ..storage import Location, is_url, join

PARTS = "manifest.parts"
# A remote run writes its rows in parts of at most this many masks, or at most this often.
PART_MASKS = 64
PART_SECONDS = 5.0


class ManifestLog:
    """The manifest a run writes: rows appended only once their files exist, sorted at the end.

    In a local folder the rows are appended to ``manifest.jsonl`` and
    flushed to disk mask by mask. An object store has no append: the rows go
    to numbered part objects (``manifest.parts/<run>-<n>.jsonl``), each PUT
    once all its masks' objects are written: the first after the first mask
    (a run shows it is recording from the start), then at most ``PART_MASKS``
    masks or ``PART_SECONDS`` apart, so a killed run loses at most the rows of
    its last part (those masks are redone on resume, to the same bytes). At the
    end the manifest and the parts, in order, are merged into one sorted
    ``manifest.jsonl`` and the parts removed.
    """

    def __init__(self, out: Location, row_type: type) -> None:
        self.out, self.row_type = out, row_type
        self.remote = is_url(out)
        self.manifest = join(out, MANIFEST_NAME)
        self.run = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        self.pending: list = []
        self.pending_masks, self.parts_written, self.last_flush = 0, 0, time.monotonic()
        self.workspace = Path(tempfile.mkdtemp(prefix="nsegaug-manifest-")) if self.remote else None

    def rows_file(self) -> Path | None:
        """A local file holding every row written so far, in the order written (None: no rows yet)."""
        if not self.remote:
            return Path(self.manifest) if Path(self.manifest).exists() else None
        merged = self.workspace / "merged.jsonl"
        with open(merged, "wb") as target:
            for location in [self.manifest, *self._parts()]:
                try:
                    target.write(storage.read_bytes(location))
                except FileNotFoundError:
                    continue
        return merged if merged.stat().st_size else None

    def _parts(self) -> list[Location]:
        folder = join(self.out, PARTS)
        return [join(folder, key) for key in sorted(storage.walk(folder))] if storage.exists(folder) else []

    def keep(self, labels: set[str], rows: Path) -> None:
        """Keep only the rows of ``labels`` (verified by resume) of ``rows`` (`rows_file`), sorted, as
        the manifest."""
        sort_manifest(rows, self.row_type, keep=labels)
        self._publish(rows)

    def append(self, rows: list) -> None:
        if not self.remote:
            try:
                append_rows(Path(self.manifest), rows)
            except OSError as error:
                raise StorageError.from_os_error(error, self.manifest, "cannot add to the manifest") from error
            return
        self.pending += rows
        self.pending_masks += 1
        first = self.parts_written == 0
        if first or self.pending_masks >= PART_MASKS or time.monotonic() - self.last_flush >= PART_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        self.parts_written += 1
        part = join(join(self.out, PARTS), f"{self.run}-{self.parts_written:06d}.jsonl")
        storage.write_bytes(part, "".join(row.to_json() + "\n" for row in self.pending).encode("utf-8"))
        self.pending, self.pending_masks, self.last_flush = [], 0, time.monotonic()

    def finish(self) -> Path | None:
        """Sort the manifest (and merge the parts into it); returns a local file of the final rows."""
        self.flush()
        rows = self.rows_file()
        if rows is None:
            storage.write_bytes(self.manifest, b"")  # a run that finished no mask lists nothing, and says so
            return None
        sort_manifest(rows, self.row_type)
        if self.remote:
            self._publish(rows)
        return rows

    def _publish(self, rows: Path) -> None:
        """A remote manifest: the local rows PUT whole, then the parts they hold removed."""
        if not self.remote:
            return
        parts = self._parts()
        storage.write_bytes(self.manifest, rows.read_bytes())
        for part in parts:
            storage.remove(part)

    def discard(self) -> None:
        """Remove the manifest and every part (a fresh run)."""
        for location in [self.manifest, *(self._parts() if self.remote else [])]:
            storage.remove(location)

    def close(self) -> None:
        if self.workspace is not None:
            shutil.rmtree(self.workspace, ignore_errors=True)

"""What a job reads, writes and how it runs: `JobConfig`, shared by every kind of job."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .. import storage
from ..errors import UsageError
from ..manifest import locations, recorded_folders
from ..storage import Location

BACKENDS = ("loky", "dask")
Log = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class JobConfig:
    """Where a job reads and writes, how it walks the sources, and how it runs.

    ``labels`` is walked recursively (``pattern`` on file names), and each
    label is paired with an image of ``images`` by relative path and stem
    (``label_suffix`` and ``image_suffix`` as in Cityscapes). ``palette``:
    a colour table for RGB-coded maps. ``max_pixels``: the largest map
    Pillow opens (its decompression-bomb guard; None: Pillow's default).
    The execution fields (``jobs``, ``backend``, ``scheduler``,
    ``on_error``, ``storage_options``) never change a byte of the outputs.
    Any folder may be an fsspec URL (``s3://bucket/prefix``; see
    [`nsegaug.storage`][nsegaug.storage]).
    """

    labels: Location
    out: Location
    images: Location | None = None
    seed: int = 0
    pattern: str | None = None
    label_suffix: str = ""
    image_suffix: str = ""
    palette: Location | None = None
    max_pixels: int | None = None
    jobs: int = 1
    backend: str = "loky"
    scheduler: str | None = None
    on_error: str = "skip"
    # fsspec's keyword arguments for remote locations (endpoint, credentials): never recorded nor shown.
    storage_options: dict | None = field(default=None, repr=False, compare=False)
    # Where the parameters came from (a params file, the command line): recorded, never compared on resume.
    provenance: dict | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("labels", "out", "images", "palette"):  # str paths from Python callers, or URLs
            if getattr(self, name) is not None:
                # Credentials typed in a URL join the storage options: never recorded, shown, or sent to Dask.
                location, options = storage.take_credentials(getattr(self, name), self.storage_options)
                object.__setattr__(self, name, storage.as_location(location))
                object.__setattr__(self, "storage_options", options)
        if self.seed < 0:
            raise UsageError(f"seed must be >= 0, got {self.seed}")
        if self.backend not in BACKENDS:
            raise UsageError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.on_error not in ("skip", "fail"):
            raise UsageError(f"on_error must be skip or fail, got {self.on_error}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise UsageError(f"max_pixels must be >= 1, got {self.max_pixels}")

    def source_parameters(self) -> dict:
        """The parameters of the sources, as the metadata records them.

        Folders are recorded relative to the output folder, so a dataset that
        moves as a whole (another machine, a container's mount) keeps working;
        readers resolve them against the manifest's folder.
        """
        return {
            "seed": self.seed,
            "pattern": self.pattern,
            "label_suffix": self.label_suffix,
            "image_suffix": self.image_suffix,
            **recorded_folders(self.out, palette=self.palette, labels=self.labels, images=self.images),
        }

    def locations(self) -> dict:
        """The folders as absolute paths (the metadata's ``locations``): a fallback for a manifest moved alone."""
        return locations(labels=self.labels, images=self.images, palette=self.palette, out=self.out)

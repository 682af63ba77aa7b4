"""Walking label folders, pairing masks with images, and naming the outputs."""

from __future__ import annotations

import fnmatch
import os
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .. import storage
from ..errors import shown_path

# NIfTI label volumes (nsegaug.volume); ".nii.gz" is one extension of two suffixes (see split_extension).
VOLUME_EXTENSIONS = (".nii.gz", ".nii")
# The file types a label map can be in: lossless formats only (a JPEG would have blurred the class indices).
LABEL_EXTENSIONS = (".png", ".tif", ".tiff", ".bmp", *VOLUME_EXTENSIONS)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", *VOLUME_EXTENSIONS)
DEFAULT_NAME_TEMPLATE = "{stem}_nsp{copy}{ext}"


@dataclass(frozen=True)
class Sample:
    """One mask: its path relative to the label root, and its image's, if any."""

    label: str  # POSIX path relative to the label root; also the seeding key
    image: str | None  # POSIX path relative to the image root


def iter_label_files(
    root: Path | str,
    pattern: str | None = None,
    warn: Callable[[str], None] = lambda message: None,
    exclude: Path | str | None = None,
) -> Iterator[str]:
    """Relative POSIX paths of label files under ``root``, in sorted order.

    Recursive; hidden files and folders are skipped; symbolic links to folders
    are followed, but a folder reached twice (a link loop) is walked once.
    ``pattern`` is a glob matched against the file name (e.g.
    ``*_labelTrainIds.png``); without it, every file with a label extension.
    The walk is a generator, so a 100k-file dataset is never held in memory.
    A link that points nowhere is skipped with a ``warn`` line (a moved
    dataset, an unmounted disk: a file the user expects in the run), and so
    is a link into ``exclude`` (a job's output folder: its outputs are not
    sources, and a resume would deform its own copies).
    """
    if storage.is_url(root):  # a bucket: its keys, streamed, hidden ones and other types left out
        for key in storage.walk(root):
            parts = key.split("/")
            if not any(part.startswith(".") for part in parts) and _matches(parts[-1], pattern):
                yield key
        return
    seen: set[tuple[int, int]] = set()
    excluded = None if exclude is None or storage.is_url(exclude) else Path(exclude)

    def walk(folder: Path, prefix: PurePosixPath) -> Iterator[str]:
        stat = folder.stat()
        if (stat.st_dev, stat.st_ino) in seen:
            return
        seen.add((stat.st_dev, stat.st_ino))
        with os.scandir(folder) as entries:
            children = sorted(entries, key=lambda entry: entry.name)
        for entry in children:
            if entry.name.startswith("."):
                continue
            if excluded is not None and entry.is_symlink() and is_inside(entry.path, excluded):
                warn(f"warning: {shown_path(entry.path)}: a link into the output folder {excluded}; skipped")
                continue
            if entry.is_dir(follow_symlinks=True):
                yield from walk(Path(entry.path), prefix / entry.name)
            elif entry.is_file(follow_symlinks=True):
                if _matches(entry.name, pattern):
                    yield str(prefix / entry.name)
            elif entry.is_symlink() and _matches(entry.name, pattern):
                target = shown_path(os.readlink(entry.path))
                warn(f"warning: {shown_path(entry.path)}: a link to nothing ({target}); skipped")

    yield from walk(root, PurePosixPath())


def _matches(name: str, pattern: str | None) -> bool:
    if pattern is not None:
        return fnmatch.fnmatchcase(name, pattern)
    return name.lower().endswith(LABEL_EXTENSIONS)


def split_extension(name: str) -> tuple[str, str]:
    """``(stem, extension)`` of a file name, a volume's two-suffix extension kept whole: ``x.nii.gz`` is
    ``("x", ".nii.gz")``, not ``("x.nii", ".gz")``."""
    for extension in VOLUME_EXTENSIONS:
        if name.lower().endswith(extension) and len(name) > len(extension):
            return name[: -len(extension)], name[-len(extension) :]
    path = PurePosixPath(name)
    return path.stem, path.suffix


def is_volume(path: os.PathLike | str) -> bool:
    """Whether a file is a label volume, by its extension (``.nii``, ``.nii.gz``)."""
    return str(path).lower().endswith(VOLUME_EXTENSIONS)


def strip_suffix(stem: str, suffix: str) -> str:
    return stem[: -len(suffix)] if suffix and stem.endswith(suffix) else stem


def find_image(images_root: Path | str, label: str, label_suffix: str = "", image_suffix: str = "") -> str | None:
    """The image paired with ``label``: same folder, same stem, any image extension.

    The stem is the label's file name without its extension and without
    ``label_suffix``; the image's is that plus ``image_suffix`` (Cityscapes:
    ``_gtFine_labelTrainIds`` and ``_leftImg8bit``).
    """
    path = PurePosixPath(label)
    stem = strip_suffix(split_extension(path.name)[0], label_suffix) + image_suffix
    for extension in IMAGE_EXTENSIONS:
        for candidate in (stem + extension, stem + extension.upper()):
            relative = path.parent / candidate
            if storage.is_file(storage.join(images_root, str(relative))):
                return str(relative)
    return None


def check_name_template(template: str) -> None:
    """Raise ValueError unless ``template`` names every output of a run differently.

    It must use ``{stem}``, ``{copy}`` and ``{ext}`` once each (without the
    extension, ``x.png`` and ``x.tif`` would collide), and the copy number must
    be set off by a character that is not a digit (in ``{stem}{copy}{ext}``,
    copy 11 of ``a.png`` and copy 1 of ``a1.png`` are both ``a11.png``).
    """
    # The template as a sequence of literal texts and {fields}, empty texts dropped.
    pieces = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        pieces += [literal] if literal else []
        pieces += [(name,)] if name is not None else []
        # A spec could cut the stem ({stem:.3}) or the extension; only {copy} may be padded ({copy:03d}).
        if name is not None and (conversion or (spec and not (name == "copy" and re.fullmatch(r"0?\d*d?", spec)))):
            raise ValueError(f"format spec not allowed on {{{name}}} in the name template (only {{copy:03d}}-style)")
    fields = [piece[0] for piece in pieces if isinstance(piece, tuple)]
    unknown = set(fields) - {"stem", "copy", "ext"}
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)} in name template; use {{stem}}, {{copy}}, {{ext}}")
    for name in ("stem", "copy", "ext"):
        if fields.count(name) != 1:
            raise ValueError(f"the name template must contain {{{name}}} exactly once, or outputs could collide")
    if "/" in template or "\\" in template:
        raise ValueError("the name template names a file, not a folder: no path separators")
    at = pieces.index(("copy",))
    before = pieces[at - 1] if at > 0 else "-"
    after = pieces[at + 1] if at + 1 < len(pieces) else "-"
    if isinstance(before, tuple) or before[-1].isdigit():
        raise ValueError("in the name template, put a non-digit character before {copy} (e.g. _nsp{copy})")
    if after != ("ext",) and (isinstance(after, tuple) or after[0].isdigit()):
        raise ValueError("in the name template, put a non-digit character or {ext} right after {copy}")
    if pieces[-1] != ("ext",):
        # Tools pick label files by their extension (mmseg's seg_map_suffix, a glob): it must stay last.
        raise ValueError("the name template must end with {ext}, so that every copy keeps its file type's extension")


def output_pattern(template: str) -> re.Pattern:
    """A regular expression of the file names ``template`` gives, with the groups ``stem``, ``copy`` and ``ext``."""
    parts = []
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name == "stem":
            parts.append(r"(?P<stem>.+)")
        elif name == "copy":
            parts.append(r"(?P<copy>\d+)")
        elif name == "ext":
            parts.append(r"(?P<ext>\.nii\.gz|\.[^./]+)")
    return re.compile("".join(parts))


def output_name(label: str, copy_index: int, template: str = DEFAULT_NAME_TEMPLATE) -> str:
    """Relative POSIX path of copy ``copy_index`` of ``label`` (same folders as the source)."""
    path = PurePosixPath(label)
    stem, extension = split_extension(path.name)
    return str(path.parent / template.format(stem=stem, copy=copy_index, ext=extension))


def is_inside(path: Path | str, folder: Path | str) -> bool:
    """Whether ``path`` is ``folder`` or lies below it, after resolving links (URLs: by their text)."""
    if storage.is_url(path) or storage.is_url(folder):
        if not (storage.is_url(path) and storage.is_url(folder)):
            return False
        path, folder = path.rstrip("/") + "/", folder.rstrip("/") + "/"
        return path.startswith(folder)
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents

"""Safe, atomic placement of images from archives and folders into one flat dataset folder.

Used by :mod:`search_lab.data.fetch` (pooch's ``Untar``/``Unzip`` processors extract member
paths as they are, so they are not used). Tar archives go through :mod:`tarfile`'s own
``filter="data"`` (:func:`tarfile.data_filter`, in the standard library since Python 3.11.4;
the project runs 3.11.7): it refuses members that would land outside the folder (``..``),
links to absolute paths or outside it, and device/fifo members, and drops owners and unsafe
permission bits. What this module adds, because the library does not do it:

- flat layout: only images are extracted, under their base name, and two images of one name
  are refused (the library would extract every member at its path and overwrite duplicates);
- an absolute member path (``/x.jpg``) is refused: the data filter strips the ``/`` and
  extracts it;
- every link is refused, also one inside the folder: a flat copy cannot keep it;
- a truncated ``.tar.gz`` fails: tarfile stops quietly at a missing end-of-archive header;
- zip: :mod:`zipfile` checks CRCs but, on extraction, silently rewrites ``..`` and absolute
  names instead of refusing them, and has no symlink notion; members are read as streams and
  their names checked here.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

from search_lab.core import DatasetError, temporary_dir
from search_lab.data.layouts.holidays import HOLIDAYS_SUFFIXES

logger = logging.getLogger(__name__)

IMAGES = "/".join(sorted(HOLIDAYS_SUFFIXES))
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
ZIP_SUFFIXES = (".zip",)
STAGING = ".partial-"
_CORRUPT = (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error)


def extract_images(archive: Path, root: Path) -> int:
    """Place the images of a .tar/.tar.gz/.tgz/.zip archive flat into ``root``, atomically.

    Images (:data:`HOLIDAYS_SUFFIXES`, any case: what the Holidays layout reads) are taken
    from any folder of the archive; other files, hidden files and macOS ``__MACOSX`` entries
    are ignored. Members with absolute paths, ``..`` leading outside, links or device types
    make the whole archive rejected. See :func:`place_images`.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise DatasetError(f"archive {archive} does not exist")
    return place_images([archive], Path(root))


def import_local(source: Path, root: Path) -> int:
    """Place the images of a local folder (searched recursively) or archive flat into ``root``."""
    source, root = Path(source), Path(root)
    if not source.exists():
        raise DatasetError(
            f"--from path {source} does not exist; give a folder of Holidays images or an "
            "archive (.tar, .tar.gz, .tgz, .zip)"
        )
    count = place_images([source], root)
    logger.info("imported %d images from %s into %s", count, source, root)
    return count


def place_images(sources: Sequence[Path], root: Path) -> int:
    """Place the images of archives or folders flat into ``root`` in one atomic step.

    Extraction goes to a temporary folder next to ``root`` that is then renamed (or merged)
    into it, so an interrupted run never leaves a half-filled root.

    Parameters
    ----------
    sources : sequence of Path
        Archives (.tar/.tar.gz/.tgz/.zip) or folders (hidden entries skipped).
    root : Path
        Folder receiving the images; created when missing, merged into when it exists.

    Returns
    -------
    int
        Number of images placed.

    Raises
    ------
    DatasetError
        An archive is corrupt, unsafe, or a source holds no image or two images of one name.
    """
    with temporary_dir(root, STAGING) as staging:
        count = sum(
            _copy_folder(s, staging) if s.is_dir() else _extract_to(s, staging) for s in sources
        )
        _place(staging, root)
    return count


def count_images(root: Path) -> int:
    """Number of image files directly in ``root`` (0 when it does not exist)."""
    if not root.is_dir():
        return 0
    return sum(1 for p in root.iterdir() if p.is_file() and _image_name(p.name) is not None)


def remove_stale_staging(root: Path) -> None:
    """Delete temporary folders left next to ``root`` by a killed run (call under a lock)."""
    for stale in root.parent.glob(f".{root.name}{STAGING}*"):
        logger.info("removing %s left by an interrupted run", stale)
        shutil.rmtree(stale, ignore_errors=True)


def _extract_to(archive: Path, staging: Path) -> int:
    """Write the archive's images flat into ``staging``; return how many."""
    name = archive.name.lower()
    try:
        if name.endswith(ZIP_SUFFIXES):
            count = _extract_zip(archive, staging)
        elif name.endswith(TAR_SUFFIXES):
            count = _extract_tar(archive, staging)
        else:
            raise DatasetError(
                f"{archive}: not a supported archive; expected .tar, .tar.gz, .tgz or .zip"
            )
    except _CORRUPT as exc:
        raise DatasetError(
            f"cannot read {archive}: {exc}; the archive is corrupt or incomplete, delete it "
            "and fetch again"
        ) from exc
    if count == 0:
        raise DatasetError(f"{archive} holds no {IMAGES} image")
    logger.info("%s: %d images", archive.name, count)
    return count


def _extract_tar(archive: Path, staging: Path) -> int:
    """Tar variant of :func:`_extract_to`: ``extractall`` with :class:`_FlatImages` as filter."""
    flat = _FlatImages(archive)
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(staging, filter=flat)  # iterates the members once, as it reads them
        # tarfile stops at the first empty header; reading the compressed stream to its end
        # makes a truncated or damaged .tar.gz fail (EOFError, CRC) instead of passing short.
        while tar.fileobj is not None and tar.fileobj.read(1 << 20):
            pass
    return len(flat.names)


class _FlatImages:
    """A :mod:`tarfile` extraction filter: ``filter="data"``, then images only, laid out flat.

    Returns the member renamed to its base name for an image, None (skip) for anything else,
    and raises :class:`DatasetError` for an unsafe member or a second image of one name.
    """

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self.names: set[str] = set()

    def __call__(self, member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        if member.name.startswith("/"):  # the data filter would strip the "/" and go on
            raise DatasetError(f"{self.archive}: refusing unsafe member path {member.name!r}")
        try:
            member = tarfile.data_filter(member, dest)
        except tarfile.FilterError as exc:
            raise DatasetError(f"{self.archive}: refusing unsafe member: {exc}") from exc
        if member.islnk() or member.issym():
            raise DatasetError(f"{self.archive}: refusing link member {member.name!r}")
        image = _image_name(member.name) if member.isfile() else None
        if image is None:
            return None
        if image in self.names:
            raise _duplicate(self.archive, image)
        self.names.add(image)
        return member.replace(name=image, deep=False)


def _extract_zip(archive: Path, staging: Path) -> int:
    """Zip variant of :func:`_extract_to`: members read as streams (zipfile checks their CRC),
    unsafe names and symlinks refused here (zipfile would rewrite the one, has no notion of the
    other)."""
    count = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            _check_member(info.filename, archive)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise DatasetError(f"{archive}: refusing symlink member {info.filename!r}")
            image = None if info.is_dir() else _image_name(info.filename)
            if image is not None:
                with zf.open(info) as src:
                    _write_new(src, staging / image, archive)
                count += 1
    return count


def _copy_folder(source: Path, staging: Path) -> int:
    """Copy the images found anywhere under ``source`` flat into ``staging``."""
    count = 0
    for folder, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not _skipped(d))
        for name in sorted(files):
            image = _image_name(name)
            if image is not None:
                with (Path(folder) / name).open("rb") as src:
                    _write_new(src, staging / image, source)
                count += 1
    if count == 0:
        raise DatasetError(f"{source} holds no {IMAGES} image")
    return count


def _check_member(name: str, archive: Path) -> None:
    """Reject member names that would point outside the extraction folder."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or PureWindowsPath(name).drive:
        raise DatasetError(f"{archive}: refusing unsafe member path {name!r}")


def _image_name(member: str) -> str | None:
    """Base name of an image member, or None for non-images, hidden and ``__MACOSX`` entries."""
    parts = PurePosixPath(member.replace("\\", "/")).parts
    if not parts or any(_skipped(part) for part in parts):
        return None
    return parts[-1] if PurePosixPath(parts[-1]).suffix.lower() in HOLIDAYS_SUFFIXES else None


def _skipped(part: str) -> bool:
    """Hidden entries and macOS resource forks (``__MACOSX``, ``._name``) are not images."""
    return part.startswith(".") or part == "__MACOSX"


def _write_new(src: BinaryIO | None, dst: Path, origin: Path) -> None:
    """Copy a stream to a new file; two images of one name cannot be laid out flat."""
    if src is None:
        raise DatasetError(f"{origin}: cannot read member {dst.name}")
    try:
        with dst.open("xb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    except FileExistsError as exc:
        raise _duplicate(origin, dst.name) from exc


def _duplicate(origin: Path, name: str) -> DatasetError:
    """The error for two images of one name: a flat folder cannot hold both."""
    return DatasetError(
        f"{origin}: two images are named {name}; the Holidays layout is one flat folder"
    )


def _place(staging: Path, root: Path) -> int:
    """Move staged files into ``root``: one rename when it is new, else file by file.

    A file-by-file merge that is interrupted removes the files it had added, so the root is
    left as it was (files it replaced keep the new, identically named, copy).
    """
    files = sorted(staging.iterdir())
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
    if not root.exists():
        _move(staging, root)
        return len(files)
    if not root.is_dir():
        raise DatasetError(f"{root} exists and is not a folder; move it away or pick another")
    added: list[Path] = []
    try:
        for src in files:
            dst = root / src.name
            existed = dst.exists()
            _move(src, dst)
            if not existed:
                added.append(dst)
    except BaseException:
        for dst in added:
            dst.unlink(missing_ok=True)
        raise
    return len(files)


def _move(src: Path, dst: Path) -> None:
    """Atomic rename on one file system (a separate function so tests can interrupt it)."""
    os.replace(src, dst)

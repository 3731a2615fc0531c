"""Get the INRIA Holidays images: resumable, verified downloads and safe, atomic extraction.

The Holidays layout is one flat folder of ``GGGGNN.jpg`` images. INRIA ships it as two
archives (``jpg1.tar.gz``, ``jpg2.tar.gz``) whose images sit under a top folder ``jpg/``;
:func:`fetch` downloads both into a cache folder and places their images flat into the root.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO
from urllib.error import HTTPError
from urllib.parse import urlsplit

from filelock import FileLock
from tqdm import tqdm

from search_lab.errors import DatasetError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
ZIP_SUFFIXES = (".zip",)
MARKER = ".fetch-complete.json"
"""Written into the root, after its images, once :func:`fetch` has completed it."""

_STAGING = ".partial-"
_HINT = "or use --from PATH to import a local copy of the Holidays images"
_CORRUPT = (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class Archive:
    """One downloadable archive; ``size`` and ``sha256`` are checked when recorded (not None)."""

    url: str
    size: int | None = None
    sha256: str | None = None

    @property
    def filename(self) -> str:
        """File name the archive is cached under (the last part of the URL path)."""
        name = PurePosixPath(urlsplit(self.url).path).name
        if not name:
            raise DatasetError(f"archive URL {self.url!r} does not end in a file name")
        return name


_HOLIDAYS = "https://lear.inrialpes.fr/pub/datasets/holidays/"
# Sizes and sha256 digests are still to be recorded: `download` logs the digest it computes;
# copy it (and the size) here after a first download from the official server.
ARCHIVES: tuple[Archive, ...] = (
    Archive(url=_HOLIDAYS + "jpg1.tar.gz", size=None, sha256=None),
    Archive(url=_HOLIDAYS + "jpg2.tar.gz", size=None, sha256=None),
)


# --------------------------------------------------------------------------- download


def download(
    url: str,
    dest: Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    timeout: float = 30.0,
    chunk: int = 1 << 20,
) -> Path:
    """Download ``url`` to ``dest``, resuming a partial download and verifying the result.

    Bytes go to ``dest`` + ``.part`` first, which is renamed only once complete and verified,
    so ``dest`` never holds a partial file. An existing ``.part`` is resumed with an HTTP
    ``Range`` request (restarted from zero when the server ignores it).

    Parameters
    ----------
    url : str
        Where to download from (http, https or file).
    dest : Path
        Final path of the file; its folder is created.
    size : int, optional
        Expected size in bytes; when None, the server's Content-Length is checked instead.
    sha256 : str, optional
        Expected hex digest. The computed digest is always logged so it can be recorded.
    timeout : float
        Seconds to wait for the connection and for each read, so a dead server never hangs us.
    chunk : int
        Bytes read per step.

    Returns
    -------
    Path
        ``dest``, complete and verified. When it already existed and verifies, nothing is
        downloaded.

    Raises
    ------
    DatasetError
        The server cannot be reached or answers an error, the transfer stops early (the
        ``.part`` is kept, re-run to resume), or size / sha256 do not match (the ``.part`` is
        deleted so a retry starts clean).
    """
    dest = Path(dest)
    if dest.exists() and _still_valid(dest, size=size, sha256=sha256):
        logger.info("%s: already downloaded", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    total = _stream(url, part, size=size, timeout=timeout, chunk=chunk)
    try:
        _check_size(part, size if size is not None else total, name=dest.name)
        digest = _sha256(part)
        _check_sha256(digest, sha256, name=dest.name)
    except DatasetError as exc:
        part.unlink(missing_ok=True)
        raise DatasetError(f"{exc}; deleted the bad download, re-run to fetch it again") from exc
    logger.info("%s: sha256 %s (%d bytes)", dest.name, digest, part.stat().st_size)
    os.replace(part, dest)
    return dest


def _still_valid(dest: Path, *, size: int | None, sha256: str | None) -> bool:
    """Whether an existing download matches what is recorded; a bad one is deleted."""
    try:
        _check_size(dest, size, name=dest.name)
        if sha256 is not None:
            _check_sha256(_sha256(dest), sha256, name=dest.name)
    except DatasetError as exc:
        logger.warning("%s; downloading it again", exc)
        dest.unlink()
        return False
    return True


def _stream(url: str, part: Path, *, size: int | None, timeout: float, chunk: int) -> int | None:
    """Bring ``part`` up to the whole remote file; return the remote size when known."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset >= size:
        if offset == size:
            return size  # complete, but the rename was interrupted last time
        part.unlink()
        offset = 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        ) as resp:
            if offset and resp.status != 206:
                logger.info("%s: server cannot resume, restarting from zero", url)
                offset = 0
            total = _remote_total(resp, offset, url=url, part=part)
            _check_offer(total, size, url=url, part=part)
            _write_stream(resp, part, offset=offset, total=total, chunk=chunk, url=url)
            return total
    except HTTPError as exc:
        if exc.code == 416 and offset:
            return _after_416(exc, url, part, size=size, timeout=timeout, chunk=chunk)
        raise _unreachable(url, f"HTTP {exc.code} {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _unreachable(url, getattr(exc, "reason", exc)) from exc


def _remote_total(
    resp: http.client.HTTPResponse, offset: int, *, url: str, part: Path
) -> int | None:
    """Full size of the remote file from Content-Range (206) or Content-Length (200)."""
    if resp.status == 206:
        header = resp.headers.get("Content-Range", "")
        match = _CONTENT_RANGE.fullmatch(header)
        if match is None or int(match[1]) != offset:
            part.unlink(missing_ok=True)
            raise DatasetError(
                f"{url}: server answered a resume from byte {offset} with Content-Range "
                f"{header!r}; deleted {part.name}, re-run to download from the start"
            )
        return None if match[3] == "*" else int(match[3])
    length = resp.headers.get("Content-Length", "")
    return int(length) if length.isdigit() else None


def _check_offer(total: int | None, size: int | None, *, url: str, part: Path) -> None:
    """Fail before transferring anything when the server's file is not the recorded size."""
    if total is not None and size is not None and total != size:
        part.unlink(missing_ok=True)
        raise DatasetError(
            f"{url}: server offers {total} bytes, expected {size}; the file may have changed "
            f"upstream (update the recorded size/sha256) {_HINT}"
        )


def _write_stream(
    resp: BinaryIO, part: Path, *, offset: int, total: int | None, chunk: int, url: str
) -> None:
    """Append (or write from zero) the response body to ``part`` with a progress bar."""
    with (
        part.open("ab" if offset else "wb") as out,
        tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name.removesuffix(".part"),
            disable=None,
        ) as bar,
    ):
        while block := resp.read(chunk):
            out.write(block)
            bar.update(len(block))
    received = part.stat().st_size
    if total is not None and received < total:
        raise DatasetError(
            f"download of {url} stopped at {received} of {total} bytes; re-run to resume, {_HINT}"
        )


def _after_416(
    exc: HTTPError, url: str, part: Path, *, size: int | None, timeout: float, chunk: int
) -> int | None:
    """Range not satisfiable: the part is already complete, or is stale and is restarted."""
    offset = part.stat().st_size
    match = re.fullmatch(r"bytes \*/(\d+)", exc.headers.get("Content-Range", ""))
    if match and int(match[1]) == offset:
        return offset
    logger.info("%s: partial download does not fit the server's file, restarting", part)
    part.unlink()
    return _stream(url, part, size=size, timeout=timeout, chunk=chunk)


def _unreachable(url: str, reason: object) -> DatasetError:
    """The one error for every network failure, saying what to do next."""
    return DatasetError(
        f"cannot download {url}: {reason}. Check the network and re-run (a partial download "
        f"resumes), {_HINT}"
    )


def _check_size(path: Path, size: int | None, *, name: str) -> None:
    """Raise when ``path`` is not ``size`` bytes long (None checks nothing)."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise DatasetError(f"{name}: size is {actual} bytes, expected {size}")


def _check_sha256(digest: str, sha256: str | None, *, name: str) -> None:
    """Raise when ``digest`` differs from the recorded ``sha256`` (None checks nothing)."""
    if sha256 is not None and digest != sha256.lower():
        raise DatasetError(f"{name}: sha256 is {digest}, expected {sha256.lower()}")


def _sha256(path: Path) -> str:
    """Hex sha256 digest of a file, read in blocks."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --------------------------------------------------------------------------- extraction


def extract_images(archive: Path, root: Path) -> int:
    """Place the images of a .tar/.tar.gz/.tgz/.zip archive flat into ``root``, atomically.

    Images (.jpg .jpeg .png, any case) are taken from any folder of the archive; other files,
    hidden files and macOS ``__MACOSX`` entries are ignored. Members with absolute paths,
    ``..``, links or device types make the whole archive rejected. Extraction goes to a
    temporary folder next to ``root`` that is then renamed (or merged) into it, so an
    interrupted run never leaves a half-filled root.

    Parameters
    ----------
    archive : Path
        The archive to read.
    root : Path
        Folder receiving the images; created when missing, merged into when it exists.

    Returns
    -------
    int
        Number of images placed.

    Raises
    ------
    DatasetError
        The archive is missing, corrupt, unsafe, holds no image or two images of one name.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise DatasetError(f"archive {archive} does not exist")
    with _staging(Path(root)) as staging:
        count = _extract_to(archive, staging)
        _place(staging, Path(root))
    return count


def import_local(source: Path, root: Path) -> int:
    """Place the images of a local folder or archive flat into ``root`` (the ``--from`` path).

    Parameters
    ----------
    source : Path
        A folder (searched recursively; hidden entries skipped) or a .tar/.tar.gz/.tgz/.zip.
    root : Path
        Folder receiving the images, as in :func:`extract_images`.

    Returns
    -------
    int
        Number of images placed.

    Raises
    ------
    DatasetError
        ``source`` does not exist, holds no image, or is a bad archive.
    """
    source, root = Path(source), Path(root)
    if not source.exists():
        raise DatasetError(
            f"--from path {source} does not exist; give a folder of Holidays images or an "
            "archive (.tar, .tar.gz, .tgz, .zip)"
        )
    with _staging(root) as staging:
        count = _copy_folder(source, staging) if source.is_dir() else _extract_to(source, staging)
        _place(staging, root)
    logger.info("imported %d images from %s into %s", count, source, root)
    return count


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
        raise DatasetError(f"{archive} holds no .jpg/.jpeg/.png image")
    logger.info("%s: %d images", archive.name, count)
    return count


def _extract_tar(archive: Path, staging: Path) -> int:
    """Tar variant of :func:`_extract_to`: reads members as streams, never ``extract``s them.

    Nothing is written from member paths (only from checked base names), so ``filter="data"``
    is not needed; its checks are done by :func:`_check_member` instead.
    """
    count = 0
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            _check_member(member.name, archive)
            if not (member.isfile() or member.isdir()):  # links, devices, fifos
                raise DatasetError(f"{archive}: refusing link or special member {member.name!r}")
            image = _image_name(member.name) if member.isfile() else None
            if image is not None:
                _write_new(tar.extractfile(member), staging / image, archive)
                count += 1
        # tarfile stops at the first empty header; reading the compressed stream to its end
        # makes a truncated or damaged .tar.gz fail (EOFError, CRC) instead of passing short.
        while tar.fileobj is not None and tar.fileobj.read(1 << 20):
            pass
    return count


def _extract_zip(archive: Path, staging: Path) -> int:
    """Zip variant of :func:`_extract_to`, refusing unsafe names and symlinks."""
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
        raise DatasetError(f"{source} holds no .jpg/.jpeg/.png image")
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
    return parts[-1] if PurePosixPath(parts[-1]).suffix.lower() in IMAGE_SUFFIXES else None


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
        raise DatasetError(
            f"{origin}: two images are named {dst.name}; the Holidays layout is one flat folder"
        ) from exc


@contextmanager
def _staging(root: Path) -> Iterator[Path]:
    """A temporary folder next to ``root`` (same file system), removed on exit."""
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}{_STAGING}", dir=root.parent))
    staging.chmod(0o755)  # it becomes the dataset folder: readable like any other (mkdtemp: 0700)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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


# --------------------------------------------------------------------------- fetch


def fetch(
    root: Path,
    *,
    archives: Sequence[Archive] = ARCHIVES,
    source: Path | None = None,
    cache_dir: Path | None = None,
) -> int:
    """Make ``root`` hold the Holidays images, from a local copy or by downloading them.

    Idempotent: once complete (a marker written after the images), re-running downloads and
    extracts nothing; verified archives stay in ``cache_dir`` so a removed root is rebuilt
    without the network. Concurrent runs on one root wait for each other (a file lock).

    Parameters
    ----------
    root : Path
        Folder receiving the images, flat.
    archives : sequence of Archive
        What to download when ``source`` is None; the official Holidays archives by default.
    source : Path, optional
        A local folder or archive to import instead of downloading (``--from``).
    cache_dir : Path, optional
        Where downloads are kept; ``root.parent / ".downloads"`` by default.

    Returns
    -------
    int
        Number of images in ``root``.

    Raises
    ------
    DatasetError
        A download or extraction failed, or ``source`` is missing or unusable.
    """
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root.parent / f".{root.name}.lock")):
        _remove_stale_staging(root)
        if source is not None:
            import_local(Path(source), root)
            how = f"imported from {source}"
        elif _is_complete(root):
            how = "already complete, nothing downloaded"
        else:
            cache = Path(cache_dir) if cache_dir is not None else root.parent / ".downloads"
            _download_and_extract(archives, root, cache)
            how = f"from {len(archives)} archives cached in {cache}"
        count = _count_images(root)
        _write_marker(root, count)
    logger.info("Holidays: %d images in %s (%s)", count, root, how)
    return count


def _download_and_extract(archives: Sequence[Archive], root: Path, cache: Path) -> int:
    """Download every archive, then place all their images into ``root`` in one step."""
    paths = [download(a.url, cache / a.filename, size=a.size, sha256=a.sha256) for a in archives]
    with _staging(root) as staging:
        count = sum(_extract_to(path, staging) for path in paths)
        _place(staging, root)
    return count


def _is_complete(root: Path) -> bool:
    """Whether a previous fetch completed ``root`` and its images are all still there."""
    try:
        expected = json.loads((root / MARKER).read_text())["images"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(expected, int) and _count_images(root) >= expected


def _write_marker(root: Path, count: int) -> None:
    """Record, atomically, that ``root`` is complete with ``count`` images."""
    tmp = root / (MARKER + ".tmp")
    tmp.write_text(json.dumps({"images": count}) + "\n")
    os.replace(tmp, root / MARKER)


def _count_images(root: Path) -> int:
    """Number of image files directly in ``root`` (0 when it does not exist)."""
    if not root.is_dir():
        return 0
    return sum(1 for p in root.iterdir() if p.is_file() and _image_name(p.name) is not None)


def _remove_stale_staging(root: Path) -> None:
    """Delete temporary folders left next to ``root`` by a killed run (called under the lock)."""
    for stale in root.parent.glob(f".{root.name}{_STAGING}*"):
        logger.info("removing %s left by an interrupted run", stale)
        shutil.rmtree(stale, ignore_errors=True)

"""Get the INRIA Holidays images: downloads through pooch (verified, retried, resumed).

The Holidays layout is one flat folder of ``GGGGNN.jpg`` images. INRIA ships it as two
archives (``jpg1.tar.gz``, ``jpg2.tar.gz``) whose images sit under a top folder ``jpg/``;
:func:`fetch` downloads both into a cache folder and places their images flat into the root
(safely and atomically, see :mod:`search_lab.data.archives`).

Every download (datasets and CNN weights) goes through :func:`download`: pooch checks the
sha256, retries failed transfers and moves the file into place only once it verifies; its
transfers are made by :class:`ResumingDownloader`, which keeps a ``.part`` file across
interruptions and resumes it with an HTTP ``Range`` request (pooch itself always restarts).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pooch
import requests
import urllib3
from filelock import FileLock
from tqdm import tqdm

from search_lab.core import (
    RECORD_MAX_BYTES,
    DatasetError,
    atomic_write_json,
    integrity,
    read_json,
)
from search_lab.data.archives import (
    count_images,
    extract_images,
    import_local,
    place_images,
    remove_stale_staging,
)

__all__ = [  # extract_images and import_local: the archive helpers, for callers of fetch
    "ARCHIVES",
    "Archive",
    "ResumingDownloader",
    "download",
    "extract_images",
    "fetch",
    "import_local",
]

logger = logging.getLogger(__name__)

MARKER = ".fetch-complete.json"
"""Written into the root, after its images, once :func:`fetch` has completed it."""

RETRIES = 2  # pooch's retry_if_failed: a failed or cut transfer is tried this many more times
_HINT = "or use --from PATH to import a local copy of the Holidays images"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_POOCH_MISMATCH = re.compile(r"expected (?:\w+:)?(\w+) but got (\w+)")


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


class _Stopped(requests.exceptions.ChunkedEncodingError):
    """A transfer ended before the whole file arrived (pooch retries it; the part is kept)."""


# --------------------------------------------------------------------------- download


def download(
    url: str,
    dest: Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    digest_prefix: str | None = None,
    timeout: float = 30.0,
    retries: int = RETRIES,
    chunk: int = 1 << 20,
) -> Path:
    """Download ``url`` to ``dest`` through pooch, resuming a partial download, verified.

    Bytes go to ``dest`` + ``.part`` first; pooch checks the complete file's sha256 and only
    then moves it to ``dest``, so ``dest`` never holds a partial or unverified file. An
    existing ``.part`` is resumed with an HTTP ``Range`` request (restarted from zero when the
    server ignores it); a cut transfer is resumed up to ``retries`` times before giving up.

    Parameters
    ----------
    url : str
        Where to download from (http, https or file); ``dest``'s folder is created.
    size, sha256 : int, str, optional
        Expected size (else the server's Content-Length is checked) and hex digest (checked
        by pooch; the digest of a new download is always logged so it can be recorded).
    digest_prefix : str, optional
        Leading hex digits the sha256 must start with (torch hub's ``name-<prefix>.pth``).
    timeout, retries, chunk
        Seconds to wait for the connection and each read (a dead server never hangs us);
        further attempts after a failed transfer or checksum mismatch; bytes per read.

    Returns
    -------
    Path
        ``dest``, complete and verified; nothing is downloaded when it already verifies.

    Raises
    ------
    DatasetError
        The server cannot be reached or answers an error, the transfer stops early (the
        ``.part`` is kept, re-run to resume), or size / sha256 do not match (the bad download
        is deleted so a retry starts clean).
    """
    dest = Path(dest)
    if dest.exists() and not _size_matches(dest, size):
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    fetcher = ResumingDownloader(
        part, size=size, digest_prefix=digest_prefix, timeout=timeout, chunk=chunk
    )
    _pooch_fetch(url, dest, sha256, fetcher, retries)
    if fetcher.transfers:
        digest = sha256.lower() if sha256 else integrity.sha256(dest)
        logger.info("%s: sha256 %s (%d bytes)", dest.name, digest, dest.stat().st_size)
    else:
        logger.info("%s: already downloaded", dest)
    return dest


def _pooch_fetch(
    url: str, dest: Path, sha256: str | None, fetcher: ResumingDownloader, retries: int
) -> None:
    """Let pooch fetch ``dest`` (verify, retry, move into place); its errors as DatasetError."""
    known = None if sha256 is None else f"sha256:{sha256.lower()}"
    registry, urls = {dest.name: known}, {dest.name: url}
    store = pooch.create(dest.parent, "", registry=registry, urls=urls, retry_if_failed=retries)
    try:
        store.fetch(dest.name, downloader=fetcher)
    except _Stopped as exc:
        raise DatasetError(f"{exc}; re-run to resume, {_HINT}") from exc
    except requests.RequestException as exc:
        raise _unreachable(url, exc) from exc
    except ValueError as exc:  # pooch: the sha256 differs (it deleted the download)
        match = _POOCH_MISMATCH.search(str(exc))
        found = f"sha256 is {match[2]}, expected {match[1]}" if match else str(exc)
        raise DatasetError(
            f"{dest.name}: {found}; deleted the bad download, re-run to fetch it again"
        ) from exc


def _size_matches(dest: Path, size: int | None) -> bool:
    """Whether an existing download is the recorded size (None: any size)."""
    actual = dest.stat().st_size
    if size is not None and actual != size:
        logger.warning(
            "%s: size is %d bytes, expected %d; downloading it again", dest, actual, size
        )
        return False
    return True


class ResumingDownloader:
    """A pooch downloader that keeps a ``.part`` file and resumes it with an HTTP ``Range``.

    pooch calls it with a temporary file name; it brings ``part`` up to the whole remote file,
    checks the size (and ``digest_prefix``), then renames ``part`` to that temporary file,
    which pooch verifies and moves into place. A cut transfer raises :class:`_Stopped` (a
    ``requests`` error, so pooch retries it) and keeps ``part`` for the next attempt.
    """

    def __init__(
        self,
        part: Path,
        *,
        size: int | None = None,
        digest_prefix: str | None = None,
        timeout: float = 30.0,
        chunk: int = 1 << 20,
    ) -> None:
        self.part, self.size, self.digest_prefix = Path(part), size, digest_prefix
        self.timeout, self.chunk = timeout, chunk
        self.transfers = 0

    def __call__(self, url: str, output_file: str, pooch_: Any = None) -> None:
        """Download ``url`` into ``output_file`` (pooch's downloader interface)."""
        self.transfers += 1
        if urlsplit(url).scheme == "file":
            shutil.copyfile(url2pathname(urlsplit(url).path), self.part)
        else:
            self._complete(url)
        self._check(url)
        os.replace(self.part, output_file)

    def _complete(self, url: str) -> None:
        """Bring ``part`` up to the whole remote file."""
        offset = self.part.stat().st_size if self.part.exists() else 0
        if self.size is not None and offset >= self.size:
            if offset == self.size:
                return  # complete, but the hand-over was interrupted last time
            self.part.unlink()
            offset = 0
        headers = {"Accept-Encoding": "identity"} | (
            {"Range": f"bytes={offset}-"} if offset else {}
        )
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as resp:
            if resp.status_code == 416 and offset:
                return self._after_416(resp, url)
            if resp.status_code >= 500:
                resp.raise_for_status()  # a server error may pass: pooch retries it
            if resp.status_code >= 400:
                raise _unreachable(url, f"HTTP {resp.status_code} {resp.reason}")
            if offset and resp.status_code != 206:
                logger.info("%s: server cannot resume, restarting from zero", url)
                offset = 0
            total = self._remote_total(resp, offset, url)
            self._write(resp, offset, total, url)
        return None

    def _remote_total(self, resp: requests.Response, offset: int, url: str) -> int | None:
        """Full size of the remote file (Content-Range or Content-Length); checks ``size``."""
        total = None
        if resp.status_code == 206:
            header = resp.headers.get("Content-Range", "")
            match = _CONTENT_RANGE.fullmatch(header)
            if match is None or int(match[1]) != offset:
                self.part.unlink(missing_ok=True)
                raise DatasetError(
                    f"{url}: server answered a resume from byte {offset} with Content-Range "
                    f"{header!r}; deleted {self.part.name}, re-run to download from the start"
                )
            total = None if match[3] == "*" else int(match[3])
        elif (length := resp.headers.get("Content-Length", "")).isdigit():
            total = int(length)
        if total is not None and self.size is not None and total != self.size:
            self.part.unlink(missing_ok=True)
            raise DatasetError(
                f"{url}: server offers {total} bytes, expected {self.size}; the file may have "
                f"changed upstream (update the recorded size/sha256) {_HINT}"
            )
        return total

    def _write(self, resp: requests.Response, offset: int, total: int | None, url: str) -> None:
        """Append (or write from zero) the raw response body to ``part`` with a progress bar."""
        name = self.part.name.removesuffix(".part")
        bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=name, disable=None)
        try:
            with self.part.open("ab" if offset else "wb") as out, bar:
                for block in resp.raw.stream(self.chunk, decode_content=False):
                    out.write(block)
                    bar.update(len(block))
        except (
            urllib3.exceptions.HTTPError,
            requests.RequestException,
            ConnectionError,
            TimeoutError,
        ) as exc:
            logger.info("%s: transfer broke off (%s)", url, exc)
        received = self.part.stat().st_size
        if total is not None and received < total:
            raise _Stopped(f"download of {url} stopped at {received} of {total} bytes")

    def _after_416(self, resp: requests.Response, url: str) -> None:
        """Range not satisfiable: the part is already complete, or is stale and is restarted."""
        offset = self.part.stat().st_size
        match = re.fullmatch(r"bytes \*/(\d+)", resp.headers.get("Content-Range", ""))
        if match and int(match[1]) == offset:
            return
        logger.info("%s: partial download does not fit the server's file, restarting", self.part)
        self.part.unlink()
        self._complete(url)

    def _check(self, url: str) -> None:
        """Size and digest-prefix checks of the complete ``part``; a bad one is deleted."""
        actual = self.part.stat().st_size
        problem = None
        if self.size is not None and actual != self.size:
            problem = f"size is {actual} bytes, expected {self.size}"
        elif self.digest_prefix and not integrity.sha256(self.part).startswith(self.digest_prefix):
            problem = f"does not match the hash in its name ({self.digest_prefix})"
        if problem:
            self.part.unlink()
            name = self.part.name.removesuffix(".part")
            raise DatasetError(f"{name} from {url}: {problem}; deleted it, re-run to fetch again")


def _unreachable(url: str, reason: object) -> DatasetError:
    """The one error for every network failure, saying what to do next."""
    return DatasetError(
        f"cannot download {url}: {reason}. Check the network and re-run (a partial download "
        f"resumes), {_HINT}"
    )


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
        remove_stale_staging(root)
        if source is not None:
            import_local(Path(source), root)
            how = f"imported from {source}"
        elif _is_complete(root):
            how = "already complete, nothing downloaded"
        else:
            cache = Path(cache_dir) if cache_dir is not None else root.parent / ".downloads"
            paths = [
                download(a.url, cache / a.filename, size=a.size, sha256=a.sha256) for a in archives
            ]
            place_images(paths, root)
            how = f"from {len(archives)} archives cached in {cache}"
        count = count_images(root)
        atomic_write_json(root / MARKER, {"images": count})
    logger.info("Holidays: %d images in %s (%s)", count, root, how)
    return count


def _is_complete(root: Path) -> bool:
    """Whether a previous fetch completed ``root`` and its images are all still there."""
    try:
        expected = read_json(root / MARKER, max_bytes=RECORD_MAX_BYTES)["images"]
    except (OSError, ValueError, KeyError, TypeError):  # UnreadableFileError is a ValueError
        return False
    return isinstance(expected, int) and count_images(root) >= expected

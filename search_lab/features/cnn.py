"""Deep CNN descriptors: a pretrained backbone's feature map, pooled (avg / max / GeM), multi-scale.

torch and torchvision are imported inside functions only, so importing this module (which the
feature registry does for every run) stays cheap for the hand-crafted features.

Backbones, layers and weights: :mod:`search_lab.features.backbones`.

Fully connected layers see a fixed 224x224 input: the image is squashed to it, as AlexNet was
trained on 224x224 crops and its fc6 weights expect that field of view. ``size``, ``pooling`` and
``gem_p`` are ignored for them and ``scales`` must be ``[1.0]``. Conv layers keep the aspect
ratio: the longer side becomes ``round(size * scale)``, no squashing, no padding (every backbone
here is fully convolutional up to its pooling).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import ClassVar

import numpy as np

from search_lab.core import (
    ConfigError,
    is_number,
    require,
    require_bool,
    require_choice,
    require_positive_int,
)
from search_lab.features.backbones import (  # noqa: F401  (TF_MEAN, TF_STD: part of this API)
    BACKBONES,
    FC_LAYERS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    TF_MEAN,
    TF_STD,
    Forward,
    load_model,
)
from search_lab.features.base import Extractor, register
from search_lab.features.engines import (
    ENGINES,
    Runner,
    choose,
    engine_version,
    feature_runner,
    recorded_runner,
)
from search_lab.features.pooling import FC_INPUT, POOLINGS, pool

log = logging.getLogger(__name__)

MIN_SIDE = 32  # smallest longer side a scale may produce


# --------------------------------------------------------------------------------------------
# Pure tensor functions
# --------------------------------------------------------------------------------------------


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
) -> np.ndarray:
    """Network input of one image: resized, scaled to [0, 1], normalised per channel (numpy
    only: an engine's process never needs torch).

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
    np.ndarray, shape (3, h, w), float32
    """
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
    return np.ascontiguousarray(array.transpose(2, 0, 1))


# --------------------------------------------------------------------------------------------
# Weights
# The extractor
# --------------------------------------------------------------------------------------------


PRECISIONS = ("fp32", "int8", "bf16")
"""``feature.precision``: fp32 (every engine gives torch's vectors), int8 (onnxruntime's static
quantisation, calibrated on ``calibrate_on``: :mod:`search_lab.features.quantize`) or bf16
(openvino on a CPU with native bf16, e.g. AMX: about twice fp32's speed there)."""
DEVICES = ("cpu", "cuda", "auto")
"""``feature.device``: ``auto`` is the GPU when torch sees one, else the CPU."""


def _torch_device(device: str) -> str:
    """The torch device ``device`` names here; ConfigError for ``cuda`` without a GPU."""
    import torch

    has_gpu = torch.cuda.is_available()
    if device == "cuda" and not has_gpu:
        raise ConfigError(
            "cnn: feature.device=cuda, but torch sees no CUDA GPU on this machine; use "
            "feature.device=cpu or auto"
        )
    return "cuda" if device == "cuda" or (device == "auto" and has_gpu) else "cpu"


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
        ``torch.set_num_threads`` (or the engine's threads) during extraction in this process.
        None keeps the default, and lets ``extract_files`` hand 64 images or more to a pool of
        one-thread worker processes (``retrieval/extract.py``).
    download : bool
        Allow downloading torchvision weights missing from the torch hub cache.
    device : {"cpu", "cuda", "auto"}
        Where torch runs the network (the engines below are CPU-only).
    engine : {"torch", "onnxruntime", "openvino", "auto"}
        What runs the network on the CPU (:mod:`search_lab.features.engines`); ``auto``: the
        fastest installed engine that reproduces torch's vectors, else torch. Not part of the
        feature cache's key: every fp32 engine gives the same vectors.
    precision : {"fp32", "int8", "bf16"}
        int8 runs on onnxruntime only, bf16 on openvino only, each with vectors (and cached
        features) of its own.
    calibrate_on : str or None
        int8 only: folder of images (the collection's) static quantisation calibrates on.
    export_dir : str or None
        Folder of the exported graphs; None is ``$SEARCH_LAB_CACHE/engines``.

    Attributes
    ----------
    dim : int
        Descriptor dimension.
    """

    label = "CNN embedding"
    description = (
        "deep descriptors: EfficientNet-Lite0 with packaged ImageNet weights (offline), "
        "or torchvision AlexNet fc6 / ResNet-50; aspect ratio kept; avg / max / GeM "
        "pooling; multi-scale"
    )
    shown: ClassVar[dict[str, str]] = {
        "backbone": "{}",
        "weights": "weights={}",
        "pooling": "{} pooling",
        "gem_p": "p={}",
        "size": "size={}",
        "scales": "scales={}",
        "threads": "{} threads",
    }

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
        device: str = "cpu",
        engine: str = "auto",
        precision: str = "fp32",
        calibrate_on: str | None = None,
        export_dir: str | None = None,
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
        self.device = require_choice("cnn: device", device, DEVICES)
        self.engine = require_choice("cnn: engine", engine, ENGINES)
        self.precision = require_choice("cnn: precision", precision, PRECISIONS)
        self.export_dir, self.calibrate_on = export_dir, calibrate_on
        if precision == "int8" and (engine not in ("onnxruntime", "auto") or not calibrate_on):
            raise ConfigError(
                "cnn: feature.precision=int8 runs on feature.engine=onnxruntime (or auto) and "
                "calibrates on feature.calibrate_on=<folder of the collection's images>"
            )
        if precision == "bf16" and engine not in ("openvino", "auto"):
            raise ConfigError(
                "cnn: feature.precision=bf16 runs on feature.engine=openvino (or auto)"
            )
        self.square = layer in FC_LAYERS
        self.mean, self.std = spec.mean, spec.std
        self.dim = spec.layers[layer]
        self.max_side = max(sides)
        self._forward: Forward | None = None  # loaded by prepare(): torch stays out until then
        self._device = "cpu"  # the torch device prepare() resolves ``device`` to
        self._runner: Runner | None = None  # the engine's, when it is not torch
        self.engine_used: str | None = None  # the engine prepare() chose
        self._prepared = False

    def prepare(self) -> None:
        """Load the network and its weights (ConfigError naming ``feature.weights`` if missing).

        Construction does not import torch, so a process that only describes the feature
        (a Ray driver, the app listing indexes) never pays for it; nor does preparing an engine
        that already passed its fidelity check on this machine (:func:`recorded_runner`).
        """
        if self._prepared:
            return
        recorded = recorded_runner(self)
        if recorded is None:
            self._device = _torch_device(self.device)
            self._forward = load_model(
                self.backbone, weights=self.weights, layer=self.layer, download=self.download,
                device=self._device,
            )  # fmt: skip
            recorded = self._choose_engine()
        self.engine_used, self._runner = recorded
        self._prepared = True

    def _choose_engine(self) -> tuple[str, Runner | None]:
        """The engine ``feature.engine`` names (or ``auto`` finds) for this network."""
        if self.precision != "fp32":  # its one engine or nothing: never torch's fp32 silently
            return self._reduced_precision_engine()
        if self.engine not in ("torch", "auto") and self._device != "cpu":
            raise ConfigError(
                f"cnn: feature.engine={self.engine} runs on the CPU, but feature.device="
                f"{self.device} puts the network on the GPU; use feature.engine=torch or auto"
            )
        if self.engine == "auto" and (self._device != "cpu" or self.weights is None):
            return "torch", None  # a GPU, or a random network (tests): nothing worth exporting
        return choose(self.engine, lambda engine: feature_runner(self, engine))

    def _reduced_precision_engine(self) -> tuple[str, Runner]:
        """int8 on onnxruntime, bf16 on openvino, both on the CPU; ConfigError (one line)
        naming what to do when that engine is missing or the network is on a GPU."""
        engine = "onnxruntime" if self.precision == "int8" else "openvino"
        fix = f"install {engine} (pip install -r requirements.txt) or use feature.precision=fp32"
        if self._device != "cpu":
            raise ConfigError(
                f"cnn: feature.precision={self.precision} runs on the CPU ({engine}), but "
                f"feature.device={self.device} puts the network on the GPU; use "
                "feature.precision=fp32"
            )
        try:
            engine_version(engine)
        except ConfigError as err:
            raise ConfigError(
                f"cnn: feature.precision={self.precision} runs on {engine}, which is not "
                f"installed: {fix}"
            ) from err
        return engine, feature_runner(self, engine)

    def extract(self, image: np.ndarray) -> np.ndarray:
        """Descriptor of one (H, W, 3) uint8 RGB image: L2-normalised float32, shape (dim,)."""
        return self.extract_batch([image])[0]

    def extract_batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Descriptors of several images, shape (N, dim), float32, rows L2-normalised.

        Images whose network inputs have the same shape share forward passes of up to
        ``batch_size``; the result equals extracting the images one by one.
        """
        out = np.zeros((len(images), self.dim), np.float32)
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
                    batch = np.stack([self._input(images[i], side) for i in chunk])
                    out[chunk] += _l2n(self._describe(batch))
        return _l2n(out)

    def _input(self, image: np.ndarray, side: int) -> np.ndarray:
        return preprocess(image, side=side, mean=self.mean, std=self.std, square=self.square)

    def _describe(self, batch: np.ndarray) -> np.ndarray:
        """(N, dim) unnormalised descriptors of one batch of same-shape inputs."""
        self.prepare()
        if self._runner is not None:
            return self._runner(batch)
        return self._torch_describe(batch)

    def _torch_describe(self, batch: np.ndarray) -> np.ndarray:
        """:meth:`_describe` with torch (the reference every engine is checked against)."""
        import torch

        assert self._forward is not None
        if self.threads is not None and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(device=self._device, memory_format=torch.channels_last)
            features = self._forward(x)
            if features.ndim == 4:
                features = pool(features, self.pooling, self.gem_p)
            return features.cpu().float().numpy()


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

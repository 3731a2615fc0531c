"""CPU inference engines for the CNN feature, chosen by ``feature.engine``
(``torch | onnxruntime | openvino | auto``).

Why: the network in torch eager mode is the slowest step of every deep recipe; the same graph
runs several times faster in a CPU inference engine (``python -m search_lab.bench``, engines
table). The graph is exported once (:mod:`search_lab.features.export`) and shared by every
process that needs it: the local pool, Ray workers, the app and ``search``.

Fidelity: an engine is used for a network only if its pooled outputs on a few probe images
agree with torch's to :data:`FIDELITY` (max over rows of ``max|a - b| / max|a|``); otherwise it
is refused with one line (named) or skipped (``auto``). fp32 engines then give torch's vectors
to float rounding, so the feature cache does not key on the engine (``extract.RUNTIME_PARAMS``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from search_lab.core import ConfigError
from search_lab.features import checked
from search_lab.features.export import OPSET, Exports, export_onnx

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

ENGINES = ("torch", "onnxruntime", "openvino", "auto")
AUTO_ORDER = ("onnxruntime", "openvino")
"""Engines ``auto`` tries, in order; torch is the last resort. The bench's engines table puts
both at 1.6x to 2.5x less CPU per image than torch; onnxruntime first: the cheaper of the two
for a single query there, and the one that also runs int8."""
PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
FIDELITY = 1e-4  # largest relative difference to torch an fp32 engine may show
BF16_MIN_COSINE = 0.99  # bf16 vectors further from torch's than this are broken (0.998 seen)

Runner = Callable[[np.ndarray], np.ndarray]
"""(N, 3, H, W) float32 network inputs -> (N, D) float32 pooled (unnormalised) descriptors."""


def engine_version(engine: str) -> str:
    """Installed version of ``engine``'s package; ConfigError (one line) if it is not installed."""
    try:
        return importlib.metadata.version(PACKAGES[engine])
    except importlib.metadata.PackageNotFoundError as err:
        raise ConfigError(
            f"cnn: feature.engine={engine} is not installed (pip install -r requirements.txt); "
            "use feature.engine=torch or auto"
        ) from err


def import_engine(engine: str) -> Any:
    """The engine's module; ConfigError naming it when missing or its native library fails."""
    engine_version(engine)
    try:
        return importlib.import_module(engine)
    except (ImportError, OSError) as err:  # a broken install, a missing shared library
        raise ConfigError(f"cnn: feature.engine={engine} cannot be loaded: {err}") from err


def relative_difference(reference: np.ndarray, other: np.ndarray) -> float:
    """Max over rows of ``max|reference - other| / max|reference|`` (0 for identical rows)."""
    scale = np.maximum(np.abs(reference).max(axis=1), np.finfo(np.float32).tiny)
    return float((np.abs(reference - other).max(axis=1) / scale).max())


# --------------------------------------------------------------------------------------------
# Runners
# --------------------------------------------------------------------------------------------


def onnxruntime_runner(path: Path, threads: int | None) -> Runner:
    """An ONNX Runtime CPU session on ``path``; waiting threads sleep instead of spinning."""
    ort = import_engine("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0  # 0: one per core
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT raises its own untyped errors
        raise ConfigError(f"cnn: onnxruntime cannot load {path}: {err}") from err

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {"images": np.ascontiguousarray(batch, np.float32)})[0]

    return run


def openvino_runner(path: Path, threads: int | None, precision: str = "fp32") -> Runner:
    """An OpenVINO CPU model compiled from ``path`` in f32 (its default on CPUs with bf16, bf16,
    is not faithful: about 6e-2 away from torch) or, for ``precision="bf16"``, in bf16 (see
    :func:`require_native_bf16`); latency-oriented; one infer request per call (thread-safe).

    Threads are not pinned: OpenVINO pins a one-thread model to the first core, so the network
    pool's two workers shared one core (half the throughput; ``tests/features/test_engines.py``).
    """
    ov = import_engine("openvino")
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_CPU_PINNING": False,
    }
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    try:
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    except Exception as err:  # OpenVINO raises its own untyped errors
        raise ConfigError(f"cnn: openvino cannot load {path}: {err}") from err

    def run(batch: np.ndarray) -> np.ndarray:
        request = compiled.create_infer_request()
        request.infer({0: np.ascontiguousarray(batch, np.float32)})
        return np.array(request.get_output_tensor(0).data, np.float32)

    return run


def native_bf16(core: Any) -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively on this CPU."""
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def bf16_available() -> bool:
    """Whether ``feature.precision=bf16`` can run here: openvino installed, native bf16."""
    try:
        return native_bf16(import_engine("openvino").Core())
    except ConfigError:
        return False


def require_native_bf16() -> None:
    """ConfigError (one line) on a CPU without native bf16, where OpenVINO would quietly run
    f32 under a bf16 hint: checked before anything is exported."""
    if not bf16_available():
        raise ConfigError(
            "cnn: feature.precision=bf16 needs a CPU with native bf16 (AVX512_BF16 or AMX); "
            "this one has none: use feature.precision=fp32"
        )


RUNNERS: dict[str, Callable[..., Runner]] = {
    "onnxruntime": onnxruntime_runner,
    "openvino": openvino_runner,
}


def load_runner(engine: str, path: Path, threads: int | None, bf16: bool = False) -> Runner:
    """``engine``'s runner of the export at ``path`` (``bf16``: openvino in bf16)."""
    return openvino_runner(path, threads, "bf16") if bf16 else RUNNERS[engine](path, threads)


def check_bound(precision: str) -> float:
    """What the fidelity check holds an engine to: fp32's largest relative difference, or
    int8's / bf16's smallest cosine to torch's vectors (recorded with each pass too)."""
    from search_lab.features.quantize import INT8_MIN_COSINE

    return {"int8": INT8_MIN_COSINE, "bf16": BF16_MIN_COSINE}.get(precision, FIDELITY)


# --------------------------------------------------------------------------------------------
# Choosing an engine
# --------------------------------------------------------------------------------------------


def engine_runner(
    engine: str,
    *,
    key: dict[str, Any],
    graph: Callable[[], torch.nn.Module],
    fixed_side: int | None,
    exports: Exports,
    threads: int | None,
    reference: Callable[[np.ndarray], np.ndarray],
    probes: Sequence[np.ndarray],
    calibration: Callable[[], Sequence[np.ndarray]] | None = None,
    bf16: bool = False,
    passed: Callable[[dict[str, Any], str], None] | None = None,
) -> Runner:
    """A runner of ``engine`` (not torch) that passed the fidelity check; ConfigError if not.

    ``key`` describes the network (without the engine); ``graph()`` builds the module to
    export; ``reference`` is torch's own runner, compared on the ``probes`` batches.
    ``calibration`` (int8 only) gives the inputs static quantisation measures ranges on;
    ``bf16`` (openvino only) runs the fp32 graph in bf16. ``passed(export key, what was
    measured)`` is called once the engine passes (:mod:`search_lab.features.checked`).
    """
    full_key = {**key, "opset": OPSET, "engine": engine, "engine_version": engine_version(engine)}
    full_key["torch"] = _torch_version()
    import_engine(engine)  # before exporting: a broken install is one line, not an export
    if bf16:
        require_native_bf16()

    def build() -> bytes:
        fp32 = export_onnx(graph(), fixed_side=fixed_side)
        if calibration is None:
            return fp32
        from search_lab.features.quantize import quantized

        return quantized(fp32, calibration())

    path = exports.get(full_key, build)
    runner = load_runner(engine, path, threads, bf16)
    if calibration is not None or bf16:
        from search_lab.features.quantize import min_cosine

        precision = "bf16" if bf16 else "int8"
        least = check_bound(precision)
        cos = min(min_cosine(reference(p), runner(p)) for p in probes)
        log.info("%s %s: cosine to torch's vectors >= %.4f on the probe images", precision,
                 engine, cos)  # fmt: skip
        if not cos >= least:
            raise ConfigError(
                f"cnn: {precision} {engine} gives vectors of {key.get('backbone')} at cosine "
                f"{cos:.3f} to torch's (at least {least:g}): use feature.precision=fp32"
            )
        if passed is not None:
            passed(full_key, f"cosine >= {cos:.6f}")
        return runner
    worst = max(relative_difference(reference(p), runner(p)) for p in probes)
    if not worst <= FIDELITY:
        raise ConfigError(
            f"cnn: feature.engine={engine} is refused for {key.get('backbone')}: its vectors "
            f"differ from torch's by {worst:.2g} (relative; at most {FIDELITY:g} allowed); "
            "use feature.engine=torch"
        )
    log.info("%s agrees with torch to %.2g (relative) on the probe images", engine, worst)
    if passed is not None:
        passed(full_key, f"relative difference {worst:.3g}")
    return runner


def choose(engine: str, candidates: Callable[[str], Runner]) -> tuple[str, Runner | None]:
    """(engine used, its runner; None for torch) for ``feature.engine=engine``.

    A named engine that cannot be used raises its one-line ConfigError; ``auto`` tries
    :data:`AUTO_ORDER` and falls back to torch, logging each engine it skips and why.
    """
    if engine == "torch":
        return "torch", None
    if engine != "auto":
        return engine, candidates(engine)
    for name in AUTO_ORDER:
        try:
            runner = candidates(name)
        except ConfigError as err:
            log.info("feature.engine=auto: skipping %s (%s)", name, err)
            continue
        log.info("feature.engine=auto: using %s", name)
        return name, runner
    log.info("feature.engine=auto: using torch (no faster engine is installed and faithful)")
    return "torch", None


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


# --------------------------------------------------------------------------------------------
# The CNN feature's network
# --------------------------------------------------------------------------------------------

PROBES = 3  # synthetic images every engine must reproduce torch's vectors on


def feature_runner(feature: Any, engine: str) -> Runner:
    """A faithful runner of ``engine`` for a prepared :class:`~search_lab.features.cnn.CNNFeature`
    (its torch network loaded); ConfigError if the engine cannot be used for it. A pass is
    recorded (:mod:`search_lab.features.checked`) for :func:`recorded_runner`."""
    from search_lab.features.export import graph_module, weights_digest
    from search_lab.features.pooling import FC_INPUT, pool

    forward = feature._forward
    key = {
        **graph_settings(feature),
        "weights": weights_digest(getattr(forward, "__self__", forward)),
    }
    pooling = None if feature.square else (lambda y: pool(y, feature.pooling, feature.gem_p))
    calibration = None
    if feature.precision == "int8":
        from search_lab.features import quantize

        files = quantize.calibration_files(feature.calibrate_on)
        key["calibration"] = quantize.calibration_digest(files)
        calibration = lambda: quantize.calibration_batches(feature, files)  # noqa: E731
    exports = Exports(feature.export_dir)
    try:
        network = network_description(feature, key.get("calibration"))
    except (OSError, ConfigError) as err:  # the pass is then not recorded: nothing else changes
        log.info("%s: the engine's check cannot be recorded (%s)", feature.name, err)
        network = None

    def passed(export_key: dict[str, Any], measured: str) -> None:
        if network is not None:
            bound = check_bound(feature.precision)
            record = checked.record_key(network, engine, feature.threads, bound)
            checked.Checks(exports.folder).add(record, export_key, measured)

    return engine_runner(
        engine, key=key, graph=lambda: graph_module(forward, pooling),
        fixed_side=FC_INPUT if feature.square else None, exports=exports,
        threads=feature.threads, reference=feature._torch_describe,
        probes=probe_batches(feature), calibration=calibration,
        bf16=feature.precision == "bf16", passed=passed,
    )  # fmt: skip


def graph_settings(feature: Any) -> dict[str, Any]:
    """What of a CNN feature's settings its exported graph depends on (weights apart): bf16
    runs the fp32 graph, so one export serves both."""
    conv = not feature.square
    return {
        "backbone": feature.backbone,
        "layer": feature.layer,
        "pooling": feature.pooling if conv else None,
        "gem_p": feature.gem_p if conv and feature.pooling == "gem" else None,
        "precision": "fp32" if feature.precision == "bf16" else feature.precision,
    }


def network_description(feature: Any, calibration: str | None = None) -> dict[str, Any] | None:
    """What a CNN feature's network is, found without torch: its graph's settings, precision,
    input sides and a digest of its weights file (and int8's ``calibration`` digest, computed
    here when not given); None when that file cannot be found without torch (torchvision's hub
    cache) or there is none (random weights)."""
    from search_lab.core import integrity
    from search_lab.features.backbones import weights_file

    file = weights_file(feature.backbone, feature.weights)
    if file is None:
        return None
    network = {
        **graph_settings(feature),
        "precision": feature.precision,
        "weights_file": str(file),
        "weights_digest": integrity.file_digest(file),
        "sides": list(feature.sides),  # the check runs at each: a record is for these only
        "square": feature.square,
    }
    if feature.precision == "int8":
        from search_lab.features import quantize

        network["calibration"] = calibration or quantize.calibration_digest(
            quantize.calibration_files(feature.calibrate_on)
        )
    return network


def recorded_runner(feature: Any) -> tuple[str, Runner] | None:
    """(engine, runner) of the engine a process on this machine already checked for this
    network, loaded without torch; None when the full path must decide (no record, an engine
    not yet checked, a damaged export, torch asked for, a GPU, random weights, any error)."""
    if feature.device != "cpu" or feature.weights is None or feature.engine == "torch":
        return None
    try:
        return _recorded(feature)
    except Exception as err:  # any doubt: the full path checks again, or says what is wrong
        log.info("%s: no checked engine used (%s): checking against torch", feature.name, err)
        return None


def _recorded(feature: Any) -> tuple[str, Runner] | None:
    """:func:`recorded_runner` once the settings allow a record."""
    engine = {"int8": "onnxruntime", "bf16": "openvino"}.get(feature.precision, feature.engine)
    if engine == "auto":  # the first installed one: what the full path tries first
        engine = next((e for e in AUTO_ORDER if checked.package_version(PACKAGES[e])), "")
    bf16 = feature.precision == "bf16"
    network = network_description(feature)
    if not engine or network is None or (bf16 and not bf16_available()):
        return None
    key = checked.record_key(network, engine, feature.threads, check_bound(feature.precision))
    exports = Exports(feature.export_dir)
    export_key = checked.Checks(exports.folder).export_key(key)
    graph = {  # what the export of these settings is: a record pointing elsewhere is void
        **graph_settings(feature),
        "engine": engine,
        "engine_version": key["engine_version"],
        "calibration": network.get("calibration"),
    }
    if not isinstance(export_key, dict) or any(export_key.get(k) != v for k, v in graph.items()):
        return None
    path = exports.valid(exports.folder, export_key)[0]
    if path is None:
        return None
    runner = load_runner(engine, path, feature.threads, bf16)
    log.info("%s: %s passed the fidelity check on this machine before: running %s without "
             "torch", feature.name, engine, path.name)  # fmt: skip
    return engine, runner


def probe_batches(feature: Any) -> list[np.ndarray]:
    """Network-input batches of :data:`PROBES` synthetic images (landscape and portrait) at
    each of the feature's input sides: what the fidelity check compares."""
    from search_lab.data import synth_image

    images = [synth_image(22, i) for i in range(PROBES)]
    images[-1] = np.ascontiguousarray(images[-1].transpose(1, 0, 2))  # one of each shape
    out = []
    for side in feature.sides:
        groups: dict[tuple[int, ...], list[np.ndarray]] = {}
        for image in images:
            x = feature._input(image, side)
            groups.setdefault(x.shape, []).append(x)
        out += [np.stack(g) for g in groups.values()]
    return out


def engines_used(extractor: Any) -> dict[str, str] | None:
    """``{feature name: engine}`` of an extractor and its parts that chose one (``metrics.json``);
    None when none did (hand-crafted features, or not prepared in this process: Ray)."""
    parts = extractor.cache_parts() or [extractor]
    used = {p.name: p.engine_used for p in parts if getattr(p, "engine_used", None)}
    return used or None

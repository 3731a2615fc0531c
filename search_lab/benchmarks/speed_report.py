"""Targets and the Markdown report of the speed benchmark."""

from __future__ import annotations

from typing import Any

from search_lab.benchmarks.integrity import markdown_lines
from search_lab.benchmarks.speed_engines import BF16, ENGINES, engines_markdown
from search_lab.benchmarks.speed_images import CAMERA_QUALITY, CAMERA_SIZE
from search_lab.benchmarks.speed_timing import FULL_SIDE

TARGETS = {  # name -> (comparison, threshold)
    "hsv_over_decode": ("<=", 2.0),
    "cnn_images_per_s": (">=", 20.0),
    "camera_hsv_draft_speedup": (">=", 4.0),
    "camera_map_difference": ("<=", 0.01),
    "cnn_engine_x_torch": (">=", 3.0),
    "cnn_bf16_x_torch": (">=", 3.0),
}


def target_values(report: dict[str, Any]) -> dict[str, float | None]:
    """The measured value behind each target (None when that part was not run)."""
    hol = report["holidays"]["features"]
    cam = report.get("camera")
    return {
        "hsv_over_decode": hol["hsv"]["one_process"]["ratio_to_decode"],
        "cnn_images_per_s": hol["cnn"]["parallel"]["images_per_s"] if "cnn" in hol else None,
        "camera_hsv_draft_speedup": (
            cam["draft_vs_full"]["speedup_vs_full_decode_full_feature"] if cam else None
        ),
        "camera_map_difference": report["camera_map"]["difference"] if cam else None,
        "cnn_engine_x_torch": engine_speedup(report),
        "cnn_bf16_x_torch": engine_speedup(report, BF16),
    }


def engine_speedup(report: dict[str, Any], row: str | None = None) -> float | None:
    """Real-path images/s over the torch engine's on the same path (engines table): of the
    fastest fp32 engine, or of ``row``; None when not measured."""
    table = (report.get("engines") or {}).get("engines") or {}
    rows = [row] if row else [e for e in ENGINES if e != "torch"]
    found = [table[e]["real_path"]["x_torch"] for e in rows if "real_path" in table.get(e, {})]
    return max(found) if found else None


def check_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it is met (None: not measured)."""
    out = []
    for name, value in target_values(report).items():
        op, threshold = TARGETS[name]
        met = None if value is None else (value <= threshold if op == "<=" else value >= threshold)
        out.append(
            {"name": name, "value": value, "comparison": op, "threshold": threshold, "met": met}
        )
    return out


def fmt(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def extraction_markdown(title: str, part: dict[str, Any]) -> list[str]:
    """One table: decode-only rows, then feature rows, one process and parallel, with ratios."""
    lines = [
        f"### {title}: {part['n_images']} images, typically {part['typical_size']} "
        f"(1-min load {', '.join(f'{v}' for v in part['load_1m'].values())} "
        "before / after one-process / after parallel timing)",
        "",
        "| what | max_side | one process img/s | × decode | × decode at max_side "
        "| parallel img/s | × decode | × decode at max_side |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for key, rec in part["decode"].items():
        side = "full" if key == "full" else key.removeprefix("max_side_")
        lines.append(
            f"| decode only | {side} | {fmt(rec['one_process']['images_per_s'])} | | "
            f"| {fmt(rec['parallel']['images_per_s'])} ({rec['parallel']['workers']} proc) | | |"
        )
    for name, rec in part["features"].items():
        one, par = rec["one_process"], rec["parallel"]
        how = (
            f"{par['torch_threads']} threads"
            if "torch_threads" in par
            else f"{par['workers']} proc"
        )
        lines.append(
            f"| **{name}** | {rec['max_side']} | {fmt(one['images_per_s'])} "
            f"| {fmt(one['ratio_to_decode'], 2)} | {fmt(one['ratio_to_decode_at_max_side'], 2)} "
            f"| {fmt(par['images_per_s'])} ({how}) | {fmt(par['ratio_to_decode'], 2)} "
            f"| {fmt(par['ratio_to_decode_at_max_side'], 2)} |"
        )
    return [*lines, ""]


def camera_markdown(report: dict[str, Any]) -> list[str]:
    """Draft against full-size decoding (speed and mAP) on the camera-size set."""
    cam, cmap = report["camera"], report["camera_map"]
    d = cam["draft_vs_full"]
    generated = cam["generated_s"]
    origin = "reused" if generated is None else f"generated in {generated:.0f} s"
    return [
        f"Camera-size set: {cam['n_images']} Holidays images (whole groups) upscaled to "
        f"{CAMERA_SIZE[0]}x{CAMERA_SIZE[1]}, JPEG quality {CAMERA_QUALITY}, cached in "
        f"`{cam['root']}` ({origin}).",
        "",
        "| hsv on camera-size JPEGs, one process | img/s | draft speedup |",
        "|---|--:|--:|",
        f"| draft decoding to max_side {d['max_side']} "
        f"| {fmt(d['draft']['images_per_s'], 2)} | 1.0 |",
        f"| full decoding, then shrink to {d['max_side']} | "
        f"{fmt(d['full_decode_then_shrink']['images_per_s'], 2)} "
        f"| {fmt(d['speedup_vs_full_decode_then_shrink'], 1)} |",
        f"| full decoding, feature on the full image | "
        f"{fmt(d['full_decode_full_feature']['images_per_s'], 2)} "
        f"| {fmt(d['speedup_vs_full_decode_full_feature'], 1)} |",
        "",
        f"hsv mAP on the camera-size set ({cmap['n_images']} images, {cmap['n_queries']} queries): "
        f"draft decoding {cmap['draft']['map']:.4f}, full-size decoding (max_side={FULL_SIDE}) "
        f"{cmap['full']['map']:.4f}, difference {cmap['difference']:.4f}.",
        "",
    ]


def service_markdown(report: dict[str, Any]) -> list[str]:
    """Query latency and end-to-end evaluate tables."""
    lines = [
        "| query latency (hsv, k=10, extraction included) | queries | p50 ms | p95 ms | mean ms |",
        "|---|--:|--:|--:|--:|",
    ]
    for name, rec in report["latency"].items():
        lines.append(
            f"| {name} | {rec['n_queries']} | {rec['p50_ms']:.2f} | {rec['p95_ms']:.2f} "
            f"| {rec['mean_ms']:.2f} |"
        )
    ev = report["evaluate"]
    return [
        *lines,
        "",
        f"| `{ev['command']}` | seconds | of which extraction | mAP |",
        "|---|--:|--:|--:|",
        *(
            f"| {run} feature cache | {ev[run]['seconds']:.2f} | {ev[run]['extract_s']:.2f} "
            f"| {ev[run]['map']:.4f} |"
            for run in ("cold", "warm")
        ),
        "",
    ]


def targets_markdown(targets: list[dict[str, Any]]) -> list[str]:
    """The target checklist."""
    lines = ["| target | measured | required | verdict |", "|---|--:|--:|---|"]
    for t in targets:
        verdict = "not run" if t["met"] is None else ("met" if t["met"] else "**NOT met**")
        lines.append(
            f"| {t['name']} | {fmt(t['value'], 3)} | {t['comparison']} {t['threshold']:g} "
            f"| {verdict} |"
        )
    return [*lines, ""]


def markdown(report: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    m = report["machine"]
    lines = [
        "# search_lab speed benchmark",
        "",
        f"Command: `{report['command']}` — total {report['elapsed_s']:.0f} s.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM; Python {m['python']}, "
        f"numpy {m['numpy']}, torch {m['torch']}, Pillow {m['pillow']}. Load average (1, 5, 15 "
        f"min) {m['load_avg_at_start']} at start, {report['load_avg_at_end']} at end. "
        f"{report.get('note', '')}".rstrip(),
        "",
        "Ratios are seconds per image of the feature over seconds per image of decode-only "
        "(`load_image` at full size, or at the feature's own max_side), in the same mode. One "
        "process = `workers=1` (CNN: 1 torch thread), best of interleaved rounds after a warm-up; "
        "parallel = `extract_files(..., workers=None)`, process pool (CNN: torch threads on every "
        "core), pool start-up included.",
        "",
        *extraction_markdown("Holidays", report["holidays"]),
    ]
    if "engines" in report:
        lines += engines_markdown(report["engines"])
    if "camera" in report:
        lines += extraction_markdown("Camera-size JPEGs", report["camera"])
        lines += camera_markdown(report)
    lines += service_markdown(report)
    if "integrity" in report:
        lines += markdown_lines(report["integrity"])
    lines += ["## Targets", "", *targets_markdown(report["targets"])]
    return "\n".join(lines).rstrip() + "\n"

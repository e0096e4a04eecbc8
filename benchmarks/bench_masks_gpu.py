"""Benchmark `masks_gpu`: stage 1 at the published schedule on one device, against the device's floor.

For each model, stage 1 (:func:`vsum.masks.compute_masks`, ``MaskConfig()``:
300 smooth + 150 sharp Adam steps per image) explains 100 images, each for
its own top-1 class (``target=None``), and the row reports:

- the wall time of the 100 images (stage 1 only: decoding, classification and
  both passes; ``torch.cuda.synchronize`` before and after), after an untimed
  warm-up of one short batch (CUDA context, lazy kernel loading, library
  initialisation), and the image-iterations per second;
- the batch size stage 1 used (read back from its result when it reports one,
  else the configured value);
- the floor: the FLOPs of one image-iteration (``torch.utils.flop_counter`` on
  the sharp-pass loss and its gradient, :func:`bench_masks.image_iteration_flops`)
  and the device's matrix-multiply rate measured in the same run; their ratio
  is the image-iterations per second the device could do if the network were
  one large matrix product, and the row's fraction of it.  On CUDA the rates
  are fp32 with TF32 allowed (``fp32``; cuDNN's convolutions use TF32 by
  default), strict fp32 (``fp32_no_tf32``) and bfloat16 (``bf16``); on the
  CPU fp32 and, where supported, bf16.

Models: ``efficientnet_lite0`` with its bundled weights (the row is
``skipped: weights not installed`` when its weight package is absent), and
torchvision's ``resnet50`` and ``alexnet`` at random weights (speed does not
depend on the weights).  Images: the first 100 of ``$VSUM_DATA/imagenet-samples``
(default ``../shared/data`` beside the repository) when that folder holds
enough, else 100 random-noise PNGs written to a temporary folder; the report
says which.

Usage (writes ``OUTDIR/masks_gpu.json`` and ``OUTDIR/masks_gpu.md`` after every
model, so a run stopped by a time limit keeps its finished rows)::

    python benchmarks/bench_masks_gpu.py --device cuda --out OUTDIR
    python benchmarks/bench_masks_gpu.py --device cpu --images 2 --smooth-iters 2 --sharp-iters 1 \\
        --models alexnet --out /tmp/x          # tiny smoke run on a CPU

``benchmarks/gpu_check.sh`` runs it on a GPU machine.  ``python benchmarks/run.py
masks_gpu`` runs the same measurements through the harness (CUDA, default
settings; ``--quick``: 16 images); ``run.py`` without names skips it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import harness
from harness import Case, benchmark

NAME = "masks_gpu"
DESCRIPTION = ("stage 1 (compute_masks, MaskConfig() defaults, target=None) on one device: wall time, "
               "image-iterations/s, batch size, and the fraction of the device's matmul floor")
DEFAULT_MODELS = ("efficientnet_lite0", "resnet50", "alexnet")
WEIGHTS_MISSING = "skipped: weights not installed"
WARMUP_ITERATIONS = {"smooth": 2, "sharp": 1}
SYNTHETIC_SIZE = (500, 375)  # width, height: a typical ImageNet photo


@dataclass
class Options:
    """What one benchmark run measures (the command-line options)."""

    device: str = "cuda"
    images: int = 100
    models: tuple[str, ...] = DEFAULT_MODELS
    smooth_iters: int | None = None  # None: the published schedule (MaskConfig defaults)
    sharp_iters: int | None = None
    batch_size: int | None = None  # None: MaskConfig's default
    warmup: bool = True
    matmul_seconds: float = 1.0


@dataclass
class Context:
    """What every model's measurement shares: device, images, config and matmul rates."""

    device: Any  # torch.device
    files: list[Path]
    images: dict[str, Any]
    config: Any  # vsum.masks.MaskConfig
    rates: dict[str, float] = field(default_factory=dict)
    warmup: bool = True


# --------------------------------------------------------------------------- device


def synchronize(device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_info(device) -> dict[str, Any]:
    """Name, torch / CUDA / cuDNN versions and the precision switches of ``device``."""
    import torch

    info: dict[str, Any] = {
        "type": device.type,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update({
            "name": torch.cuda.get_device_name(device),
            "capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count,
            "memory_gib": round(props.total_memory / 2**30, 1),
        })
    else:
        info["name"] = harness.machine_info()["cpu"]
    return info


def matmul_rate(dtype, device, side: int, seconds: float) -> float:
    """Measured FLOP/s of ``side x side`` matrix products in ``dtype`` on ``device`` (synchronised)."""
    import torch

    a = torch.rand(side, side, device=device).to(dtype)
    b = torch.rand(side, side, device=device).to(dtype)
    out = torch.mm(a, b)
    synchronize(device)
    calls, start = 0, time.perf_counter()
    while True:
        for _ in range(10 if device.type == "cuda" else 1):
            torch.mm(a, b, out=out)
            calls += 1
        synchronize(device)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return 2.0 * side ** 3 * calls / elapsed


def matmul_rates(device, seconds: float) -> dict[str, float]:
    """The device's matmul FLOP/s: ``fp32`` (TF32 allowed on CUDA), ``fp32_no_tf32`` (CUDA), ``bf16``.

    Square products of side 8192 on CUDA (large enough for the tensor cores'
    peak), 1024 on the CPU (as ``bench_masks.matmul_rate``).

    On the CPU ``bf16`` is left out where torch cannot multiply bfloat16
    matrices.  The float32 matmul precision is restored afterwards.
    """
    import torch

    if device.type != "cuda":
        rates = {"fp32": matmul_rate(torch.float32, device, 1024, seconds)}
        try:
            rates["bf16"] = matmul_rate(torch.bfloat16, device, 1024, seconds)
        except RuntimeError:
            pass
        return rates
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")  # TF32 allowed
        rates = {"fp32": matmul_rate(torch.float32, device, 8192, seconds)}
        torch.set_float32_matmul_precision("highest")  # strict fp32
        rates["fp32_no_tf32"] = matmul_rate(torch.float32, device, 8192, seconds)
    finally:
        torch.set_float32_matmul_precision(before)
    rates["bf16"] = matmul_rate(torch.bfloat16, device, 8192, seconds)
    return rates


# --------------------------------------------------------------------------- images


def data_root() -> Path:
    """``$VSUM_DATA``, else ``../shared/data`` beside the repository (as ``bench_masks.py``)."""
    return Path(os.environ.get("VSUM_DATA", harness.REPO.parent / "shared" / "data"))


def synthetic_images(count: int, folder: Path, seed: int = 0) -> list[Path]:
    """``count`` random-noise RGB PNGs (500 x 375) written to ``folder``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    width, height = SYNTHETIC_SIZE
    files = []
    for index in range(count):
        path = folder / f"noise_{index:04d}.png"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path, compress_level=1)
        files.append(path)
    return files


def benchmark_images(count: int, scratch: Path) -> tuple[list[Path], dict[str, Any]]:
    """The first ``count`` photos of ``imagenet-samples``, or synthetic noise when there are fewer.

    Returns the files and a description for the report (``source``, ``folder``, ``why``).
    """
    from vsum.io import list_images

    folder = data_root() / "imagenet-samples"
    found = list_images(folder) if folder.is_dir() else []
    if len(found) >= count:
        return found[:count], {"source": "imagenet-samples", "folder": str(folder), "count": count}
    why = f"{folder} holds {len(found)} images" if folder.is_dir() else f"{folder} does not exist"
    files = synthetic_images(count, scratch / "noise")
    return files, {"source": "synthetic random noise", "folder": str(scratch / "noise"), "count": count,
                   "size": "x".join(map(str, SYNTHETIC_SIZE)), "why": f"{why} (set VSUM_DATA)"}


# --------------------------------------------------------------------------- models


def load_classifier(name: str):
    """The model on the CPU: bundled weights for the offline models, random weights for torchvision's.

    Returns ``(classifier, None)``, or ``(None, reason)`` when an offline
    model's weights (or its package) are not installed.
    """
    from vsum.errors import VsumError
    from vsum.models import OFFLINE_MODELS, load_model

    key = name.strip().lower().replace("-", "_")
    if key in OFFLINE_MODELS:
        try:
            return load_model(key, device="cpu"), None
        except VsumError as exc:
            return None, str(exc)
    return load_model(key, weights="random", device="cpu"), None


def mask_config(options: Options):
    """``MaskConfig()`` with the run's iteration counts and, when given, batch size."""
    from dataclasses import replace

    from vsum.masks import MaskConfig

    config = MaskConfig().with_iterations(options.smooth_iters, options.sharp_iters)
    return config if options.batch_size is None else replace(config, batch_size=options.batch_size)


def used_batch_size(run, config) -> tuple[int, str]:
    """The batch size stage 1 used and where it was read.

    ``MaskRun.batch_size`` when stage 1 reports one (an automatic choice),
    else the ``batch_size`` of the configuration it ran with.
    """
    chosen = getattr(run, "batch_size", None)
    if chosen is not None:
        return int(chosen), "MaskRun.batch_size"
    return int(getattr(run, "config", config).batch_size), "MaskRun.config.batch_size"


def _sig(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


def floor_columns(flops: float, rates: dict[str, float], achieved: float) -> dict[str, float]:
    """Per matmul rate: the floor in image-iterations/s and the fraction ``achieved`` of it."""
    columns: dict[str, float] = {}
    for rate_name, rate in rates.items():
        floor = rate / flops
        columns[f"floor_image_iterations_per_s_{rate_name}"] = _sig(floor)
        columns[f"fraction_of_floor_{rate_name}"] = _sig(achieved / floor)
    return columns


def model_case(name: str, ctx: Context) -> Case | str:
    """A harness :class:`Case` timing stage 1 of ``name`` on the context's images, or a skip reason.

    Set-up (loading, FLOP counting on the CPU, moving to the device, the
    warm-up) happens here, untimed; the case's one call is the measured run.
    """
    import torch
    from bench_masks import image_iteration_flops

    from vsum.masks import compute_masks

    classifier, reason = load_classifier(name)
    if classifier is None:
        return reason
    config, device, files = ctx.config, ctx.device, ctx.files
    flops = image_iteration_flops(classifier, config)
    classifier.to(device)
    warmup_s = 0.0
    if ctx.warmup:
        start = time.perf_counter()
        warm = config.with_iterations(**WARMUP_ITERATIONS)
        compute_masks(files[:max(1, config.batch_size)], classifier, target=None, config=warm, device=device,
                      progress=False)
        synchronize(device)
        warmup_s = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    work = len(files) * (config.smooth.iterations + config.sharp.iterations)
    holder: dict[str, Any] = {}

    def run():
        synchronize(device)
        holder["run"] = compute_masks(files, classifier, target=None, config=config, device=device, progress=False)
        synchronize(device)

    def measure(result) -> dict[str, Any]:
        run = holder["run"]
        if run.image_iterations != work:
            skipped = "; ".join(f"{r.image.name}: {r.status}" for r in run.skipped[:3])
            raise RuntimeError(f"{name}: stage 1 ran {run.image_iterations} image-iterations, expected {work} "
                               f"({len(run.kept)} of {len(files)} images kept; {skipped})")
        batch, source = used_batch_size(run, config)
        columns: dict[str, Any] = {
            "batch_size": batch, "batch_size_source": source,
            "image_iterations": run.image_iterations,
            "engine_seconds": _sig(run.seconds), "warmup_seconds": _sig(warmup_s),
            "gflop_per_image_iteration": _sig(flops / 1e9),
        }
        columns.update(floor_columns(flops, ctx.rates, work / result.timing.median_s))
        if device.type == "cuda":
            columns["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        return columns

    return Case(
        name=name, fn=run, number=1, repeat=1, warmup=False, work=work, unit="image-it",
        params={"model": classifier.name, "weights": classifier.weights, "device": str(device),
                "images": len(files), "smooth_iterations": config.smooth.iterations,
                "sharp_iterations": config.sharp.iterations},
        measure=measure,
    )


def release(device) -> None:
    """Free the memory of the previous model before the next one."""
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- harness entry (run.py masks_gpu)


def make_context(options: Options, scratch: Path) -> Context:
    """Resolve the device (clear error without CUDA), pick the images, measure the matmul rates."""
    from vsum.errors import VsumError
    from vsum.models import resolve_device

    try:
        device = resolve_device(options.device)
    except VsumError as exc:
        raise SystemExit(f"bench {NAME}: {exc}") from None
    files, images = benchmark_images(options.images, scratch)
    rates = matmul_rates(device, options.matmul_seconds)
    return Context(device, files, images, mask_config(options), rates, options.warmup)


@benchmark(NAME, description=DESCRIPTION, label="stage 1", only_when_named=True)
def cases(quick: bool):
    """Through ``run.py masks_gpu``: CUDA, default models and schedule (``--quick``: 16 images)."""
    with tempfile.TemporaryDirectory(prefix="vsum-bench-gpu-") as scratch:
        ctx = make_context(Options(images=16 if quick else 100), Path(scratch))
        for name in DEFAULT_MODELS:
            built = model_case(name, ctx)
            if isinstance(built, str):
                print(f"  {NAME}: {name}: {WEIGHTS_MISSING} ({built})", flush=True)
                continue
            yield built
            del built
            release(ctx.device)


# --------------------------------------------------------------------------- report (the script's own runner)


def result_row(result) -> dict[str, Any]:
    """One flat JSON row from a harness result: status, params, seconds, rate, measured columns."""
    return {"model": result.case, "status": "ok", **result.params,
            "seconds": _sig(result.timing.median_s), "image_iterations_per_s": _sig(result.throughput),
            **result.extra}


def commit_info() -> dict[str, Any]:
    """``harness.git_info()``; where the checkout has no git metadata, ``$VSUM_COMMIT`` names the commit."""
    info = harness.git_info()
    if info.get("commit") is None and os.environ.get("VSUM_COMMIT"):
        info = {**info, "commit": os.environ["VSUM_COMMIT"], "commit_source": "VSUM_COMMIT"}
    return info


def new_report(options: Options, ctx: Context) -> dict[str, Any]:
    """The report's metadata (as ``harness.build_report``) plus the device, images and matmul rates."""
    return {
        "benchmark": NAME,
        "description": DESCRIPTION,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": harness.machine_info(),
        "software": harness.software_info(),
        "git": commit_info(),
        "settings": {**asdict(options), "load_avg_1m_before": harness.load_average(),
                     "batch_size_configured": ctx.config.batch_size,
                     "smooth_iterations": ctx.config.smooth.iterations,
                     "sharp_iterations": ctx.config.sharp.iterations},
        "device": device_info(ctx.device),
        "images": ctx.images,
        "matmul_flops_per_s": {k: _sig(v) for k, v in ctx.rates.items()},
        "results": [],
    }


def render_markdown(report: dict[str, Any]) -> str:
    """The report as markdown: metadata lines, then one table row per model."""
    dev, g, m, img = report["device"], report["git"], report["machine"], report["images"]
    commit = (g.get("commit") or "unknown")[:12] + (" (dirty: tracked files modified)" if g.get("dirty") else "")
    rates = ", ".join(f"{k} {v / 1e12:.4g} TFLOP/s" for k, v in report["matmul_flops_per_s"].items())
    lines = [
        f"# Benchmark `{report['benchmark']}`", "", report["description"], "",
        f"- date: {report['date']}",
        f"- commit: {commit}",
        (f"- device: {dev['name']} ({dev['type']}), torch {dev['torch']}, CUDA {dev['cuda']}, "
         f"cuDNN {dev['cudnn']}, float32 matmul precision {dev['float32_matmul_precision']}, "
         f"cuDNN TF32 {dev['cudnn_allow_tf32']}"),
        f"- machine: {m['cpu']}, {m['cores_usable']} usable / {m['cores_logical']} logical cores, {m['ram_gib']} GiB",
        f"- images: {img['count']} x {img['source']} ({img.get('why') or img['folder']})",
        f"- matmul rates measured in this run: {rates}",
        ("- seconds: wall time of stage 1 for all images (synchronised), after an untimed warm-up batch; "
         "floor = matmul rate / FLOPs of one image-iteration"),
        "",
    ]
    names = list(report["matmul_flops_per_s"])
    header = ["model", "status", "weights", "batch", "images", "steps", "seconds", "image-it/s", "GFLOP/image-it"]
    header += [f"floor it/s {n}" for n in names] + [f"fraction {n}" for n in names] + ["peak GPU MiB"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in report["results"]:
        steps = f"{row['smooth_iterations']}+{row['sharp_iterations']}" if "smooth_iterations" in row else ""
        cells = [row["model"], row["status"], row.get("weights"), row.get("batch_size"), row.get("images"), steps,
                 row.get("seconds"), row.get("image_iterations_per_s"), row.get("gflop_per_image_iteration")]
        cells += [row.get(f"floor_image_iterations_per_s_{n}") for n in names]
        cells += [row.get(f"fraction_of_floor_{n}") for n in names] + [row.get("peak_gpu_mib")]
        lines.append("| " + " | ".join(harness.table_cell(c) for c in cells) + " |")
    skipped = [r for r in report["results"] if r["status"] != "ok" and r.get("reason")]
    if skipped:
        lines += [""] + [f"- {r['model']}: {r['status']}: {r['reason']}" for r in skipped]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out_dir: Path) -> None:
    """Write ``<out_dir>/masks_gpu.json`` and ``.md`` atomically."""
    harness.atomic_write_text(out_dir / f"{NAME}.json", json.dumps(report, indent=2) + "\n")
    harness.atomic_write_text(out_dir / f"{NAME}.md", render_markdown(report))


def measure_model(name: str, ctx: Context) -> dict[str, Any]:
    """One report row: measured, skipped (weights not installed) or failed (the error, traceback on stderr)."""
    try:
        built = model_case(name, ctx)
        if isinstance(built, str):
            return {"model": name, "status": WEIGHTS_MISSING, "reason": built}
        return result_row(harness.run_case(built, repeat=1))
    except Exception as exc:  # noqa: BLE001 - one model's failure (e.g. out of memory) must not lose the others
        traceback.print_exc()
        return {"model": name, "status": "error", "reason": f"{type(exc).__name__}: {exc}"}


def parse_args(argv: list[str] | None) -> tuple[Options, Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="torch device (default: %(default)s)")
    parser.add_argument("--images", type=int, default=100, help="images explained per model (default: %(default)s)")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated model names (default: %(default)s)")
    parser.add_argument("--smooth-iters", type=int, default=None, help="smooth-pass steps (default: published, 300)")
    parser.add_argument("--sharp-iters", type=int, default=None, help="sharp-pass steps (default: published, 150)")
    parser.add_argument("--batch-size", type=int, default=None, help="MaskConfig.batch_size (default: MaskConfig's)")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the untimed warm-up batch")
    parser.add_argument("--matmul-seconds", type=float, default=1.0,
                        help="seconds spent measuring each matmul rate (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=harness.RESULTS_DIR,
                        help="output folder for masks_gpu.json and .md (default: %(default)s)")
    args = parser.parse_args(argv)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if not models:
        parser.error("--models names no model")
    if args.images < 1:
        parser.error("--images must be >= 1")
    for flag in ("smooth_iters", "sharp_iters", "batch_size"):
        if (getattr(args, flag) or 0) < 0:
            parser.error(f"--{flag.replace('_', '-')} must be >= 0")
    if args.smooth_iters == 0 and args.sharp_iters == 0:
        parser.error("--smooth-iters and --sharp-iters are both 0: nothing to measure")
    if not args.matmul_seconds > 0:
        parser.error("--matmul-seconds must be > 0")
    options = Options(args.device, args.images, models, args.smooth_iters, args.sharp_iters, args.batch_size,
                      args.warmup, args.matmul_seconds)
    return options, args.out


def main(argv: list[str] | None = None) -> int:
    """Run every model, writing the report after each; exit 1 when a model failed (skips are not failures)."""
    options, out_dir = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vsum-bench-gpu-") as scratch:
        ctx = make_context(options, Path(scratch))
        report = new_report(options, ctx)
        write_report(report, out_dir)
        print(f"[{NAME}] {report['device']['name']}, {ctx.images['count']} x {ctx.images['source']}", flush=True)
        for name in options.models:
            row = measure_model(name, ctx)
            release(ctx.device)  # the model is no longer referenced
            report["results"].append(row)
            write_report(report, out_dir)
            rate = row.get("image_iterations_per_s")
            print(f"  {NAME}: {name}: {row['status']}" + (f", {row['seconds']} s, {rate} image-it/s" if rate else
                                                          f" ({row.get('reason', '')})"), flush=True)
    print(render_markdown(report))
    print(f"wrote {out_dir / (NAME + '.json')} and {out_dir / (NAME + '.md')}", flush=True)
    failed = [r for r in report["results"] if r["status"] == "error"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

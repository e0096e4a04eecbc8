"""Benchmark `masks`: the stage-1 engine against the machine's floor, and its variants side by side.

Throughput is in image-iterations per second (one Adam step on one image's
mask: forward and backward through the network to the input).  All rows use
EfficientNet-Lite0 on the albatross photos, in one run:

- ``floor``: the FLOPs of one image-iteration (``torch.utils.flop_counter``
  on the sharp-pass loss and its gradient, batch 8, divided by 8) and this
  machine's float32 (and bfloat16) matrix-multiply rate measured in the same
  run; their ratio is the image-iterations per second the hardware could do
  if the network were one large matrix product.  Every speed row reports its
  fraction of that floor.
- ``speed``: a short schedule (20 smooth + 10 sharp steps), repeated, for
  each engine: today's (before this change: contiguous NCHW tensors, fp32,
  batch 8), channels-last alone, batch norms folded + channels-last at batch
  8, the new default (the same at the batch ``MaskConfig(batch_size=0)``
  chooses for this machine), ``--precision bf16`` at batch 8, and one image
  at a time; the reference of every row is today's engine, so the speed-up
  column is the gain.
- ``full schedule``: the published 300 + 150 steps once per engine on 8
  photos, for the agreement of the binary sharp masks (saliency > 0.5) with
  today's engine, the mean probability drop and the mask area: the masks a
  user gets, not only the speed.  The opt-in ``--early-stop 20`` and
  ``--superpixels 2000`` (300 + 50 steps) run here too; "image-it taken"
  counts the steps actually taken and "time / today's" compares wall times.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from harness import Case, benchmark

BATCH = 8
SHORT = {"smooth": 20, "sharp": 10}
TODAY = "today's engine (NCHW, fp32)"
ENGINES = {
    TODAY: {"channels_last": False, "fold_batchnorm": False, "batch_size": BATCH},
    "channels-last only (fp32)": {"fold_batchnorm": False, "batch_size": BATCH},
    "BN folded, channels-last, fp32": {"batch_size": BATCH},
    "new default (BN folded, channels-last, fp32, batch auto)": {"batch_size": 0},
    "--precision bf16 (BN folded, channels-last)": {"precision": "bf16", "batch_size": BATCH},
}
OPT_IN = {  # full schedule only: a 20+10-step schedule cannot show a convergence stop
    "--early-stop 20 (new default otherwise)": {"early_stop": 20, "batch_size": 0},
    "--superpixels 2000 (new default otherwise)": {"superpixels": 2000, "batch_size": 0},
}


def _images(count: int) -> list[Path]:
    root = Path(os.environ.get("VSUM_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    folder = root / "albatross"
    if not folder.is_dir():
        raise SystemExit(f"bench masks needs the albatross photos in {folder} (set VSUM_DATA)")
    return sorted(folder.iterdir())[:count]


def matmul_rate(dtype, side: int = 1024, seconds: float = 2.0) -> float:
    """Measured FLOP/s of ``side x side`` matrix products in ``dtype`` on this machine (torch, all threads)."""
    import torch

    a, b = torch.rand(side, side).to(dtype), torch.rand(side, side).to(dtype)
    torch.mm(a, b)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        calls += 1
    return 2.0 * side ** 3 * calls / (time.perf_counter() - start)


def image_iteration_flops(classifier, config) -> float:
    """FLOPs of one image-iteration of the sharp pass (forward + backward to the mask), counted at batch 8."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vsum.masks import mask_losses

    side = classifier.input_size
    images, blurred = torch.rand(BATCH, 3, side, side), torch.rand(BATCH, 3, side, side)
    mask = torch.rand(BATCH, 1, side, side, requires_grad=True)
    targets = torch.zeros(BATCH, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        mask_losses(classifier, images, blurred, mask, targets, config.sharp).sum().backward()
    return counter.get_total_flops() / BATCH


def _agreement(run, reference) -> dict:
    agreements = [float(np.mean((a.saliency["sharp"] > 128) == (b.saliency["sharp"] > 128)))
                  for a, b in zip(run.kept, reference.kept)]
    sharp, ref = run.summary("sharp"), reference.summary("sharp")
    return {"sharp agree mean %": round(100 * float(np.mean(agreements)), 2),
            "sharp agree min %": round(100 * min(agreements), 2),
            "sharp drop": round(sharp["drop"], 4), "drop / today's": round(sharp["drop"] / ref["drop"], 4),
            "sharp area": round(sharp["area"], 4), "today's area": round(ref["area"], 4)}


@benchmark("masks", description="stage-1 mask engine: floor, today's engine, the new default and the opt-in variants "
           "(EfficientNet-Lite0, batch 8, CPU, image-iterations/s)", label="engine", reference_label="today's engine")
def cases(quick: bool):
    import torch

    from vsum.masks import MaskConfig, compute_masks
    from vsum.models import load_model

    classifier = load_model("efficientnet_lite0", device="cpu")
    threads = torch.get_num_threads()
    flops = image_iteration_flops(classifier, MaskConfig())
    rates = {"fp32": matmul_rate(torch.float32)}
    try:
        rates["bf16"] = matmul_rate(torch.bfloat16)
    except RuntimeError:
        pass
    floor = {name: rate / flops for name, rate in rates.items()}
    yield Case(
        name="floor", fn=lambda: None, number=1, repeat=1, warmup=False,
        params={"model": classifier.name, "batch": BATCH, "threads": threads},
        extra={"GFLOP per image-iteration": round(flops / 1e9, 3),
               "matmul GFLOP/s fp32": round(rates["fp32"] / 1e9, 1),
               "matmul GFLOP/s bf16": round(rates["bf16"] / 1e9, 1) if "bf16" in rates else "n/a",
               "floor image-it/s fp32": round(floor["fp32"], 1),
               "floor image-it/s bf16": round(floor["bf16"], 1) if "bf16" in floor else "n/a"},
    )

    files = _images(BATCH)

    def short_run(engine: dict):
        config = MaskConfig(keep_misclassified=True, **engine).with_iterations(**SHORT)
        return compute_masks(files, classifier, target=146, config=config, progress=False)

    work = len(files) * sum(SHORT.values())
    auto_batch = short_run({"batch_size": 0}).batch_size  # what batch 0 chooses on this machine
    rows = dict(ENGINES)
    rows["one image at a time (BN folded, channels-last, batch 1)"] = {"batch_size": 1}
    if quick:
        rows.pop("channels-last only (fp32)")
    for name, engine in rows.items():
        batch = engine["batch_size"] or auto_batch
        precision = engine.get("precision", "fp32")
        yield Case(
            name=f"speed: {name}",
            fn=lambda engine=engine: short_run(engine),
            reference=lambda: short_run(ENGINES[TODAY]),
            number=1, work=work, unit="image-it",
            params={"model": classifier.name, "images": len(files), "batch": batch,
                    "steps": "20+10", "threads": threads},
            measure=lambda result, precision=precision: {
                "fraction of floor": round(work / result.timing.median_s / floor.get(precision, floor["fp32"]), 3)},
        )

    full_files = _images(6 if quick else BATCH)
    outputs = {}

    full_rows = {**ENGINES, **OPT_IN}

    def full(name):
        config = MaskConfig(keep_misclassified=True, **full_rows[name])
        outputs[name] = compute_masks(full_files, classifier, target=146, config=config, progress=False)
        return outputs[name]

    def full_measure(name) -> dict:
        run, today = outputs[name], outputs[TODAY]
        return {**_agreement(run, today), "image-it taken": run.image_iterations,
                "time / today's": round(run.seconds / today.seconds, 3)}

    for name, engine in full_rows.items():
        steps = (300, 50 if engine.get("superpixels") else 150)
        yield Case(
            name=f"full schedule: {name}",
            fn=lambda name=name: full(name),
            number=1, repeat=1, warmup=False,
            work=len(full_files) * sum(steps), unit="image-it",
            params={"model": classifier.name, "images": len(full_files), "batch": engine["batch_size"] or auto_batch,
                    "steps": f"{steps[0]}+{steps[1]}", "threads": threads},
            measure=lambda result, name=name: full_measure(name),
        )

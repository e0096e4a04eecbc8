"""Benchmark `masks`: stage-1 batched mask optimisation vs one image at a time.

The reference is the original per-image loop (batch size 1); both run the same
code path, so the ratio is the speed-up that batching buys on this machine.
Throughput is in image-iterations per second (one Adam step on one image's
mask, forward and backward through the network).

Two kinds of case:

- ``speed``: a short schedule (20 smooth + 10 sharp steps), repeated, for the
  throughput and the speed-up;
- ``full schedule``: the published 300 + 150 steps once each way, to report
  the agreement of the binary masks (saliency > 0.5) between the batched and
  the per-image run (docs/method.md: batching changes nothing but speed).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from harness import Case, benchmark


def _images(count: int) -> list[Path]:
    root = Path(os.environ.get("VSUM_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    folder = root / "albatross"
    if not folder.is_dir():
        raise SystemExit(f"bench masks needs the albatross photos in {folder} (set VSUM_DATA)")
    return sorted(folder.iterdir())[:count]


def _agreement(batched, single) -> dict:
    values = {"smooth": [], "sharp": []}
    for a, b in zip(batched.kept, single.kept):
        for name in values:
            values[name].append(float(np.mean((a.saliency[name] > 128) == (b.saliency[name] > 128))))
    out = {}
    for name, agreements in values.items():
        if agreements:
            out[f"{name} agree min %"] = round(100 * min(agreements), 2)
            out[f"{name} agree all pixels %"] = round(100 * float(np.mean(agreements)), 2)
    sharp = batched.summary("sharp")
    if sharp:
        out.update({"sharp drop": round(sharp["drop"], 4), "sharp area": round(sharp["area"], 4),
                    "sharp crisp": round(sharp["crisp"], 4)})
    return out


@benchmark("masks", description="stage-1 masks: batched optimisation vs one image at a time (CPU, image-iterations/s)",
           label="batched", reference_label="one at a time")
def cases(quick: bool):
    import torch

    from vsum.masks import MaskConfig, compute_masks
    from vsum.models import load_model

    classifier = load_model("efficientnet_lite0", device="cpu")
    threads = torch.get_num_threads()

    batch_sizes = [8]
    for batch in batch_sizes:
        files = _images(batch)
        short = dict(smooth=20, sharp=10)

        def run(size, files=files):
            config = MaskConfig(batch_size=size, keep_misclassified=True).with_iterations(**short)
            return compute_masks(files, classifier, target=146, config=config, progress=False)

        yield Case(
            name=f"speed, batch {batch}",
            fn=lambda run=run, batch=batch: run(batch),
            reference=lambda run=run: run(1),
            number=1,
            work=len(files) * sum(short.values()),
            unit="image-it",
            params={"model": classifier.name, "images": len(files), "batch": batch,
                    "steps": "20+10", "threads": threads},
        )

    files = _images(6 if quick else 12)  # 10 of the first 12 are classified as albatross and kept
    outputs = {}

    def full(size):
        config = MaskConfig(batch_size=size)
        outputs[size] = compute_masks(files, classifier, target=146, config=config, progress=False)
        return outputs[size]

    yield Case(
        name="full schedule",
        fn=lambda: full(8),
        reference=lambda: full(1),
        number=1,
        repeat=1,
        warmup=False,
        work=None,
        unit="image-it",
        params={"model": classifier.name, "images": len(files), "batch": 8, "steps": "300+150",
                "threads": threads},
        measure=lambda result: {"kept": len(outputs[1].kept),
                                "image-it/s batched": round(outputs[8].image_iterations / result.timing.median_s, 1),
                                "image-it/s one at a time": round(outputs[1].image_iterations / result.reference.median_s, 1),
                                **_agreement(outputs[8], outputs[1])},
    )

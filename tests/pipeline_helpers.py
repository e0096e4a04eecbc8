"""Test doubles for the pipeline tests: a stub classifier and a synthetic stage 1 (no torch model, no shared data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vsum.masks import MaskConfig, MaskResult, MaskRun, PassMetrics
from vsum.pipeline import PipelineConfig, RenderConfig
from vsum.proposals import ProposalConfig

from synthetic import synthetic_class

SIDE = 128

#: Small but real stages 2-5: 40 proposals per image, small summary cells.
CONFIG = PipelineConfig(proposals=ProposalConfig(num=40), render=RenderConfig(summary_cell=64))


class StubClassifier:
    """What the pipeline reads of a classifier (stage 1 itself is faked)."""

    name = "stub"
    weights = "none"
    input_size = SIDE
    class_names = ["bird", "other"]
    num_classes = 2

    def class_name(self, index):
        return self.class_names[index]


def write_birds(folder: Path, n: int = 4, seed: int = 0, rename: dict[int, str] | None = None) -> dict[str, np.ndarray]:
    """Write ``n`` synthetic bird photos (``SIDE`` px, the model grid) to ``folder``; file name -> silhouette mask.

    ``rename`` gives some images other file names (``{k: name}``).
    """
    birds = synthetic_class(n, SIDE, seed)
    masks = {}
    for k, path in enumerate(birds.write(folder)):
        if rename and k in rename:
            path = path.rename(folder / rename[k])
        masks[path.name] = birds.masks[k]
    return masks


def fake_masks(masks: dict[str, np.ndarray], kind: str = "birds", calls: list | None = None,
               optimised: list | None = None):
    """A stand-in for ``compute_masks``: every image kept with its silhouette (or an empty mask), or all misclassified.

    Like the real one, it takes one batch per image through ``checkpoint``
    (:class:`vsum.mask_batches.MaskBatches`): a stored batch is restored,
    another is "optimised" (its image name appended to ``optimised``) and saved.
    """

    def compute(paths, classifier, target=None, config=None, progress=True, checkpoint=None):
        if calls is not None:
            calls.append(len(paths))
        results = []
        for p in paths:
            p = Path(p)
            if kind == "misclassified":
                results.append(MaskResult(image=p, status="skipped: misclassified (top-1 1 'other' p=0.9)",
                                          target=0, predicted=1, p0=0.05))
                continue
            results.append(MaskResult(image=p, status="ok", target=0, predicted=0, p0=0.9))
        kept = [r for r in results if r.ok]
        for index, r in enumerate(kept):
            if checkpoint is not None and checkpoint.restore(index, [r]):
                continue
            sal = np.where(masks[r.image.name], 255, 0).astype(np.uint8) if kind == "birds" else np.zeros(
                (SIDE, SIDE), np.uint8)
            r.saliency = {"smooth": sal, "sharp": sal}
            metrics = PassMetrics(p=0.1, drop=0.9, score=1.0, area=float((sal > 127).mean()), crisp=1.0)
            r.passes = {"smooth": metrics, "sharp": metrics}
            if optimised is not None:
                optimised.append(r.image.name)
            if checkpoint is not None:
                checkpoint.save(index, [r])
        if checkpoint is not None:
            checkpoint.prune(len(kept))
        return MaskRun(results, config or MaskConfig(), classifier.name, seconds=0.01)

    return compute


def uninterrupted_run(photos: Path, masks: dict[str, np.ndarray], out: Path, config=CONFIG):
    """One run of the pipeline on ``photos`` with stage 1 faked by ``masks`` (the reference the tests compare with)."""
    import pytest

    import vsum.pipeline as pipeline

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "compute_masks", fake_masks(masks))
        return pipeline.summarize(photos, StubClassifier(), target=0, out=out, config=config, progress=False)

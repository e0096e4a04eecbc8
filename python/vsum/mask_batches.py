"""Stage-1 checkpoints: each finished batch of masks saved at once, restored on resume.

Stage 1 is most of a run's time (about 95 % on a CPU).  :func:`vsum.masks.compute_masks`
optimises the kept images in batches, and each batch starts from the same
seed, so a batch's masks depend only on its images and the configuration.
:class:`MaskBatches` stores each finished batch in its own file,
``<folder>/batch_<k>.npz``, written atomically (temporary name, ``fsync``,
rename), with both passes' saliency and metrics and the key of the stage.
A rerun of a killed stage 1 restores every stored batch whose key, images and
targets match, and optimises only the others: it resumes at the first
unfinished batch and gives the same masks as an uninterrupted run.

A batch file that cannot be read (truncated, damaged) or that belongs to
another key is ignored and recomputed.  The files stay after the stage ends:
they are the stage's primary record, so rebuilding a damaged ``saliency.npz``
or mask PNG costs no optimisation.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .io import atomic_open

__all__ = ["MaskBatches"]

_METRIC_FIELDS = ("p", "drop", "score", "area", "crisp")


class MaskBatches:
    """The batch files of one stage-1 computation.

    Parameters
    ----------
    folder : path-like
        Where the batch files live (created on the first save).
    key : str
        The stage-1 cache key; a file with another key is never restored.

    Attributes
    ----------
    restored, computed : int
        Batches taken from files and batches saved after being optimised by
        this object (what the resume tests count).
    """

    def __init__(self, folder: str | os.PathLike, key: str):
        self.folder = Path(folder)
        self.key = str(key)
        self.restored = 0
        self.computed = 0

    def path(self, index: int) -> Path:
        return self.folder / f"batch_{index:05d}.npz"

    @staticmethod
    def _meta(index: int, key: str, results) -> dict:
        return {"key": key, "batch": index, "images": [str(r.image.name) for r in results],
                "targets": [r.target for r in results]}

    def save(self, index: int, results: Sequence) -> None:
        """Store batch ``index``: the ``saliency`` and ``passes`` of its :class:`vsum.masks.MaskResult` s."""
        from .masks import PASS_NAMES

        arrays = {"meta": np.array(json.dumps(self._meta(index, self.key, results)))}
        for name in PASS_NAMES:
            if all(name in r.saliency for r in results):
                arrays[f"saliency_{name}"] = np.stack([r.saliency[name] for r in results]).astype(np.uint8)
                arrays[f"metrics_{name}"] = np.array(
                    [[getattr(r.passes[name], f) for f in _METRIC_FIELDS] for r in results], dtype=np.float64)
                if all(name in r.steps for r in results):
                    arrays[f"steps_{name}"] = np.array([r.steps[name] for r in results], dtype=np.int64)
        with atomic_open(self.path(index)) as fh:
            np.savez(fh, **arrays)
        self.computed += 1

    def restore(self, index: int, results: Sequence) -> bool:
        """Fill the ``saliency`` and ``passes`` of ``results`` from batch ``index``'s file.

        Returns True when the file exists, reads whole (zip CRCs checked),
        has this key and holds exactly these images with these targets;
        False otherwise, leaving ``results`` untouched.
        """
        from .masks import PASS_NAMES, PassMetrics

        path = self.path(index)
        if not path.is_file():
            return False
        try:
            with np.load(path, allow_pickle=False) as data:
                stored = {k: data[k] for k in data.files}
            meta = json.loads(str(stored["meta"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return False
        if meta != self._meta(index, self.key, results):
            return False
        passes = [n for n in PASS_NAMES if f"saliency_{n}" in stored]
        n = len(results)
        if not passes or any(stored[f"saliency_{p}"].shape[0] != n or stored[f"metrics_{p}"].shape != (n, 5)
                             for p in passes):
            return False
        for i, result in enumerate(results):
            for p in passes:
                result.saliency[p] = np.ascontiguousarray(stored[f"saliency_{p}"][i])
                result.passes[p] = PassMetrics(*(float(v) for v in stored[f"metrics_{p}"][i]))
                if f"steps_{p}" in stored:
                    result.steps[p] = int(stored[f"steps_{p}"][i])
        self.restored += 1
        return True

    def prune(self, count: int) -> None:
        """Delete batch files of indices ``>= count`` and any of another key (left by earlier runs)."""
        if not self.folder.is_dir():
            return
        for path in self.folder.glob("batch_*.npz"):
            try:
                index = int(path.stem.split("_", 1)[1])
            except ValueError:
                continue
            if index >= count or not self._has_key(path):
                path.unlink(missing_ok=True)

    def clear(self) -> None:
        """Delete every batch file (``force``: nothing is restored)."""
        if self.folder.is_dir():
            for path in self.folder.glob("batch_*.npz"):
                path.unlink(missing_ok=True)

    def _has_key(self, path: Path) -> bool:
        try:
            with np.load(path, allow_pickle=False) as data:
                return json.loads(str(data["meta"])).get("key") == self.key
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return False

"""What the network predicts, before explaining it (``vsum classify``).

Classification uses the standard evaluation preprocessing
(:func:`vsum.preprocess.eval_crop`), unlike stage 1, which explains the whole
image resized to the input size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from .io import ImageSkip, atomic_write_csv, display_name, list_images, read_image
from .models import Classifier
from .preprocess import eval_crop


@dataclass
class Prediction:
    """Top-k prediction for one image.

    Attributes
    ----------
    image : Path
    status : str
        ``"ok"`` or why the image was skipped.
    indices : list of int
        Top-k class indices, most probable first (empty when skipped).
    probabilities : list of float
        Their softmax probabilities.
    """

    image: Path
    status: str = "ok"
    indices: list[int] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)

    @property
    def top1(self) -> int | None:
        return self.indices[0] if self.indices else None


def classify(
    images: str | Path | Sequence[str | Path],
    classifier: Classifier,
    top: int = 5,
    batch_size: int = 32,
    progress: bool = True,
) -> list[Prediction]:
    """Top-``top`` predictions for every image, in input order.

    Parameters
    ----------
    images : folder, file or sequence of files
    classifier : Classifier
    top : int
        How many classes to report per image (>= 1).
    batch_size : int
    progress : bool

    Returns
    -------
    list of Prediction
        Unreadable images get a :class:`Prediction` whose status says why.
    """
    from tqdm.auto import tqdm

    paths = list_images(images) if isinstance(images, (str, Path)) else [Path(p) for p in images]
    top = max(1, min(int(top), classifier.num_classes or int(top)))
    predictions = [Prediction(image=p) for p in paths]
    pending: list[tuple[Prediction, torch.Tensor]] = []

    def flush() -> None:
        if not pending:
            return
        batch = torch.stack([t for _, t in pending]).to(classifier.device)
        with torch.no_grad():
            probs = torch.softmax(classifier.logits(batch), dim=1)
        values, indices = probs.topk(top, dim=1)
        for (prediction, _), vals, idx in zip(pending, values.cpu(), indices.cpu()):
            prediction.indices = [int(i) for i in idx]
            prediction.probabilities = [float(v) for v in vals]
        pending.clear()

    for prediction in tqdm(predictions, desc="classify", unit="img", disable=not progress):
        try:
            record = read_image(prediction.image, max_side=classifier.input_size)
        except ImageSkip as exc:
            prediction.status = f"skipped: {exc}"
            continue
        pending.append((prediction, eval_crop(record.rgb, classifier.input_size)))
        if len(pending) >= batch_size:
            flush()
    flush()
    return predictions


def write_predictions_csv(predictions: Sequence[Prediction], path: str | Path, classifier: Classifier, top: int) -> None:
    """One row per image: ``image, top1, top1_name, p_top1, top2 .. topK, status``.

    ``image`` is the file name as :func:`vsum.io.display_name` shows it (valid UTF-8).
    """
    header = ["image", "top1", "top1_name", "p_top1"] + [f"top{k}" for k in range(2, top + 1)] + ["status"]
    rows = []
    for p in predictions:
        if p.indices:
            row = [display_name(p.image), p.top1, classifier.class_name(p.top1), f"{p.probabilities[0]:.6g}"]
            row += list(p.indices[1:top]) + [""] * (top - len(p.indices))
        else:
            row = [display_name(p.image), "", "", ""] + [""] * (top - 1)
        rows.append(row + [p.status])
    atomic_write_csv(path, header, rows)

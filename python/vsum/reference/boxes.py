"""NumPy reference versions of :mod:`vsum.boxes`.

Same signatures, conventions, accepted inputs and results as the compiled
kernels (bit-identical: every ratio is ``float64(count) / float64(count)``
rounded to float32, as in C++), written for clarity:

- :func:`iou` and :func:`overlap_min` broadcast all ``(n, m)`` pairs in int64;
- :func:`coverage` counts the set pixels of each box's crop of the mask
  directly (no integral image).

Boxes are ``(x1, y1, x2, y2)`` with inclusive pixel corners, x = column; see
:mod:`vsum.boxes` for the full description.
"""

from __future__ import annotations

import numpy as np

from .._arrays import as_boxes, as_mask, check_not_degenerate

__all__ = ["coverage", "iou", "overlap_min"]


def _prepare(boxes, name: str) -> np.ndarray:
    """Validated boxes as an int64 (n, 4) array."""
    b = as_boxes(boxes, name)
    check_not_degenerate(b, name)
    return b.astype(np.int64)


def _area(b: np.ndarray) -> np.ndarray:
    return (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)


def _pairwise(boxes_a, boxes_b):
    """Intersections (n, m) and areas (n,), (m,) as int64."""
    a = _prepare(boxes_a, "boxes_a")
    b = _prepare(boxes_b, "boxes_b")
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    return inter, _area(a), _area(b)


def iou(boxes_a, boxes_b) -> np.ndarray:
    """Reference :func:`vsum.boxes.iou`: (n, m) float32 ``|A ∩ B| / |A ∪ B|``."""
    inter, area_a, area_b = _pairwise(boxes_a, boxes_b)
    union = (area_a[:, None] - inter) + area_b[None, :]  # = |A ∪ B|, exact in int64
    return (inter.astype(np.float64) / union.astype(np.float64)).astype(np.float32)


def overlap_min(boxes_a, boxes_b) -> np.ndarray:
    """Reference :func:`vsum.boxes.overlap_min`: (n, m) float32 ``|A ∩ B| / min(|A|, |B|)``."""
    inter, area_a, area_b = _pairwise(boxes_a, boxes_b)
    smaller = np.minimum(area_a[:, None], area_b[None, :])
    return (inter.astype(np.float64) / smaller.astype(np.float64)).astype(np.float32)


def coverage(mask, boxes) -> np.ndarray:
    """Reference :func:`vsum.boxes.coverage`: (n,) float32 fraction of set pixels per box.

    Pixels outside the image count as not set (denominator = full box area).
    """
    m = as_mask(mask, "mask")
    b = _prepare(boxes, "boxes")
    H, W = m.shape
    out = np.empty(len(b), dtype=np.float32)
    for i, (x1, y1, x2, y2) in enumerate(b.tolist()):
        area = (x2 - x1 + 1) * (y2 - y1 + 1)
        cx1, cy1 = max(x1, 0), max(y1, 0)
        cx2, cy2 = min(x2, W - 1), min(y2, H - 1)
        count = 0
        if cx1 <= cx2 and cy1 <= cy2:
            count = int(np.count_nonzero(m[cy1 : cy2 + 1, cx1 : cx2 + 1]))
        out[i] = np.float32(float(count) / float(area))
    return out

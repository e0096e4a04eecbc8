"""Proposal Flow matchers (stage 4): NAM, PHM and LOM for one image pair.

The kernels run in the compiled core (:mod:`vsum._core`, multi-threaded,
GIL released, results independent of the thread count).  A plain NumPy
version with the same semantics is :mod:`vsum.reference.flow`.

Importing this module does not import torch.
"""

from __future__ import annotations

import numpy as np

from ._arrays import as_boxes, check_not_degenerate
from ._compiled import _core

__all__ = ["METHODS", "match"]

METHODS = ("nam", "phm", "lom")


def _as_appearance(appearance, na: int, nb: int) -> np.ndarray:
    try:
        s = np.asarray(appearance)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"appearance must be an array-like of shape ({na}, {nb}); could not convert it: {exc}") from None
    if s.dtype.kind not in "biuf":
        raise ValueError(f"appearance must be a numeric array; got dtype {s.dtype}")
    if s.shape != (na, nb):
        raise ValueError(f"appearance must have shape (len(boxes_a), len(boxes_b)) = ({na}, {nb}); got {s.shape}")
    s = np.ascontiguousarray(s, dtype=np.float32)
    if s.size and not np.isfinite(s).all():
        raise ValueError("appearance must be finite; it holds NaN or inf")
    if s.size and (s < 0).any():
        raise ValueError("appearance must be >= 0; it holds negative values")
    return s


def match(boxes_a, boxes_b, appearance, method: str = "lom", image_shape=None) -> np.ndarray:
    """Matching confidence of every proposal pair of two images.

    Parameters
    ----------
    boxes_a : (na, 4) array-like of int
        Proposals of image A, ``(x1, y1, x2, y2)`` with inclusive pixel
        corners (x = column, y = row), as in :mod:`vsum.boxes`.
    boxes_b : (nb, 4) array-like of int
        Proposals of image B, same convention.
    appearance : (na, nb) array-like of float
        Appearance similarity ``s(a, b) >= 0`` (e.g. from
        :func:`vsum.features.appearance`); converted to float32.  Must be
        finite.
    method : {"lom", "phm", "nam"}
        Matcher, see Notes.  Default ``"lom"`` (the one the method uses).
    image_shape : (int, int), optional
        ``(H, W)`` in pixels spanning both images (use the larger height and
        width of the two); only PHM uses it, to lay out its offset histogram
        over ``[-W, W] x [-H, H]``.  Default: ``(max y2 + 1, max x2 + 1)``
        over both box sets (at least 1).

    Returns
    -------
    confidence : (na, nb) ndarray of float32
        ``confidence[a, b] >= 0``; the best match of ``a`` is
        ``confidence[a].argmax()``.  An empty box set gives an empty array.

    Raises
    ------
    ValueError
        Bad boxes (shape, non-integer, degenerate), ``appearance`` of the
        wrong shape or holding NaN, inf or negative values, an unknown
        ``method`` or a non-positive ``image_shape``.

    Notes
    -----
    Geometry: a box has centre ``((x1 + x2) / 2, (y1 + y2) / 2)``, width
    ``x2 - x1 + 1``, height ``y2 - y1 + 1`` and area ``w * h`` (pixels).
    Every method first zeroes each pair whose aspect ratios ``w / h`` differ
    by a factor of 2 or more (the *gated* appearance ``g``).

    * **NAM**: ``confidence = g``.
    * **PHM** (probabilistic Hough matching): each pair votes with weight
      ``g(a, b)`` for its offset ``(dx, dy)`` = centre of b - centre of a and
      scale ``s = log2(sqrt(area_b / area_a))`` (log2 of the ratio of the
      square roots of the areas), into a histogram of 90 x 90 = 8100 x-y cells
      over ``[-W, W] x [-H, H]`` and 20 scale bins over ``[-4, 4]`` (values
      outside go to the edge bins).  For each ``a`` and bin only the largest
      vote counts.  The histogram is smoothed by a separable 5x5x5 Gaussian
      (sigma 1 bin, zero padding) and ``confidence = g * smoothed[bin(a, b)]``.
    * **LOM** (local offset matching): for each ``a``, its neighbours are the
      proposals of A sharing at least one pixel with it (IoU > 0, ``a``
      included).  Each neighbour ``k`` votes with the offset of its best
      match ``b_k = argmax g[k]``: ``(dx, dy, ds)`` = (centre difference,
      ``area_b / area_k``).  Their geometric median ``m`` is found by 20
      Weiszfeld iterations from ``(1, 1, 1)`` with weights ``1 / (L1
      distance + 1e-6)``.  Then ``confidence[a, b] = g[a, b] * exp(-0.05 *
      ||(dx, dy)_ab - m_xy|| - 0.3 * |ds_ab - m_s|) * r_a`` where ``r_a`` =
      sum of the neighbours' best scores / sum of all best scores of A.  This
      is the order-independent variant (every row reads only ``g``).

    Cost: O(na * nb) for NAM and PHM (plus a fixed 162 000-bin smoothing),
    O(na * nb + na^2) for LOM.
    """
    a = as_boxes(boxes_a, "boxes_a")
    b = as_boxes(boxes_b, "boxes_b")
    check_not_degenerate(a, "boxes_a")
    check_not_degenerate(b, "boxes_b")
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    s = _as_appearance(appearance, len(a), len(b))
    if image_shape is None:
        both = np.concatenate([a, b]) if len(a) + len(b) else np.zeros((1, 4), np.int64)
        image_shape = (max(1, int(both[:, 3].max()) + 1), max(1, int(both[:, 2].max()) + 1))
    try:
        height, width = (int(v) for v in image_shape)
    except (TypeError, ValueError):
        raise ValueError(f"image_shape must be a pair (H, W) of ints; got {image_shape!r}") from None
    if height <= 0 or width <= 0:
        raise ValueError(f"image_shape must be positive; got {(height, width)}")
    return _core.flow_match(a, b, s, method.lower(), height, width)

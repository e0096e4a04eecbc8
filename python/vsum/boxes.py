"""Box geometry: IoU, overlap over the smaller box, mask coverage.

All functions take boxes as integer pixel rectangles and run in the compiled
core (:mod:`vsum._core`, multi-threaded, GIL released).  Plain NumPy versions
with identical semantics live in :mod:`vsum.reference.boxes`.

Box convention
--------------
A box is ``(x1, y1, x2, y2)`` with **inclusive** pixel corners: ``x`` is the
column and ``y`` the row, so a box covers the pixels ``image[y1:y2 + 1,
x1:x2 + 1]``, is ``x2 - x1 + 1`` pixels wide and ``y2 - y1 + 1`` pixels tall,
and ``(3, 3, 3, 3)`` is a single pixel.  All overlaps are ratios of exact
pixel counts (64-bit integers), rounded once to float32.

Boxes are given as an array-like of shape ``(n, 4)``.  Any integer dtype is
accepted (converted to a C-contiguous int32 array); float input is accepted
only if every value is an integer (e.g. ``3.0``).  Coordinates must lie in
``[-2**30, 2**30 - 1]`` and may lie outside the image.  A box with ``x2 < x1``
or ``y2 < y1`` is degenerate and raises :class:`ValueError`.

Threads
-------
The kernels run on the compiled core's thread pool
(:func:`vsum.threads.get_num_threads` threads); results do not depend on the
thread count.

Importing this module does not import torch.
"""

from __future__ import annotations

import numpy as np

from ._arrays import BOX_COORD_MAX, BOX_COORD_MIN, as_boxes, as_mask
from ._compiled import _core

__all__ = [
    "BOX_COORD_MAX",
    "BOX_COORD_MIN",
    "coverage",
    "iou",
    "overlap_min",
]


def iou(boxes_a, boxes_b) -> np.ndarray:
    """Intersection over union of every pair of boxes.

    Parameters
    ----------
    boxes_a : (n, 4) array-like of int
        Boxes ``(x1, y1, x2, y2)`` with inclusive pixel corners (x = column,
        y = row).  Integer dtypes, or floats holding integer values.
    boxes_b : (m, 4) array-like of int
        Second set of boxes, same convention.

    Returns
    -------
    iou : (n, m) ndarray of float32
        ``iou[i, j] = |A_i ∩ B_j| / |A_i ∪ B_j|`` where ``|.|`` counts pixels;
        values lie in ``[0, 1]``, 1 exactly when the two boxes are identical
        and 0 when they share no pixel.  An empty input gives an empty
        ``(n, m)`` array.

    Raises
    ------
    ValueError
        If an input is not of shape ``(n, 4)``, holds non-integer values or
        coordinates outside ``[-2**30, 2**30 - 1]``, or contains a degenerate
        box (the message names the first bad row).

    See Also
    --------
    overlap_min : intersection over the smaller of the two areas.
    vsum.reference.boxes.iou : NumPy reference implementation.

    Notes
    -----
    Because corners are inclusive, a box ``(x1, y1, x2, y2)`` has
    ``(x2 - x1 + 1) * (y2 - y1 + 1)`` pixels and two boxes that touch along
    an edge (``a.x2 + 1 == b.x1``) do not overlap.

    Examples
    --------
    Two 10 x 10 boxes offset by 5 pixels in x and y share a 5 x 5 square:

    >>> from vsum.boxes import iou
    >>> r = iou([[0, 0, 9, 9]], [[5, 5, 14, 14], [0, 0, 9, 9]])
    >>> r.shape, r.dtype
    ((1, 2), dtype('float32'))
    >>> bool(r[0, 0] == np.float32(25 / 175)), float(r[0, 1])
    (True, 1.0)
    """
    a = as_boxes(boxes_a, "boxes_a")
    b = as_boxes(boxes_b, "boxes_b")
    return _core.box_iou(a, b)


def overlap_min(boxes_a, boxes_b) -> np.ndarray:
    """Intersection over the smaller area, for every pair of boxes.

    Parameters
    ----------
    boxes_a : (n, 4) array-like of int
        Boxes ``(x1, y1, x2, y2)`` with inclusive pixel corners (x = column,
        y = row).  Integer dtypes, or floats holding integer values.
    boxes_b : (m, 4) array-like of int
        Second set of boxes, same convention.

    Returns
    -------
    overlap : (n, m) ndarray of float32
        ``overlap[i, j] = |A_i ∩ B_j| / min(|A_i|, |B_j|)`` in pixels; values
        lie in ``[0, 1]`` and equal 1 when one box contains the other.  Always
        ``>= iou(boxes_a, boxes_b)``.  An empty input gives an empty
        ``(n, m)`` array.

    Raises
    ------
    ValueError
        If an input is not of shape ``(n, 4)``, holds non-integer values or
        coordinates outside ``[-2**30, 2**30 - 1]``, or contains a degenerate
        box (the message names the first bad row).

    See Also
    --------
    iou : intersection over union.
    vsum.reference.boxes.overlap_min : NumPy reference implementation.

    Examples
    --------
    A 5 x 5 box inside a 10 x 10 box:

    >>> from vsum.boxes import overlap_min
    >>> overlap_min([[0, 0, 9, 9]], [[2, 2, 6, 6], [5, 5, 14, 14]])
    array([[1.  , 0.25]], dtype=float32)
    """
    a = as_boxes(boxes_a, "boxes_a")
    b = as_boxes(boxes_b, "boxes_b")
    return _core.box_overlap_min(a, b)


def coverage(mask, boxes) -> np.ndarray:
    """Fraction of each box's pixels that are set in a binary mask.

    Parameters
    ----------
    mask : (H, W) array-like of bool or int
        Binary image; a pixel is *set* when it is nonzero (``True``).  Row
        index = y, column index = x.  ``bool`` and ``uint8`` arrays are used
        without conversion when C-contiguous; other integer dtypes are
        converted to 0/1 ``uint8``.  Float masks are rejected: threshold them
        first (``mask > t``).
    boxes : (n, 4) array-like of int
        Boxes ``(x1, y1, x2, y2)`` with inclusive pixel corners, in the
        mask's pixel coordinates.  Boxes may extend beyond the image.

    Returns
    -------
    coverage : (n,) ndarray of float32
        ``coverage[i] = (number of set pixels inside box i) / (area of box
        i)``, in ``[0, 1]``.  Pixels of a box that lie outside the image count
        as *not set*: the denominator is always the full box area, so a box
        half outside an all-ones mask has coverage 0.5.  ``n = 0`` gives an
        empty array.

    Raises
    ------
    ValueError
        If ``mask`` is not 2-D or not bool/integer, or ``boxes`` is invalid
        (see :func:`iou`).

    See Also
    --------
    vsum.reference.boxes.coverage : NumPy reference (direct summation).

    Notes
    -----
    One integral image of the mask (int64 counts) is built per call, after
    which each box costs O(1); call it once with all boxes of an image rather
    than once per box.

    Examples
    --------
    >>> from vsum.boxes import coverage
    >>> mask = np.zeros((4, 6), dtype=bool)
    >>> mask[:, :3] = True                      # left half set
    >>> coverage(mask, [[0, 0, 5, 3], [0, 0, 2, 3], [-3, 0, 2, 3], [3, 0, 5, 3]])
    array([0.5, 1. , 0.5, 0. ], dtype=float32)
    """
    m = as_mask(mask, "mask")
    b = as_boxes(boxes, "boxes")
    return _core.box_coverage(m, b)

"""Input conversion and validation shared by the box wrappers and references.

Pure NumPy (no compiled code, no torch): :mod:`vsum.boxes` converts user input
with these helpers before calling :mod:`vsum._core`, and
:mod:`vsum.reference.boxes` uses the same helpers so both accept exactly the
same inputs.  Error messages follow the compiled core's wording.
"""

from __future__ import annotations

import numpy as np

# Supported coordinate range, identical to kBoxCoordMin/kBoxCoordMax in
# csrc/boxes/boxes.h (checked by the tests): with |coordinate| <= 2^30 a box
# has at most 2^62 pixels and the union of two boxes fits exactly in int64.
BOX_COORD_MIN = -(2**30)
BOX_COORD_MAX = 2**30 - 1


def _first_row(bad: np.ndarray) -> int:
    """Index of the first row of a (n, 4) boolean array with any True."""
    return int(np.flatnonzero(bad.any(axis=1))[0])


def as_boxes(boxes, name: str = "boxes") -> np.ndarray:
    """Convert ``boxes`` to a C-contiguous int32 array of shape (n, 4).

    Accepts any integer array-like, and float array-likes whose values are all
    finite integers.  An empty sequence (shape ``(0,)``) is read as ``(0, 4)``.
    Coordinates must lie in ``[BOX_COORD_MIN, BOX_COORD_MAX]``.  Degenerate
    boxes are *not* checked here (see :func:`check_not_degenerate`).

    Raises
    ------
    ValueError
        With a message naming ``name`` and, where it applies, the first bad row.
    """
    try:
        arr = np.asarray(boxes)
    except (TypeError, ValueError) as exc:  # ragged nested sequences
        raise ValueError(f"{name} must be an array-like of shape (n, 4); could not convert it: {exc}") from None
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(
            f"{name} must have shape (n, 4), one (x1, y1, x2, y2) box per row; got shape {arr.shape}"
        )
    kind = arr.dtype.kind
    if kind == "f":
        if arr.size:
            finite = np.isfinite(arr)
            if not finite.all():
                i = _first_row(~finite)
                raise ValueError(f"{name}: row {i} = {arr[i].tolist()} has a non-finite coordinate")
            nonint = arr != np.floor(arr)
            if nonint.any():
                i = _first_row(nonint)
                raise ValueError(
                    f"{name} must hold integer pixel coordinates; row {i} = {arr[i].tolist()} has a "
                    f"non-integer value (round the boxes explicitly, e.g. numpy.rint, before passing them)"
                )
    elif kind not in "iu":
        raise ValueError(
            f"{name} must be an integer array of pixel coordinates (floats only if integer-valued); "
            f"got dtype {arr.dtype}"
        )
    if arr.size:
        # Compare before casting so out-of-range values cannot wrap around in int32.
        lo, hi = arr.min().item(), arr.max().item()  # Python numbers: exact comparisons
        if lo < BOX_COORD_MIN or hi > BOX_COORD_MAX:
            bad = (arr < BOX_COORD_MIN) | (arr > BOX_COORD_MAX)
            i = _first_row(bad)
            v = arr[i][bad[i]][0]
            v = int(v) if kind != "f" else v.item()
            raise ValueError(
                f"{name}: row {i} has coordinate {v} outside the supported range "
                f"[{BOX_COORD_MIN}, {BOX_COORD_MAX}]"
            )
    return np.ascontiguousarray(arr, dtype=np.int32)


def check_not_degenerate(boxes: np.ndarray, name: str = "boxes") -> None:
    """Raise ValueError naming the first row with ``x2 < x1`` or ``y2 < y1``."""
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        x1, y1, x2, y2 = (int(v) for v in boxes[i])
        raise ValueError(
            f"{name}: row {i} is degenerate: (x1, y1, x2, y2) = ({x1}, {y1}, {x2}, {y2}); "
            f"need x1 <= x2 and y1 <= y2 (corners are inclusive)"
        )


def as_numeric(value, name: str, what: str = "a numeric array") -> np.ndarray:
    """``np.asarray(value)`` of a bool, integer or float dtype, else a ValueError naming ``name``.

    ``what`` completes the message ``"<name> must be <what>; ..."``.  No copy
    or dtype conversion is made; callers fix dtype and layout themselves.
    """
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be {what}; could not convert it: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be {what}; got dtype {arr.dtype}")
    return arr


def as_mask(mask, name: str = "mask") -> np.ndarray:
    """Convert a 2-D bool or integer mask to a C-contiguous uint8 array.

    ``bool`` becomes 0/1 (a view, no copy), ``uint8`` is kept as is (nonzero =
    set) and any other integer dtype becomes ``(mask != 0)`` as 0/1 uint8.
    Float masks are rejected: threshold them first.
    """
    arr = np.asarray(mask)
    if arr.ndim != 2:
        hint = " (for an RGB image or a batch, select or reduce to one 2-D plane first)" if arr.ndim == 3 else ""
        raise ValueError(f"{name} must be a 2-D (H, W) array; got shape {arr.shape}{hint}")
    kind = arr.dtype.kind
    if kind == "b":
        return np.ascontiguousarray(arr).view(np.uint8)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if kind in "iu":
        return (arr != 0).view(np.uint8)
    if kind == "f":
        raise ValueError(
            f"{name} must be a bool or integer array (nonzero = set); got dtype {arr.dtype}. "
            f"Threshold a float mask first, e.g. `{name} > 0.5`."
        )
    raise ValueError(f"{name} must be a bool or integer array (nonzero = set); got dtype {arr.dtype}")

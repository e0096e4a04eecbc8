"""Input conversion and validation shared by every wrapper and reference.

Pure NumPy (no compiled code, no torch).  The public functions convert user
input before it reaches :mod:`vsum._core`, and the references in
:mod:`vsum.reference` use the same helpers, so both accept exactly the same
inputs: :func:`as_boxes` (+ :func:`check_not_degenerate`) for boxes,
:func:`as_mask` for binary masks, :func:`as_image` for images and
:func:`as_numeric` for other numeric arrays.  Error messages follow the
compiled core's wording.
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


def as_mask(mask, name: str = "mask", shape: tuple[int, int] | None = None) -> np.ndarray:
    """The one mask validator: a 2-D bool or integer mask as a C-contiguous bool array.

    Parameters
    ----------
    mask : (H, W) array-like of bool or int
        Nonzero (True) = set.  Float masks are rejected: threshold them first
        (``saliency > 0.5``).
    name : str
        Used in error messages.
    shape : (int, int), optional
        When given, the mask must be exactly ``(H, W) = shape`` (e.g. its
        image's size).

    Returns
    -------
    mask : (H, W) ndarray of bool, C-contiguous
        The input itself when it already is a C-contiguous bool array, else
        ``mask != 0``.  Kernels that take uint8 use ``mask.view(np.uint8)``
        (0/1, no copy).

    Raises
    ------
    ValueError
        Not 2-D, a float or other non-integer dtype, or not of ``shape``.
    """
    try:
        arr = np.asarray(mask)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 2-D bool or integer array; could not convert it: {exc}") from None
    if arr.ndim != 2:
        hint = " (for an RGB image or a batch, select or reduce to one 2-D plane first)" if arr.ndim == 3 else ""
        raise ValueError(f"{name} must be a 2-D (H, W) array; got shape {arr.shape}{hint}")
    kind = arr.dtype.kind
    if kind == "f":
        raise ValueError(
            f"{name} must be a bool or integer array (nonzero = set); got dtype {arr.dtype}. "
            f"Threshold a float mask first, e.g. `{name} > 0.5`."
        )
    if kind not in "biu":
        raise ValueError(f"{name} must be a bool or integer array (nonzero = set); got dtype {arr.dtype}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name} must have its image's shape (H, W) = {tuple(shape)}; got {arr.shape}")
    if kind == "b":
        return np.ascontiguousarray(arr)
    return np.ascontiguousarray(arr != 0)


#: What :func:`as_image` does with an ``(H, W)`` grey image.
GREY_MODES = ("replicate", "keep", "reject")


def as_image(image, name: str = "image", *, dtype=np.uint8, grey: str = "replicate", min_side: int = 1) -> np.ndarray:
    """The one image validator: an RGB (or grey) image as a C-contiguous ``(H, W, C)`` array.

    Every function of vsum that takes an image checks it here, so all accept
    the same inputs and word their errors the same way.  Pixel values are
    never rescaled: images are on the 0-255 scale throughout vsum.

    Parameters
    ----------
    image : (H, W, 3), (H, W) or (H, W, 1) array-like
        RGB in R, G, B order, or grey.
    name : str
        Used in error messages (e.g. ``"images[3]"``).
    dtype : {numpy.uint8, numpy.float32}
        ``uint8``: the image must already be uint8; nothing is cast (a float
        image raises, with the conversion to use).  ``float32``: any integer
        or float dtype, converted to float32 without rescaling; values must
        be finite.
    grey : {"replicate", "keep", "reject"}
        A grey image (``(H, W)`` or ``(H, W, 1)``) becomes three equal
        channels ``(H, W, 3)``, stays one channel ``(H, W, 1)``, or raises.
    min_side : int, default 1
        ``H`` and ``W`` must be at least this many pixels (0 accepts an
        empty image).

    Returns
    -------
    image : (H, W, 3) ndarray (``(H, W, 1)`` for a grey image with ``grey="keep"``)
        Of ``dtype``, C-contiguous; the input itself when it already is one.

    Raises
    ------
    ValueError
        Naming ``name``: another shape (an alpha channel, a batch), an empty
        or too small image, another dtype (bool, complex, object, or not
        uint8 when ``dtype`` is uint8), non-finite values.
    """
    if grey not in GREY_MODES:
        raise ValueError(f"grey must be one of {GREY_MODES}; got {grey!r}")
    if dtype not in (np.uint8, np.float32):
        raise ValueError(f"dtype must be numpy.uint8 or numpy.float32; got {dtype!r}")
    try:
        arr = np.asarray(image)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an image array; could not convert it: {exc}") from None
    is_grey = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 1)
    if is_grey and grey == "reject":
        raise ValueError(f"{name} must be an RGB array of shape (H, W, 3); got shape {arr.shape} "
                         f"(for a grey image use numpy.stack([image] * 3, axis=-1))")
    if not (is_grey or (arr.ndim == 3 and arr.shape[2] == 3)):
        hint = " (drop the alpha channel first)" if arr.ndim == 3 and arr.shape[2] == 4 else ""
        raise ValueError(f"{name} must be an (H, W, 3) RGB or (H, W) grey array; got shape {arr.shape}{hint}")
    if arr.shape[0] < min_side or arr.shape[1] < min_side:
        if min_side == 1:
            raise ValueError(f"{name} must not be empty; got shape {arr.shape}")
        raise ValueError(f"{name} must be at least {min_side} x {min_side} pixels; got {arr.shape[0]} x {arr.shape[1]}")
    if dtype == np.uint8:
        if arr.dtype != np.uint8:
            raise ValueError(
                f"{name} must be uint8 (0..255 RGB); got dtype {arr.dtype}. Convert it explicitly, e.g. "
                f"(numpy.clip(image, 0, 1) * 255).round().astype(numpy.uint8) for a [0, 1] float image"
            )
    elif arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold integer or float pixel values; got dtype {arr.dtype}")
    out = np.ascontiguousarray(arr, dtype=dtype)
    if arr.dtype.kind == "f" and out.size and not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if out.ndim == 2:
        out = out[:, :, None]
    if out.shape[2] == 1 and grey == "replicate":
        out = np.ascontiguousarray(np.repeat(out, 3, axis=2))
    return out

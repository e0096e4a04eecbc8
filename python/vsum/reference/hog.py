"""NumPy reference versions of :func:`vsum.features.hog` and :func:`vsum.features.describe`.

Same conventions, accepted inputs and semantics as the compiled kernels
(``csrc/hog``), written for clarity in vectorised float64 NumPy: the
Felzenszwalb / voc-release 31-dimensional HOG with linear orientation binning
(two nearest of 18 contrast-sensitive bins) and bilinear spatial binning, and
the per-box descriptor (box padded by one cell, edge-replicated bilinear crop
to 80 x 80, inner 8 x 8 cells).  Results agree with the compiled core to about
1e-6 relative (summation order and ``atan2`` rounding differ); the resampled
crops are bit-identical.

The input helpers :func:`as_image` and :func:`as_cell` are shared with
:mod:`vsum.features`, so both accept exactly the same inputs.
"""

from __future__ import annotations

import math

import numpy as np

from .._arrays import as_boxes, check_not_degenerate

__all__ = ["as_cell", "as_image", "describe", "fhog", "fhog_shape"]

ORIENTATIONS = 18
FEATURES = 31
TRUNCATION = 0.2
TEXTURE_SCALE = 0.2357
EPS = 1e-4
DESC_CELL = 8
DESC_SIDE = 80
DESC_CELLS = 8
DESC_LENGTH = DESC_CELLS * DESC_CELLS * FEATURES  # 1984
MIN_IMAGE_SIDE = 16
MAX_CELL = 1 << 12


def as_image(image, name: str = "image") -> np.ndarray:
    """Convert an RGB (or grey) image to a C-contiguous float32 ``(H, W, 3)`` array.

    Accepts ``(H, W, 3)`` or ``(H, W)`` (grey, replicated to 3 channels) arrays
    of any integer or float dtype; values are *not* rescaled (the features
    expect the 0-255 scale, see :func:`vsum.features.hog`).

    Raises
    ------
    ValueError
        For other shapes, bool / complex / object dtypes, or non-finite values.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(
            f"{name} must be an (H, W, 3) RGB or (H, W) grey array; got shape {arr.shape}"
            + (" (drop the alpha channel first)" if arr.ndim == 3 and arr.shape[2] == 4 else "")
        )
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold integer or float pixel values; got dtype {arr.dtype}")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.dtype.kind == "f" and out.size and not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return out


def as_cell(cell) -> int:
    """Validate the HOG cell size: an integer in ``[1, 4096]``."""
    if isinstance(cell, bool) or not isinstance(cell, (int, np.integer)):
        raise ValueError(f"cell must be an integer number of pixels; got {cell!r}")
    cell = int(cell)
    if not 1 <= cell <= MAX_CELL:
        raise ValueError(f"cell must be an integer in [1, {MAX_CELL}]; got {cell}")
    return cell


def _blocks(side: int, cell: int) -> int:
    """round(side / cell), halves away from zero (C ``llround``)."""
    return int(math.floor(side / cell + 0.5))


def fhog_shape(height: int, width: int, cell: int = 8) -> tuple[int, int, int]:
    """Output shape of :func:`fhog`: ``(max(round(H/cell) - 2, 0), max(round(W/cell) - 2, 0), 31)``."""
    return max(_blocks(height, cell) - 2, 0), max(_blocks(width, cell) - 2, 0), FEATURES


def _cell_coords(n: int, cell: int):
    pos = (np.arange(n, dtype=np.float64) + 0.5) / cell - 0.5
    idx = np.floor(pos)
    return idx.astype(np.int64), pos - idx


def _histograms(img: np.ndarray, bh: int, bw: int, cell: int) -> np.ndarray:
    """(bh, bw, 18) float64 orientation histograms of a float64 (H, W, 3) image."""
    H, W = img.shape[:2]
    vh, vw = bh * cell, bw * cell
    ys, xs = np.arange(1, vh - 1), np.arange(1, vw - 1)
    yy, xx = np.minimum(ys, H - 2), np.minimum(xs, W - 2)
    dy = img[yy + 1][:, xx] - img[yy - 1][:, xx]  # (ny, nx, 3)
    dx = img[yy][:, xx + 1] - img[yy][:, xx - 1]
    v = dx * dx + dy * dy
    best = np.argmax(v, axis=2)[..., None]  # first channel on ties
    dx = np.take_along_axis(dx, best, 2)[..., 0]
    dy = np.take_along_axis(dy, best, 2)[..., 0]
    v = np.take_along_axis(v, best, 2)[..., 0]

    t = np.arctan2(dy, dx) * (ORIENTATIONS / (2.0 * np.pi))
    t = np.where(t < 0.0, t + ORIENTATIONS, t)
    lo = np.floor(t)
    frac = t - lo
    lo = np.where(lo >= ORIENTATIONS, lo - ORIENTATIONS, lo).astype(np.int64)
    hi = (lo + 1) % ORIENTATIONS
    mag = np.sqrt(np.maximum(v, 0.0))

    iy, fy = _cell_coords(vh, cell)
    ix, fx = _cell_coords(vw, cell)
    iy, fy, ix, fx = iy[ys][:, None], fy[ys][:, None], ix[xs][None, :], fx[xs][None, :]

    index, weight = [], []
    for cy, wy in ((iy, 1.0 - fy), (iy + 1, fy)):
        for cx, wx in ((ix, 1.0 - fx), (ix + 1, fx)):
            ok = (cy >= 0) & (cy < bh) & (cx >= 0) & (cx < bw)
            vote = np.where(ok, wx * wy * mag, 0.0)
            base = (np.clip(cy, 0, bh - 1) * bw + np.clip(cx, 0, bw - 1)) * ORIENTATIONS
            for o, w in ((lo, 1.0 - frac), (hi, frac)):
                index.append((base + o).ravel())
                weight.append((vote * w).ravel())
    hist = np.bincount(np.concatenate(index), np.concatenate(weight), minlength=bh * bw * ORIENTATIONS)
    return hist.reshape(bh, bw, ORIENTATIONS)


def _features(hist: np.ndarray) -> np.ndarray:
    """(bh - 2, bw - 2, 31) features from (bh, bw, 18) histograms."""
    bh, bw = hist.shape[:2]
    oh, ow = bh - 2, bw - 2
    norm = ((hist[..., :9] + hist[..., 9:]) ** 2).sum(axis=2)
    energy = norm[:-1, :-1] + norm[1:, :-1] + norm[:-1, 1:] + norm[1:, 1:]  # block at its top-left cell
    n = np.stack(
        [
            energy[1 : oh + 1, 1 : ow + 1],
            energy[0:oh, 1 : ow + 1],
            energy[1 : oh + 1, 0:ow],
            energy[0:oh, 0:ow],
        ],
        axis=-1,
    )
    n = 1.0 / np.sqrt(n + EPS)  # (oh, ow, 4)
    h = hist[1:-1, 1:-1]
    sens = np.minimum(h[..., None] * n[:, :, None, :], TRUNCATION)  # (oh, ow, 18, 4)
    insens = np.minimum((h[..., :9] + h[..., 9:])[..., None] * n[:, :, None, :], TRUNCATION)
    out = np.concatenate([0.5 * sens.sum(-1), 0.5 * insens.sum(-1), TEXTURE_SCALE * sens.sum(2)], axis=-1)
    return out.astype(np.float32)


def fhog(image, cell: int = 8) -> np.ndarray:
    """Reference :func:`vsum.features.hog`: float32 ``(round(H/cell)-2, round(W/cell)-2, 31)``."""
    im = as_image(image)
    cell = as_cell(cell)
    H, W = im.shape[:2]
    oh, ow, nf = fhog_shape(H, W, cell)
    if oh == 0 or ow == 0:
        return np.zeros((oh, ow, nf), np.float32)
    hist = _histograms(im.astype(np.float64), oh + 2, ow + 2, cell)
    return _features(hist)


def crop_box(im: np.ndarray, box) -> np.ndarray:
    """The 80 x 80 x 3 float32 edge-replicated bilinear crop of a padded box (see :func:`describe`)."""
    H, W = im.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = x2 - x1 + 1.0, y2 - y1 + 1.0
    padx, pady = 8.0 * bw / 64.0, 8.0 * bh / 64.0
    u = np.arange(DESC_SIDE, dtype=np.float64) + 0.5
    sx = (x1 - padx - 0.5) + u * (bw / 64.0)
    sy = (y1 - pady - 0.5) + u * (bh / 64.0)
    fx0, fy0 = np.floor(sx), np.floor(sy)
    wx, wy = (sx - fx0)[None, :, None], (sy - fy0)[:, None, None]
    xa, xb = np.clip(fx0, 0, W - 1).astype(np.int64), np.clip(fx0 + 1, 0, W - 1).astype(np.int64)
    ya, yb = np.clip(fy0, 0, H - 1).astype(np.int64), np.clip(fy0 + 1, 0, H - 1).astype(np.int64)
    img = im.astype(np.float64)
    a, b = img[ya][:, xa], img[ya][:, xb]
    d, e = img[yb][:, xa], img[yb][:, xb]
    val = (1.0 - wy) * ((1.0 - wx) * a + wx * b) + wy * ((1.0 - wx) * d + wx * e)
    return val.astype(np.float32)


def describe(image, boxes) -> np.ndarray:
    """Reference :func:`vsum.features.describe`: float32 ``(n, 1984)``, one box at a time."""
    im = as_image(image)
    b = as_boxes(boxes, "boxes")
    check_not_degenerate(b, "boxes")
    H, W = im.shape[:2]
    if H < MIN_IMAGE_SIDE or W < MIN_IMAGE_SIDE:
        raise ValueError(
            f"image must be at least {MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE} pixels to describe boxes; got {H} x {W}"
        )
    out = np.empty((len(b), DESC_LENGTH), np.float32)
    for i, box in enumerate(b.tolist()):
        out[i] = fhog(crop_box(im, box), DESC_CELL).ravel()
    return out

"""NumPy reference versions of :func:`vsum.features.hog` and :func:`vsum.features.describe`.

Same conventions, accepted inputs and semantics as the compiled kernels
(``csrc/hog``), written for clarity in vectorised float64 NumPy: the
Felzenszwalb / voc-release 31-dimensional HOG with linear orientation binning
(two nearest of 18 contrast-sensitive bins) and bilinear spatial binning, and
the per-box descriptor (box padded by one cell, edge-replicated bilinear crop
to 80 x 80, inner 8 x 8 cells).  Results agree with the compiled core to about
1e-6 relative (summation order and ``atan2`` rounding differ); the resampled
crops are bit-identical.

Inputs are checked by the same helpers as :mod:`vsum.features`
(:func:`vsum._arrays.as_image`, :func:`vsum.features.as_cell`), so both
accept exactly the same inputs; the descriptor layout constants
(``DESC_LENGTH``, ``FEATURES``, ...) and :func:`vsum.features.hog_shape`
come from there too.
"""

from __future__ import annotations

import numpy as np

from .._arrays import as_boxes, as_image, check_not_degenerate
from ..features import DESC_LENGTH, MIN_IMAGE_SIDE, as_cell, hog_shape

__all__ = ["crop_box", "describe", "fhog"]

ORIENTATIONS = 18
TRUNCATION = 0.2
TEXTURE_SCALE = 0.2357
EPS = 1e-4
DESC_CELL = 8
DESC_SIDE = 80


def _as_image(image) -> np.ndarray:
    return as_image(image, "image", dtype=np.float32, min_side=0)


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
    im = _as_image(image)
    cell = as_cell(cell)
    H, W = im.shape[:2]
    oh, ow, nf = hog_shape(H, W, cell)
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
    im = as_image(image, "image", dtype=np.float32, min_side=MIN_IMAGE_SIDE)
    b = as_boxes(boxes, "boxes")
    check_not_degenerate(b, "boxes")
    out = np.empty((len(b), DESC_LENGTH), np.float32)
    for i, box in enumerate(b.tolist()):
        out[i] = fhog(crop_box(im, box), DESC_CELL).ravel()
    return out

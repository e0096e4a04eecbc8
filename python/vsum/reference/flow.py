"""Plain NumPy reference of the Proposal Flow matchers (see :func:`vsum.flow.match`).

Same semantics as the compiled core; inputs are assumed already validated
(int32 (n, 4) boxes, finite non-negative float32 (na, nb) appearance).
"""

from __future__ import annotations

import numpy as np

PHM_XY = 90
PHM_SCALES = 20


def _geometry(boxes):
    b = np.asarray(boxes, dtype=np.int64)
    w = b[:, 2] - b[:, 0] + 1
    h = b[:, 3] - b[:, 1] + 1
    xc = (b[:, 0].astype(np.float64) + b[:, 2]) * 0.5
    yc = (b[:, 1].astype(np.float64) + b[:, 3]) * 0.5
    return w, h, xc, yc, w.astype(np.float64) * h.astype(np.float64)


def gate(boxes_a, boxes_b, appearance):
    """Appearance with pairs whose aspect ratios differ by >= 2x set to 0 (float32 (na, nb))."""
    wa, ha = _geometry(boxes_a)[:2]
    wb, hb = _geometry(boxes_b)[:2]
    p = wa[:, None] * hb[None, :]
    q = wb[None, :] * ha[:, None]
    hi, lo = np.maximum(p, q), np.minimum(p, q)
    return np.where(hi - lo >= lo, np.float32(0), np.asarray(appearance, np.float32)).astype(np.float32)


def nam(boxes_a, boxes_b, appearance):
    return gate(boxes_a, boxes_b, appearance)


def _bins(v, n):
    v = np.nan_to_num(v, nan=0.0)
    return np.clip(v, 0, n - 1).astype(np.int64)


def phm(boxes_a, boxes_b, appearance, image_shape):
    H, W = (float(v) for v in image_shape)
    g = gate(boxes_a, boxes_b, appearance)
    na, nb = g.shape
    if na == 0 or nb == 0:
        return g
    _, _, xa, ya, aa = _geometry(boxes_a)
    _, _, xb, yb, ab = _geometry(boxes_b)
    dx = xb[None, :] - xa[:, None]
    dy = yb[None, :] - ya[:, None]
    s = 0.5 * np.log2(ab[None, :] / aa[:, None])
    bx = _bins(np.floor((dx + W) * PHM_XY / (2.0 * W)), PHM_XY)
    by = _bins(np.floor((dy + H) * PHM_XY / (2.0 * H)), PHM_XY)
    bs = _bins(np.floor((s + 4.0) * PHM_SCALES / 8.0), PHM_SCALES)
    bin_ = (bs * PHM_XY + by) * PHM_XY + bx
    nbins = PHM_XY * PHM_XY * PHM_SCALES
    hist = np.zeros(nbins)
    for i in range(na):
        row_max = np.zeros(nbins, np.float32)
        np.maximum.at(row_max, bin_[i], g[i])
        hist += row_max
    hist = hist.reshape(PHM_SCALES, PHM_XY, PHM_XY)
    k = np.exp(-0.5 * np.arange(-2, 3) ** 2)
    k /= k.sum()
    for axis in range(3):
        pad = [(0, 0)] * 3
        pad[axis] = (2, 2)
        p = np.pad(hist, pad)
        n = hist.shape[axis]
        hist = sum(k[t] * np.take(p, np.arange(t, t + n), axis=axis) for t in range(5))
    score = hist.reshape(-1)[bin_]
    return (g.astype(np.float64) * score).astype(np.float32)


def lom(boxes_a, boxes_b, appearance, iterations=20, eps=1e-6, order="sequential"):
    """LOM confidence; ``order`` "sequential" (rows updated in place, in order) or "parallel"."""
    g = gate(boxes_a, boxes_b, appearance)
    na, nb = g.shape
    if na == 0 or nb == 0:
        return g
    a = np.asarray(boxes_a, np.int64)
    _, _, xa, ya, aa = _geometry(boxes_a)
    _, _, xb, yb, ab = _geometry(boxes_b)
    best = g.argmax(axis=1)
    best_score = g[np.arange(na), best].astype(np.float64)
    total = best_score.sum()
    off = np.stack([xb[best] - xa, yb[best] - ya, ab[best] / aa], axis=1)
    overlap = (np.maximum(a[:, None, 0], a[None, :, 0]) <= np.minimum(a[:, None, 2], a[None, :, 2])) & (
        np.maximum(a[:, None, 1], a[None, :, 1]) <= np.minimum(a[:, None, 3], a[None, :, 3])
    )
    sequential = order == "sequential"
    out = np.empty_like(g)
    for i in range(na):
        nbr = np.flatnonzero(overlap[i])
        p = off[nbr]
        m = np.ones(3)
        for _ in range(iterations):
            w = 1.0 / (np.abs(p - m).sum(axis=1) + eps)
            m = (w[:, None] * p).sum(axis=0) / w.sum()
        r = best_score[nbr].sum() / total if total > 0 else 0.0
        ex = xb - xa[i] - m[0]
        ey = yb - ya[i] - m[1]
        es = ab / aa[i] - m[2]
        out[i] = (g[i].astype(np.float64) * np.exp(-0.05 * np.sqrt(ex * ex + ey * ey) - 0.3 * np.abs(es)) * r).astype(
            np.float32
        )
        if sequential:  # later rows see this row's new best match and score
            b = int(out[i].argmax())
            off[i] = (xb[b] - xa[i], yb[b] - ya[i], ab[b] / aa[i])
            total += float(out[i, b]) - best_score[i]
            best_score[i] = float(out[i, b])
    return out


def match(boxes_a, boxes_b, appearance, method="lom", image_shape=None, order="sequential"):
    """NumPy reference of :func:`vsum.flow.match` (image_shape required for PHM)."""
    if method == "nam":
        return nam(boxes_a, boxes_b, appearance)
    if method == "phm":
        return phm(boxes_a, boxes_b, appearance, image_shape)
    return lom(boxes_a, boxes_b, appearance, order=order)

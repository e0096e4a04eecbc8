"""Plain NumPy reference of the sparse flow field (see :func:`vsum.flow.match_field`).

Same semantics as the compiled core (``csrc/flow/dense.h``), bit for bit;
inputs are assumed already validated (int32 (n, 4) non-degenerate boxes,
finite non-negative float32 (na, nb) confidence, positive image shapes).
The edge-aware fill's reference is :mod:`vsum.reference.fill`.
"""

from __future__ import annotations

import numpy as np


def _map(v, a1: int, a2: int, b1: int, b2: int, size: int) -> np.ndarray:
    """Pixel coordinates ``v`` of box side [a1, a2] mapped onto [b1, b2], rounded and clamped (int64)."""
    v = np.asarray(v, dtype=np.float64)
    if a2 == a1:
        t = np.full(v.shape, (float(b1) + float(b2)) / 2.0)
    else:
        t = float(b1) + (v - float(a1)) * float(b2 - b1) / float(a2 - a1)
    return np.clip(np.floor(t + 0.5), 0.0, float(size - 1)).astype(np.int64)


def match_field(boxes_a, boxes_b, conf, shape_a, shape_b):
    """Sparse flow field A -> B: ``(vx, vy, valid, score)``, each (Ha, Wa).

    See :func:`vsum.flow.match_field` for the semantics.
    """
    ha, wa = (int(v) for v in shape_a[:2])
    hb, wb = (int(v) for v in shape_b[:2])
    a = np.asarray(boxes_a, dtype=np.int64)
    b = np.asarray(boxes_b, dtype=np.int64)
    conf = np.asarray(conf, dtype=np.float32)
    vx = np.zeros((ha, wa), np.float32)
    vy = np.zeros((ha, wa), np.float32)
    score = np.zeros((ha, wa), np.float32)
    valid = np.zeros((ha, wa), bool)
    if conf.shape[0] == 0 or conf.shape[1] == 0:
        return vx, vy, valid, score
    best = conf.argmax(axis=1)
    best_score = conf[np.arange(len(conf)), best]
    rows = np.flatnonzero(best_score > 0)
    order = rows[np.lexsort((rows, -best_score[rows].astype(np.float64)))]

    assigned = np.zeros((ha, wa), bool)
    for i in order:
        xa1, ya1, xa2, ya2 = (int(v) for v in a[i])
        x1, x2 = max(xa1, 0), min(xa2, wa - 1)
        y1, y2 = max(ya1, 0), min(ya2, ha - 1)
        if x1 > x2 or y1 > y2:
            continue
        free = ~assigned[y1 : y2 + 1, x1 : x2 + 1]
        if not free.any():
            continue
        xb1, yb1, xb2, yb2 = (int(v) for v in b[best[i]])
        xs = np.arange(x1, x2 + 1)
        ys = np.arange(y1, y2 + 1)
        tx = _map(xs, xa1, xa2, xb1, xb2, wb)
        ty = _map(ys, ya1, ya2, yb1, yb2, hb)
        fx = np.broadcast_to((tx - xs).astype(np.float32)[None, :], free.shape)
        fy = np.broadcast_to((ty - ys).astype(np.float32)[:, None], free.shape)
        region = (slice(y1, y2 + 1), slice(x1, x2 + 1))
        vx[region][free] = fx[free]
        vy[region][free] = fy[free]
        score[region][free] = best_score[i]
        valid[region][free] = True
        assigned[region] |= free

    # One-to-one: per target pixel of B keep the highest score, ties the smallest raster index.
    src = np.flatnonzero(valid.ravel())
    if src.size:
        ys, xs = np.divmod(src, wa)
        tgt = (ys + vy.ravel()[src].astype(np.int64)) * wb + (xs + vx.ravel()[src].astype(np.int64))
        s = score.ravel()[src].astype(np.float64)
        o = np.lexsort((src, -s, tgt))
        first = np.ones(o.size, bool)
        first[1:] = tgt[o][1:] != tgt[o][:-1]
        keep = np.zeros(valid.size, bool)
        keep[src[o[first]]] = True
        valid &= keep.reshape(valid.shape)
    return vx, vy, valid, score

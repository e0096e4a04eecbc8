"""NumPy / pure-Python reference of :func:`vsum.proposals.segment`.

Felzenszwalb-Huttenlocher graph segmentation written for clarity, with the
same floating-point operations, in the same order, and the same tie-breaking
as the compiled kernel (csrc/proposals/segmentation_cpu.cpp), so both give the
same labels:

1. per channel, separable Gaussian smoothing in float64 (rows, then columns;
   taps ``g[i] = exp(-0.5 (i / sigma)^2)``, ``i = 0..ceil(4 sigma)``,
   normalised so that ``g[0] + 2 sum g[1:] = 1``; borders replicate the edge
   pixel; ``sigma = 0`` skips it);
2. the 8-connected grid graph, edges generated pixel by pixel in raster order
   (right, down, down-right, up-right), weight
   ``float32(sqrt(sum_c (a_c - b_c)^2))``;
3. a stable sort of the edges by weight (ties: generation order);
4. union-find merging with the threshold ``Int(C) + k / |C|``;
5. merging of components smaller than ``min_size`` along the same order;
6. labels ``0..n-1`` in raster order of each component's first pixel.

The union-find loop runs in Python: fine for images up to ~200 x 200.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["gaussian_half_kernel", "segment", "smooth", "sorted_edges"]


def gaussian_half_kernel(sigma: float) -> np.ndarray:
    """Taps ``g[0..r]`` (float64) of the smoothing kernel; empty for ``sigma == 0``."""
    if not sigma > 0:
        return np.zeros(0)
    r = int(math.ceil(sigma * 4.0))
    g = np.array([math.exp(-0.5 * (i / sigma) * (i / sigma)) for i in range(r + 1)])
    total = g[0]
    for i in range(1, r + 1):
        total = total + 2.0 * g[i]
    return g / total


def smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of an (H, W, C) float64 image, rows then columns, edge replication."""
    g = gaussian_half_kernel(sigma)
    if g.size == 0:
        return image.copy()
    H, W = image.shape[:2]
    r = g.size - 1
    cols = np.arange(W)
    rows = np.arange(H)
    tmp = g[0] * image
    for i in range(1, r + 1):
        left = image[:, np.maximum(cols - i, 0)]
        right = image[:, np.minimum(cols + i, W - 1)]
        tmp = tmp + g[i] * (left + right)
    out = g[0] * tmp
    for i in range(1, r + 1):
        up = tmp[np.maximum(rows - i, 0)]
        down = tmp[np.minimum(rows + i, H - 1)]
        out = out + g[i] * (up + down)
    return out


def sorted_edges(smoothed: np.ndarray):
    """Edges (u, v) as flat pixel indices and float32 weights, sorted by (weight, generation order)."""
    H, W, C = smoothed.shape
    idx = np.arange(H * W).reshape(H, W)
    ys, xs = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    us, vs, valid = [], [], []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (-1, 1)):
        yy, xx = ys + dy, xs + dx
        ok = (yy >= 0) & (yy < H) & (xx < W)
        us.append(idx)
        vs.append(np.where(ok, np.clip(yy, 0, H - 1) * W + np.clip(xx, 0, W - 1), 0))
        valid.append(ok)
    # (H*W, 4): per pixel, the four edge types in generation order
    u = np.stack([a.ravel() for a in us], axis=1)[np.stack([a.ravel() for a in valid], axis=1)]
    v = np.stack([a.ravel() for a in vs], axis=1)[np.stack([a.ravel() for a in valid], axis=1)]
    flat = smoothed.reshape(H * W, C)
    acc = None
    for c in range(C):
        d = flat[u, c] - flat[v, c]
        acc = d * d if acc is None else acc + d * d
    w = np.sqrt(acc).astype(np.float32)
    order = np.argsort(w, kind="stable")
    return u[order], v[order], w[order]


def segment(image, sigma: float = 0.8, k: float = 100, min_size: int = 100) -> np.ndarray:
    """Reference :func:`vsum.proposals.segment`: (H, W) int32 labels ``0..n-1``."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = img[:, :, None]
    H, W, _ = img.shape
    u, v, w = sorted_edges(smooth(img, float(sigma)))
    k = float(k)

    parent = list(range(H * W))
    rank = [0] * (H * W)
    size = [1] * (H * W)
    threshold = [k] * (H * W)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def join(a: int, b: int) -> int:
        if rank[a] < rank[b]:
            a, b = b, a
        parent[b] = a
        size[a] += size[b]
        if rank[a] == rank[b]:
            rank[a] += 1
        return a

    u_list, v_list, w_list = u.tolist(), v.tolist(), w.astype(np.float64).tolist()
    for a0, b0, weight in zip(u_list, v_list, w_list):
        a, b = find(a0), find(b0)
        if a != b and weight <= threshold[a] and weight <= threshold[b]:
            root = join(a, b)
            threshold[root] = weight + k / size[root]
    if min_size > 1:
        for a0, b0 in zip(u_list, v_list):
            a, b = find(a0), find(b0)
            if a != b and (size[a] < min_size or size[b] < min_size):
                join(a, b)

    labels = np.empty(H * W, dtype=np.int32)
    label_of_root: dict[int, int] = {}
    for p in range(H * W):
        root = find(p)
        labels[p] = label_of_root.setdefault(root, len(label_of_root))
    return labels.reshape(H, W)

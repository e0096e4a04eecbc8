"""Plain NumPy reference of the edge-aware flow fill (see :func:`vsum.flow.fill_flow`).

Mirrors ``csrc/flow/fill_cpu.cpp`` (the Fast Global Smoother of Min et al.,
"Fast global image smoothing based on weighted least squares", IEEE TIP 2014,
in normalised-convolution form), step by step and in float64:

1. neighbour weights ``exp(-||g_p - g_q|| / sigma)`` from the float32 guide,
   the squared channel differences summed channel by channel in float64;
2. three planar signals ``valid * vx``, ``valid * vy`` and ``valid``;
3. for ``t = 1..T``: the tridiagonal solve ``(I + lambda_t L) u = u`` along
   every row, then along every column (Thomas algorithm, the same recurrence
   and operation order as the C++), with
   ``lambda_t = 1.5 * lam * 4^(T - t) / (4^T - 1)``;
4. ``vx = U(valid * vx) / U(valid)`` (likewise ``vy``) cast to float32, or
   the input value at valid pixels when ``smooth=False``;
5. where ``U(valid) < 1e-12`` the value of the nearest valid pixel
   (Euclidean; ties go to the smallest column x, then the smallest row y,
   which is what the C++ distance transform picks), zeros when no pixel is
   valid.

Agreement with the compiled core: the same float64 operations in the same
order, and the weights use the C library's ``exp`` like the core, so on the
x86-64 build (no FMA contraction) the outputs are bit-identical (measured on
random fields and a real photo pair).  A build that contracts ``x - a * y``
into FMAs, or NumPy's ``exp`` instead of the C library's (off by an ulp in a
few percent of the weights), moves about one output in 10^5 by one float32
step, at very large ``lam``.  The parity tests assert ``rtol=1e-6`` (plus an
absolute 1e-6 times the data scale) and exact equality of the fallback
pixels.

Accepts exactly the inputs :func:`vsum.flow.fill_flow` accepts (it reuses
that wrapper's conversion helpers) and raises ValueError where the core
would; it never calls the compiled core.
"""

from __future__ import annotations

import math

import numpy as np

from .._arrays import as_mask
from ..flow import _as_field, _as_guide, _fill_params

MIN_WEIGHT = 1e-12  # kFillMinWeight in csrc/flow/fill.h

_libm_exp = np.vectorize(math.exp, otypes=[np.float64])


def edge_weights(guide, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Guide weights of the horizontal and vertical neighbour links.

    Parameters
    ----------
    guide : (H, W, C) ndarray of float32
        The guide image in its own units (0-255 for images).
    sigma : float
        Range scale, guide units (> 0).

    Returns
    -------
    wh : (H, W - 1) ndarray of float64
        ``wh[y, x]`` links pixels ``(x, y)`` and ``(x + 1, y)``.
    wv : (H - 1, W) ndarray of float64
        ``wv[y, x]`` links pixels ``(x, y)`` and ``(x, y + 1)``.
        Each is ``exp(-sqrt(sum_k (g_p[k] - g_q[k])^2) / sigma)``.
    """
    g = np.asarray(guide, dtype=np.float64)
    inv_sigma = 1.0 / sigma

    def weight(dg):
        s = np.zeros(dg.shape[:2])
        for k in range(dg.shape[2]):  # channel by channel, as the C++ sums
            s += dg[:, :, k] * dg[:, :, k]
        # math.exp is the C library's exp, the one std::exp calls in the core: the
        # weights are bit-identical (np.exp is off by an ulp for a few percent).
        return _libm_exp(-np.sqrt(s) * inv_sigma)

    return weight(g[:, :-1] - g[:, 1:]), weight(g[:-1, :] - g[1:, :])


def solve_lines(d: np.ndarray, w: np.ndarray, lam: float) -> None:
    """Solve ``(I + lam L) u = d`` in place along axis 1 of ``d`` (Thomas algorithm).

    Parameters
    ----------
    d : (S, n, m) ndarray of float64
        S signals, each m independent lines of length n (the solve runs along
        axis 1; the m lines are handled together).  Overwritten with u.
    w : (n - 1, m) ndarray of float64
        ``w[i]`` links positions ``i`` and ``i + 1`` of each line.
    lam : float
        lambda_t >= 0.

    Notes
    -----
    L is the 1D graph Laplacian with the weights w: row ``i`` of
    ``I + lam L`` is ``(a_i, 1 - a_i - c_i, c_i)`` with ``a_i = -lam w[i - 1]``
    (0 at ``i = 0``) and ``c_i = -lam w[i]`` (0 at ``i = n - 1``).  Forward
    sweep ``m_i = 1 - a_i - c_i - a_i c'_{i-1}``, ``c'_i = c_i / m_i``,
    ``d'_i = (d_i - a_i d'_{i-1}) / m_i``; back substitution
    ``u_i = d'_i - c'_i u_{i+1}``.  The same operations, in the same order,
    as ``solve_row`` / ``solve_columns`` in ``csrc/flow/fill_cpu.cpp``.
    """
    n, m = d.shape[1], d.shape[2]
    cp = np.zeros((n, m))  # c'_i
    zero = np.zeros(m)
    for i in range(n):
        a = -lam * w[i - 1] if i > 0 else zero
        c = -lam * w[i] if i + 1 < n else zero
        if i > 0:
            inv = 1.0 / (1.0 - a - c - a * cp[i - 1])
            d[:, i] = (d[:, i] - a * d[:, i - 1]) * inv
        else:
            inv = 1.0 / (1.0 - a - c)
            d[:, i] = d[:, i] * inv
        cp[i] = c * inv
    for i in range(n - 2, -1, -1):
        d[:, i] -= cp[i] * d[:, i + 1]


def nearest_valid(valid) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the nearest valid pixel of every pixel (Euclidean).

    Parameters
    ----------
    valid : (H, W) ndarray of bool
        With at least one True.

    Returns
    -------
    ny, nx : (H, W) ndarrays of int64
        Row and column of the nearest valid pixel.  Ties: the smallest column,
        then the smallest row (the choice of the C++ distance transform: per
        column the nearest valid row, the upper one on ties; then across
        columns the leftmost of the equally near).
    """
    valid = np.asarray(valid, bool)
    H, W = valid.shape
    ys = np.arange(H)[:, None]
    # Per column: the nearest valid row at or above (up) and at or below (down), -1 / H when none.
    up = np.maximum.accumulate(np.where(valid, ys, -1), axis=0)
    down = np.minimum.accumulate(np.where(valid, ys, H)[::-1], axis=0)[::-1]
    has_up, has_down = up >= 0, down < H
    take_down = has_down & (~has_up | (down - ys < ys - up))
    row = np.where(take_down, down, up)  # -1 for a column without any valid pixel
    dy2 = np.where(row >= 0, (row - ys) ** 2, np.iinfo(np.int64).max // 2)  # (H, W): per (y, column)

    # Per pixel (y, x): minimise (x - x')^2 + dy2[y, x'] over the columns x'; argmin keeps the first (leftmost).
    xs = np.arange(W)
    ny = np.empty((H, W), np.int64)
    nx = np.empty((H, W), np.int64)
    for y in range(H):
        cost = (xs[:, None] - xs[None, :]) ** 2 + dy2[y][None, :]  # (x, x')
        best = np.argmin(cost, axis=1)
        nx[y] = best
        ny[y] = row[y, best]
    return ny, nx


def filter_signals(signals, guide, *, lam: float, sigma: float, iterations: int) -> np.ndarray:
    """The operator U: ``iterations`` rounds of row then column solves.

    Parameters
    ----------
    signals : (S, H, W) array-like of float
        S planes, each filtered independently (same coefficients).
    guide : (H, W, C) array-like of float32
        Guide image (0-255 for images).
    lam, sigma, iterations
        As in :func:`fill_flow` (already checked).

    Returns
    -------
    (S, H, W) ndarray of float64
        ``U(signals)``.
    """
    u = np.array(signals, dtype=np.float64)  # a copy: solved in place
    wh, wv = edge_weights(guide, sigma)
    T = iterations
    denom = 1.0 - 4.0 ** (-T)
    for t in range(1, T + 1):
        lam_t = 1.5 * lam * 4.0 ** (-t) / denom  # = 1.5 lam 4^(T - t) / (4^T - 1), as the C++ computes it
        solve_lines(u.transpose(0, 2, 1), wh.T, lam_t)  # along every row (lines = rows)
        solve_lines(u, wv, lam_t)  # along every column (lines = columns)
    return u


def fill_confidence(valid, guide, *, lam: float = 1000.0, sigma: float = 40.0, iterations: int = 3) -> np.ndarray:
    """``U(valid)``, the normaliser of :func:`fill_flow`.

    Parameters
    ----------
    valid : (H, W) array-like of bool or int
        Pixels holding data.
    guide : (H, W, C) or (H, W) array-like
        Guide image on the 0-255 scale (read as float32).
    lam, sigma, iterations
        As in :func:`fill_flow`.

    Returns
    -------
    (H, W) ndarray of float64
        The filtered mask; pixels where it is below :data:`MIN_WEIGHT` take
        the nearest valid pixel's value in :func:`fill_flow` (the fallback).
    """
    m = as_mask(valid, "valid") != 0
    g, channels = _as_guide(guide, m.shape)
    lam, sigma, iterations = _fill_params(lam, sigma, iterations)
    if m.size == 0:
        return np.zeros(m.shape)
    g = g.reshape(m.shape[0], m.shape[1], channels)
    return filter_signals(m[None].astype(np.float64), g, lam=lam, sigma=sigma, iterations=iterations)[0]


def fill_flow(vx, vy, valid, guide, *, lam: float = 1000.0, sigma: float = 40.0, iterations: int = 3,
              smooth: bool = True):
    """Edge-aware fill of a sparse flow field: the NumPy version of :func:`vsum.flow.fill_flow`.

    Parameters
    ----------
    vx, vy : (H, W) array-like of float
        Flow components (pixels), read as float32; only the values at valid
        pixels are used (they must be finite there).
    valid : (H, W) array-like of bool or int
        Pixels holding data.
    guide : (H, W, C) or (H, W) array-like
        Guide image on the 0-255 scale (read as float32).
    lam, sigma, iterations, smooth
        As in :func:`vsum.flow.fill_flow`.

    Returns
    -------
    vx, vy : (H, W) ndarray of float32
        The filled flow.

    Raises
    ------
    ValueError
        Where :func:`vsum.flow.fill_flow` raises.
    """
    x, y, m = _as_field(vx, vy, valid)
    g, channels = _as_guide(guide, x.shape)
    lam, sigma, iterations = _fill_params(lam, sigma, iterations)
    H, W = x.shape
    ok = m != 0
    if H * W == 0:
        return np.zeros((H, W), np.float32), np.zeros((H, W), np.float32)
    bad = ok & ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        p = int(np.flatnonzero(bad)[0])
        raise ValueError(f"vx and vy must be finite at valid pixels; pixel (x, y) = ({p % W}, {p // W}) is not")
    g = g.reshape(H, W, channels)

    sig = filter_signals(np.stack([np.where(ok, x.astype(np.float64), 0.0),
                                   np.where(ok, y.astype(np.float64), 0.0),
                                   ok.astype(np.float64)]), g, lam=lam, sigma=sigma, iterations=iterations)
    c = sig[2]
    low = c < MIN_WEIGHT
    safe = np.where(low, 1.0, c)
    out_x = (sig[0] / safe).astype(np.float32)
    out_y = (sig[1] / safe).astype(np.float32)
    if not smooth:
        out_x[ok] = x[ok]
        out_y[ok] = y[ok]
    if low.any():
        if ok.any():
            ny, nx = nearest_valid(ok)
            out_x[low] = x[ny[low], nx[low]]
            out_y[low] = y[ny[low], nx[low]]
        else:
            out_x[low] = 0.0
            out_y[low] = 0.0
    return out_x, out_y

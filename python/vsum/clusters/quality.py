"""Stage 5, step 6: SSIM of a cluster's aligned member crops and the selection rules."""

from __future__ import annotations

import numpy as np

from .config import ClusterConfig


def to_grey(image) -> np.ndarray:
    """Grey value of an RGB image: ``0.2989 R + 0.5870 G + 0.1140 B`` (MATLAB ``rgb2gray``).

    Parameters
    ----------
    image : (H, W, 3) or (H, W) array-like, 0-255 scale

    Returns
    -------
    grey : (H, W) ndarray of float64, 0-255 scale (a grey input is returned as float64)
    """
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 2:
        return a
    if a.ndim == 3 and a.shape[2] == 3:
        return a[:, :, 0] * 0.2989 + a[:, :, 1] * 0.5870 + a[:, :, 2] * 0.1140
    raise ValueError(f"image must be (H, W, 3) or (H, W); got shape {a.shape}")


def crop(image: np.ndarray, box) -> np.ndarray:
    """``image`` cut to an inclusive box clipped to it, as a C-contiguous copy."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in box)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w - 1), min(y2, h - 1)
    if x2 < x1 or y2 < y1:
        raise ValueError(f"box {[int(v) for v in box]} lies outside the {h} x {w} image")
    return np.ascontiguousarray(image[y1:y2 + 1, x1:x2 + 1])


def _ssim(a: np.ndarray, b: np.ndarray, win_size: int, gaussian: bool) -> float:
    from skimage.metrics import structural_similarity

    side = min(a.shape)
    if gaussian:
        # skimage derives the window from sigma (truncate 3.5 -> 11 px); shrink it for small crops.
        if side >= 11:
            return float(structural_similarity(a, b, data_range=255.0, gaussian_weights=True, sigma=1.5,
                                               use_sample_covariance=False))
        win = side if side % 2 else side - 1
        if win >= 3:
            return float(structural_similarity(a, b, data_range=255.0, gaussian_weights=True,
                                               sigma=(win - 1) / 7.0, use_sample_covariance=False))
    else:
        win = min(win_size, side if side % 2 else side - 1)
        if win >= 3:
            return float(structural_similarity(a, b, data_range=255.0, win_size=win))
    # Crops thinner than 3 px: the SSIM formula with whole-crop statistics.
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ma, mb = a.mean(), b.mean()
    va, vb = a.var(), b.var()
    cov = ((a - ma) * (b - mb)).mean()
    return float((2 * ma * mb + c1) * (2 * cov + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2)))


def member_ssim(crops, *, win_size: int = 7, gaussian_weights: bool = False) -> np.ndarray:
    """SSIM of every pair of a cluster's aligned member crops (step 6).

    Parameters
    ----------
    crops : sequence of m (h, w, 3) or (h, w) arrays, 0-255 scale
        The exemplar's box cut from the exemplar image and from every other
        member's image warped onto the exemplar image (so all have the
        exemplar crop's size: the method's "resize to the exemplar crop size"
        is the identity here).
    win_size : int, default 7
        SSIM window (odd), shrunk to the largest odd size that fits the crop.
    gaussian_weights : bool, default False
        Gaussian window (sigma 1.5, no sample covariance; MATLAB's ``ssim``).

    Returns
    -------
    ssim : (m, m) ndarray of float64
        ``ssim[p, q]`` = SSIM of the grey crops (:func:`to_grey`) of members
        ``p`` and ``q`` (``skimage.metrics.structural_similarity``,
        ``data_range=255``, K1 0.01, K2 0.03), symmetric, diagonal 1.
        Values lie in ``[-1, 1]``.  Crops thinner than 3 px use one window
        covering the crop.

    Raises
    ------
    ValueError
        No crop, or crops of different sizes.
    """
    if len(crops) == 0:
        raise ValueError("member_ssim needs at least one crop")
    greys = [to_grey(c) for c in crops]
    shape = greys[0].shape
    for k, g in enumerate(greys):
        if g.shape != shape:
            raise ValueError(f"crops must all be {shape[0]} x {shape[1]} (the exemplar crop); "
                             f"crop {k} is {g.shape[0]} x {g.shape[1]}")
    m = len(greys)
    out = np.eye(m)
    for p in range(m):
        for q in range(p + 1, m):
            out[p, q] = out[q, p] = _ssim(greys[p], greys[q], int(win_size), bool(gaussian_weights))
    return out


def cluster_score(ssim) -> float:
    """Median of the off-diagonal entries of a member SSIM matrix (NaN for fewer than 2 members)."""
    s = np.asarray(ssim, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"ssim must be a square matrix; got shape {s.shape}")
    if len(s) < 2:
        return float("nan")
    return float(np.median(s[~np.eye(len(s), dtype=bool)]))


def select_summaries(cluster_scores, member_ssims, config: ClusterConfig | None = None):
    """Step 6 rules: which clusters, and which of their members, are kept.

    Parameters
    ----------
    cluster_scores : (K,) array-like of float
        Score of each cluster (:func:`cluster_score`); NaN for a cluster with
        fewer than 2 members (never kept, left out of the reference).
    member_ssims : sequence of K (m_k, m_k) arrays
        Each cluster's member SSIM matrix.
    config : ClusterConfig, optional
        ``cluster_keep_factor`` (0.9) and ``member_ssim_fraction`` (0.6).

    Returns
    -------
    reference : float
        Median of the non-NaN cluster scores (NaN when there is none).
    cluster_kept : (K,) ndarray of bool
        ``score >= cluster_keep_factor * reference``.
    member_kept : list of K (m_k,) ndarrays of bool
        In a kept cluster, member ``p`` is kept when fewer than
        ``member_ssim_fraction`` of its SSIMs against the other members are
        below the reference (``count(ssim[p, q] < reference, q != p) / (m_k -
        1) < fraction``); all False in a cluster that is not kept.
    """
    cfg = config or ClusterConfig()
    scores = np.asarray(cluster_scores, dtype=np.float64).reshape(-1)
    if len(member_ssims) != len(scores):
        raise ValueError(f"one SSIM matrix per cluster needed: {len(scores)} scores, {len(member_ssims)} matrices")
    finite = scores[~np.isnan(scores)]
    reference = float(np.median(finite)) if len(finite) else float("nan")
    with np.errstate(invalid="ignore"):
        kept = scores >= cfg.cluster_keep_factor * reference
    member_kept = []
    for k, m in enumerate(member_ssims):
        s = np.asarray(m, dtype=np.float64)
        if s.ndim != 2 or s.shape[0] != s.shape[1]:
            raise ValueError(f"member_ssims[{k}] must be square; got shape {s.shape}")
        n = len(s)
        if not kept[k] or n < 2:
            member_kept.append(np.zeros(n, bool))
            continue
        below = ((s < reference) & ~np.eye(n, dtype=bool)).sum(axis=1)
        member_kept.append(below / (n - 1) < cfg.member_ssim_fraction)
    return reference, kept, member_kept

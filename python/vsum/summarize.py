"""Stage 5: from masks, proposals and proposal flow to visual summaries.

The computation of ALGORITHM.md "Stage 5", steps 1-6, as plain functions
(NumPy in, NumPy out) plus one driver:

1. :func:`valid_proposals`  - boxes mostly inside the binary saliency mask;
2. :func:`prune_redundant`  - greedy per-image redundancy pruning;
3. :func:`similarity_matrix` - LOM similarities of the kept proposals;
4. :func:`cluster`          - affinity propagation on ``S - M``;
5. :func:`cluster_members`  - one member per image, top 10 by similarity;
6. :func:`member_ssim` / :func:`cluster_quality` - SSIM of the members'
   exemplar-box crops after a dense warp onto the exemplar image, and
   :func:`select_summaries` - the 0.9 x reference cluster rule and the 60 %
   member rule.

:func:`summarize_class` chains them for the images of one class, given their
binary masks (stage 1), proposals (stage 2) and descriptors (stage 3), and
computes the proposal flow itself (stage 4, :func:`vsum.pairs.all_pairs`,
:func:`vsum.flow.dense_flow`).  Rendering, the run directory and the CLI are
elsewhere.

The module is also callable: ``vsum.summarize(images, model, target=None,
out=..., config=...)`` runs stages 1-5 for one class in a run directory and
returns a :class:`vsum.pipeline.RunResult` (it is
:func:`vsum.pipeline.summarize_images`; ARCHITECTURE.md's top-level call).

Conventions: images are ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` grey) on the
0-255 scale; boxes are ``(x1, y1, x2, y2)`` with inclusive pixel corners
(:mod:`vsum.boxes`); a proposal is named by ``(image index, row of that
image's boxes)``.  Importing this module does not import torch.
"""

from __future__ import annotations

import sys
import time
import types
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from ._arrays import as_boxes, as_mask, check_not_degenerate
from .boxes import coverage, overlap_min

__all__ = [
    "Cluster",
    "ClusterResult",
    "SummaryConfig",
    "SummaryResult",
    "cluster",
    "cluster_members",
    "cluster_quality",
    "cluster_score",
    "member_ssim",
    "prune_redundant",
    "pruning_scores",
    "select_summaries",
    "similarity_matrix",
    "summarize_class",
    "to_grey",
    "valid_proposals",
]


@dataclass(frozen=True)
class SummaryConfig:
    """Parameters of stage 5; the defaults are the published ones (ALGORITHM.md).

    Attributes
    ----------
    valid_coverage : float, default 0.75
        Step 1: a proposal is valid when *more than* this fraction of its box
        pixels is salient.
    redundancy_overlap : float, default 0.5
        Step 2: two valid proposals of one image are redundant when
        ``|A n B| / min(|A|, |B|) >= redundancy_overlap`` ...
    redundancy_area_ratio : float, default 2.0
        ... and ``max(|A|, |B|) / min(|A|, |B|) < redundancy_area_ratio``.
    redundancy_topk : int, default 100
        Step 2: the pruning score of a proposal is the mean of its top-k LOM
        scores against all proposals of all other images.
    preference_factor : float, default 1.3
        Step 4: affinity propagation preference = ``preference_factor *
        median(S - M)`` (off-diagonal entries); the main knob for the number
        of clusters (larger = fewer clusters, since the median is <= 0).
    damping, max_iter, convergence_iter, random_state
        Step 4: ``sklearn.cluster.AffinityPropagation`` settings (0.9, 1000,
        100, 0).
    max_members : int, default 10
        Step 5: members kept per cluster, the exemplar included.
    cluster_keep_factor : float, default 0.9
        Step 6: a cluster is kept when its score >= ``cluster_keep_factor *
        reference``.
    member_ssim_fraction : float, default 0.6
        Step 6: a member of a kept cluster is kept when *fewer than* this
        fraction of its SSIMs against the other members fall under the
        reference.
    ssim_win_size : int, default 7
        ``skimage.metrics.structural_similarity`` window (odd; shrunk to the
        largest odd size that fits a smaller crop).
    ssim_gaussian_weights : bool, default False
        Gaussian-weighted SSIM window (sigma 1.5, MATLAB's ``ssim``) instead
        of scikit-image's default uniform window.
    lom_order : {"sequential", "parallel"}, default "sequential"
        LOM update order (:func:`vsum.flow.match`), for the similarities and
        the flows of step 6.
    flow_fill : {"fgs", "nearest"}, default "fgs"
        Fill of the dense flow of step 6 (:func:`vsum.flow.dense_flow`).
    """

    valid_coverage: float = 0.75
    redundancy_overlap: float = 0.5
    redundancy_area_ratio: float = 2.0
    redundancy_topk: int = 100
    preference_factor: float = 1.3
    damping: float = 0.9
    max_iter: int = 1000
    convergence_iter: int = 100
    random_state: int = 0
    max_members: int = 10
    cluster_keep_factor: float = 0.9
    member_ssim_fraction: float = 0.6
    ssim_win_size: int = 7
    ssim_gaussian_weights: bool = False
    lom_order: str = "sequential"
    flow_fill: str = "fgs"

    def __post_init__(self):
        def need(ok: bool, what: str):
            if not ok:
                raise ValueError(f"SummaryConfig: {what}")

        num = (int, float, np.integer, np.floating)
        for name in ("valid_coverage", "redundancy_overlap", "member_ssim_fraction"):
            v = getattr(self, name)
            need(isinstance(v, num) and not isinstance(v, bool) and 0.0 <= v <= 1.0,
                 f"{name} must be a number in [0, 1]; got {v!r}")
        for name in ("redundancy_area_ratio", "preference_factor", "cluster_keep_factor"):
            v = getattr(self, name)
            need(isinstance(v, num) and not isinstance(v, bool) and np.isfinite(v) and v >= 0,
                 f"{name} must be a finite number >= 0; got {v!r}")
        need(isinstance(self.damping, num) and 0.5 <= self.damping < 1.0,
             f"damping must be in [0.5, 1); got {self.damping!r}")
        for name in ("redundancy_topk", "max_iter", "convergence_iter", "max_members"):
            v = getattr(self, name)
            need(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1,
                 f"{name} must be an integer >= 1; got {v!r}")
        need(isinstance(self.random_state, (int, np.integer)) and not isinstance(self.random_state, bool),
             f"random_state must be an integer; got {self.random_state!r}")
        need(isinstance(self.ssim_win_size, (int, np.integer)) and self.ssim_win_size >= 3
             and self.ssim_win_size % 2 == 1, f"ssim_win_size must be an odd integer >= 3; got {self.ssim_win_size!r}")
        need(self.lom_order in ("sequential", "parallel"),
             f"lom_order must be 'sequential' or 'parallel'; got {self.lom_order!r}")
        need(self.flow_fill in ("fgs", "nearest"), f"flow_fill must be 'fgs' or 'nearest'; got {self.flow_fill!r}")

    def to_dict(self) -> dict:
        """The configuration as a JSON-serialisable dict."""
        return asdict(self)


# ---------------------------------------------------------------------------
# steps 1-2: valid proposals, redundancy pruning
# ---------------------------------------------------------------------------


def valid_proposals(mask, boxes, threshold: float = 0.75) -> np.ndarray:
    """Step 1: proposals whose box is mostly salient.

    Parameters
    ----------
    mask : (H, W) array-like of bool or int
        Binary saliency mask of the image (``saliency > 0.5``), at the
        resolution of the boxes.
    boxes : (n, 4) array-like of int
        Proposals ``(x1, y1, x2, y2)``, inclusive pixel corners.
    threshold : float, default 0.75
        ``SummaryConfig.valid_coverage``.

    Returns
    -------
    valid : (n,) ndarray of bool
        ``coverage > threshold`` (strictly more than), with
        :func:`vsum.boxes.coverage` (box pixels outside the image count as not
        salient).

    Raises
    ------
    ValueError
        Bad mask or boxes (see :func:`vsum.boxes.coverage`).
    """
    return coverage(mask, boxes) > np.float32(threshold)


def pruning_scores(topk_scores, topk_image=None) -> np.ndarray:
    """Pruning score of proposals: mean of their top-k LOM scores.

    Parameters
    ----------
    topk_scores : (r, k) array-like of float
        Per proposal its k best LOM confidences against all proposals of all
        other images (``AllPairsResult.topk_scores[i]``).
    topk_image : (r, k) array-like of int, optional
        The image of each score (``AllPairsResult.topk_image[i]``); entries
        with image -1 are padding (fewer than k candidates exist) and are left
        out of the mean.

    Returns
    -------
    score : (r,) ndarray of float64
        Mean of the real top-k entries (0 when a row has none).
    """
    s = np.asarray(topk_scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"topk_scores must be 2-D (r, k); got shape {s.shape}")
    real = np.ones(s.shape, bool) if topk_image is None else np.asarray(topk_image) >= 0
    if real.shape != s.shape:
        raise ValueError(f"topk_image must have the shape of topk_scores {s.shape}; got {real.shape}")
    count = real.sum(axis=1)
    total = np.where(real, s, 0.0).sum(axis=1)
    return np.divide(total, count, out=np.zeros(len(s)), where=count > 0)


def prune_redundant(boxes, valid, scores, overlap: float = 0.5, area_ratio: float = 2.0) -> np.ndarray:
    """Step 2: greedy redundancy pruning of one image's valid proposals.

    Parameters
    ----------
    boxes : (n, 4) array-like of int
        All proposals of the image, inclusive corners.
    valid : (n,) array-like of bool
        Step 1's flags; only valid proposals are candidates.
    scores : (n,) array-like of float
        Pruning score of each proposal (:func:`pruning_scores`); only the
        entries of valid proposals are read.
    overlap : float, default 0.5
        ``SummaryConfig.redundancy_overlap``.
    area_ratio : float, default 2.0
        ``SummaryConfig.redundancy_area_ratio``.

    Returns
    -------
    kept : (m,) ndarray of int64
        Indices (rows of ``boxes``) of the kept proposals, ascending.

    Raises
    ------
    ValueError
        Bad boxes, or ``valid`` / ``scores`` not of length n, or a NaN score
        of a valid proposal.

    Notes
    -----
    Two proposals ``a, b`` are redundant when ``|a n b| / min(|a|, |b|) >=
    overlap`` (:func:`vsum.boxes.overlap_min`, pixel counts) and
    ``max(|a|, |b|) < area_ratio * min(|a|, |b|)``.  Greedy order: the valid
    proposals are visited by score, descending (equal scores: smaller index
    first); a proposal is kept unless it is redundant with a proposal kept
    before it.  So of every redundant group the best-scored one survives, and
    a proposal pruned by a better one never prunes another.
    """
    b = as_boxes(boxes, "boxes")
    check_not_degenerate(b, "boxes")
    n = len(b)
    v = np.asarray(valid)
    if v.shape != (n,) or v.dtype != bool:
        raise ValueError(f"valid must be a ({n},) bool array; got {v.dtype} {v.shape}")
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (n,):
        raise ValueError(f"scores must have shape ({n},); got {s.shape}")
    cand = np.flatnonzero(v)
    if np.isnan(s[cand]).any():
        raise ValueError("scores of valid proposals must not be NaN")
    if len(cand) == 0:
        return np.zeros(0, np.int64)
    order = cand[np.lexsort((cand, -s[cand]))]
    ov = overlap_min(b[order], b[order])
    wh = b[order, 2:].astype(np.int64) - b[order, :2] + 1
    area = wh[:, 0] * wh[:, 1]
    small = np.minimum(area[:, None], area[None, :]).astype(np.float64)
    large = np.maximum(area[:, None], area[None, :]).astype(np.float64)
    redundant = (ov >= np.float32(overlap)) & (large < area_ratio * small)
    keep = np.zeros(len(order), bool)
    for t in range(len(order)):
        keep[t] = not redundant[t, :t][keep[:t]].any()
    return np.sort(order[keep]).astype(np.int64)


# ---------------------------------------------------------------------------
# steps 3-4: similarity matrix, affinity propagation
# ---------------------------------------------------------------------------


def similarity_matrix(pairs, kept) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 3: LOM similarity of every pair of kept proposals of all images.

    Parameters
    ----------
    pairs : vsum.pairs.AllPairsResult
        From :func:`vsum.pairs.all_pairs` with ``blocks=True`` and the
        diagonal pairs, whose ``rows`` include every kept proposal (e.g. the
        valid ones).
    kept : list of N 1-D int arrays
        Kept proposals of each image (rows of its boxes), a subset of
        ``pairs.rows[i]``.

    Returns
    -------
    S : (R, R) ndarray of float32, ``R = sum_i len(kept[i])``
        ``S[p, q] = LOM_ij(a, b)`` for ``p = (i, a)``, ``q = (j, b)``; for
        ``i > j`` the transpose ``LOM_ji(b, a)``; the blocks ``i = j`` are
        each image against itself.  Proposals are ordered by image, then by
        their order in ``kept[i]``.
    image : (R,) ndarray of int64
        Image of each row.
    index : (R,) ndarray of int64
        Proposal index (row of that image's boxes) of each row.

    Raises
    ------
    ValueError
        No blocks, a missing ``(i, j)`` block, or a kept proposal not among
        ``pairs.rows[i]``.
    """
    if pairs.blocks is None:
        raise ValueError("similarity_matrix needs the blocks: call all_pairs(..., blocks=True)")
    n_img = pairs.n_images
    if len(kept) != n_img:
        raise ValueError(f"kept must have one entry per image ({n_img}); got {len(kept)}")
    pos = []
    for i in range(n_img):
        rows = np.asarray(pairs.rows[i], np.int64)
        k = np.asarray(kept[i], np.int64).reshape(-1)
        lookup = np.full(int(pairs.sizes[i]), -1, np.int64)
        lookup[rows] = np.arange(len(rows))
        bad = (k < 0) | (k >= len(lookup))
        where = np.full(len(k), -1, np.int64)
        where[~bad] = lookup[k[~bad]]
        if (where < 0).any():
            x = int(k[np.flatnonzero(where < 0)[0]])
            raise ValueError(f"kept[{i}] holds proposal {x}, which is not among the rows all_pairs kept for image {i}")
        pos.append(where.astype(np.int64))
    sizes = [len(p) for p in pos]
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    s = np.zeros((off[-1], off[-1]), np.float32)
    for i in range(n_img):
        for j in range(i, n_img):
            if not sizes[i] or not sizes[j]:
                continue
            if (i, j) not in pairs.blocks:
                raise ValueError(f"all_pairs result lacks block ({i}, {j}) (computed with diagonal=False?)")
            blk = pairs.blocks[(i, j)][np.ix_(pos[i], pos[j])]
            s[off[i]:off[i + 1], off[j]:off[j + 1]] = blk
            if i != j:
                s[off[j]:off[j + 1], off[i]:off[i + 1]] = blk.T
    image = np.repeat(np.arange(n_img, dtype=np.int64), sizes)
    index = np.concatenate([np.asarray(k, np.int64).reshape(-1) for k in kept]) if n_img else np.zeros(0, np.int64)
    return s, image, index


@dataclass(eq=False)
class ClusterResult:
    """Outcome of :func:`cluster`.

    Attributes
    ----------
    labels : (R,) ndarray of int64
        Cluster of each proposal, ``0 .. K - 1``; all -1 when no cluster was
        found.
    exemplars : (K,) ndarray of int64
        Row of S of each cluster's exemplar (``labels[exemplars[k]] == k``).
    preference : float
        The preference used, ``preference_factor * median(S - M)``.
    offset : float
        ``M``, the largest off-diagonal entry of S.
    converged : bool
        Whether affinity propagation converged (True for the degenerate
        cases solved without it).
    n_iter : int
        Iterations run (0 for the degenerate cases).
    note : str or None
        Why the result is degenerate or empty (None for a normal run).
    """

    labels: np.ndarray
    exemplars: np.ndarray
    preference: float
    offset: float
    converged: bool
    n_iter: int
    note: str | None = None

    @property
    def n_clusters(self) -> int:
        """K, the number of clusters."""
        return len(self.exemplars)


def _off_diagonal(s: np.ndarray) -> np.ndarray:
    return s[~np.eye(len(s), dtype=bool)]


def cluster(S, config: SummaryConfig | None = None) -> ClusterResult:
    """Step 4: affinity propagation on the similarity matrix.

    Parameters
    ----------
    S : (R, R) array-like of float
        Similarity matrix (:func:`similarity_matrix`), finite; need not be
        symmetric (``S[i, k]``: how well ``k`` suits as exemplar of ``i``).
        The diagonal is ignored.
    config : SummaryConfig, optional
        ``preference_factor``, ``damping``, ``max_iter``, ``convergence_iter``,
        ``random_state``.

    Returns
    -------
    ClusterResult
        Labels, exemplars and the preference used.

    Raises
    ------
    ValueError
        ``S`` not square, empty, or not finite.

    Notes
    -----
    ``M`` is the largest off-diagonal entry, the median is over the
    off-diagonal entries of ``S - M`` (the diagonal, a proposal's match with
    itself, is far above every cross score and would swamp both), and
    ``sklearn.cluster.AffinityPropagation(affinity="precomputed", damping,
    max_iter, convergence_iter, preference, random_state)`` runs on ``S - M``
    in float64.  Degenerate cases, solved without it: ``R = 1`` (one cluster);
    all off-diagonal entries equal (one cluster, exemplar 0, since the
    preference then equals every similarity).  When affinity propagation does
    not converge scikit-learn returns no exemplar (labels -1): the result then
    has ``n_clusters == 0``, ``converged=False`` and a ``note``.
    """
    from sklearn.cluster import AffinityPropagation
    from sklearn.exceptions import ConvergenceWarning

    cfg = config or SummaryConfig()
    s = np.asarray(S, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] == 0:
        raise ValueError(f"S must be a non-empty square (R, R) matrix; got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("S must be finite")
    r = len(s)
    if r == 1:
        return ClusterResult(np.zeros(1, np.int64), np.zeros(1, np.int64), 0.0, float(s[0, 0]), True, 0,
                             "a single proposal: one cluster")
    off = _off_diagonal(s)
    m = float(off.max())
    shifted = s - m
    pref = float(cfg.preference_factor * np.median(off - m))
    if off.min() == off.max():
        return ClusterResult(np.zeros(r, np.int64), np.zeros(1, np.int64), pref, m, True, 0,
                             "all similarities are equal: one cluster")
    np.fill_diagonal(shifted, pref)
    ap = AffinityPropagation(affinity="precomputed", damping=float(cfg.damping), max_iter=int(cfg.max_iter),
                             convergence_iter=int(cfg.convergence_iter), preference=pref,
                             random_state=int(cfg.random_state))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ap.fit(shifted)
    not_converged = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    centres = np.asarray(ap.cluster_centers_indices_, np.int64).reshape(-1)
    labels = np.asarray(ap.labels_, np.int64)
    n_iter = int(ap.n_iter_)
    if len(centres) == 0 or (labels < 0).any():
        return ClusterResult(np.full(r, -1, np.int64), np.zeros(0, np.int64), pref, m, False, n_iter,
                             f"affinity propagation did not converge in {cfg.max_iter} iterations "
                             f"(damping {cfg.damping}): no cluster")
    note = f"affinity propagation did not converge in {cfg.max_iter} iterations; its last labels are used" \
        if not_converged else None
    return ClusterResult(labels, centres, pref, m, not not_converged, n_iter, note)


# ---------------------------------------------------------------------------
# step 5: members
# ---------------------------------------------------------------------------


def cluster_members(S, labels, image, exemplar: int, max_members: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Step 5: the members shown for one cluster.

    Parameters
    ----------
    S : (R, R) array-like of float
        Similarity matrix the clustering ran on.
    labels : (R,) array-like of int
        Cluster of each proposal (:class:`ClusterResult`).
    image : (R,) array-like of int
        Image of each proposal.
    exemplar : int
        Row of S of the cluster's exemplar; its cluster is ``labels[exemplar]``.
    max_members : int, default 10
        Members kept, the exemplar included.

    Returns
    -------
    members : (m,) ndarray of int64
        Rows of S, the exemplar first, then by similarity to the exemplar,
        descending (equal: smaller row first); ``1 <= m <= max_members``, at
        most one per image.
    similarity : (m,) ndarray of float64
        ``S[member, exemplar]`` of each member (the exemplar's own entry is
        its diagonal value).

    Notes
    -----
    The proposals of the exemplar's cluster other than the exemplar are
    filtered: members of the exemplar's image are dropped; of each other image
    only the member most similar to the exemplar stays.  "Similarity to the
    exemplar" is ``S[member, exemplar]``, the direction affinity propagation
    uses (``S[i, k]``: how well ``k`` suits as exemplar of ``i``).
    """
    s = np.asarray(S, dtype=np.float64)
    lab = np.asarray(labels, np.int64)
    img = np.asarray(image, np.int64)
    r = len(lab)
    if s.shape != (r, r) or img.shape != (r,):
        raise ValueError(f"S must be ({r}, {r}) and image ({r},) like labels; got {s.shape} and {img.shape}")
    if not 0 <= int(exemplar) < r:
        raise ValueError(f"exemplar {exemplar} out of range for {r} proposals")
    if isinstance(max_members, bool) or int(max_members) < 1:
        raise ValueError(f"max_members must be >= 1; got {max_members!r}")
    e = int(exemplar)
    cand = np.flatnonzero((lab == lab[e]) & (img != img[e]))
    sim = s[cand, e]
    order = cand[np.lexsort((cand, -sim))]
    _, first = np.unique(img[order], return_index=True)  # the most similar of each image
    best = order[np.sort(first)]
    members = np.concatenate([[e], best])[: int(max_members)].astype(np.int64)
    return members, s[members, e]


# ---------------------------------------------------------------------------
# step 6: member SSIM, cluster quality, selection
# ---------------------------------------------------------------------------


def to_grey(image) -> np.ndarray:
    """Grey value of an image: ``0.2989 R + 0.5870 G + 0.1140 B`` (MATLAB ``rgb2gray``).

    Parameters
    ----------
    image : (H, W, 3) or (H, W) array-like, 0-255 scale

    Returns
    -------
    grey : (H, W) ndarray of float64, 0-255 scale
    """
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 2:
        return a
    if a.ndim == 3 and a.shape[2] == 1:
        return a[:, :, 0]
    if a.ndim == 3 and a.shape[2] in (3, 4):
        return a[:, :, 0] * 0.2989 + a[:, :, 1] * 0.5870 + a[:, :, 2] * 0.1140
    raise ValueError(f"image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {a.shape}")


def _crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in box)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w - 1), min(y2, h - 1)
    if x2 < x1 or y2 < y1:
        raise ValueError(f"box {box.tolist()} lies outside the {h} x {w} image")
    return image[y1:y2 + 1, x1:x2 + 1]


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


def member_ssim(warped, box, *, win_size: int = 7, gaussian_weights: bool = False) -> np.ndarray:
    """SSIM of every pair of members' exemplar-box crops (step 6).

    Parameters
    ----------
    warped : sequence of m images, (H, W, 3) or (H, W), 0-255 scale
        Each member's image warped onto the exemplar image's grid (the
        exemplar's own image unchanged); all of the exemplar image's size.
    box : (4,) array-like of int
        The exemplar's box ``(x1, y1, x2, y2)``, inclusive corners, in the
        exemplar image (clipped to it).
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
        Values lie in ``[-1, 1]``.

    Raises
    ------
    ValueError
        Images of different (H, W), an empty list, or a box outside the image.

    Notes
    -----
    Since every warped image lies on the exemplar grid, the crops already have
    the exemplar crop's size (the "resize to the exemplar crop size" of the
    method is the identity here).  Crops thinner than 3 px use one window
    covering the crop.
    """
    if len(warped) == 0:
        raise ValueError("member_ssim needs at least one image")
    b = as_boxes(np.asarray(box).reshape(1, 4), "box")
    check_not_degenerate(b, "box")
    greys = [to_grey(w) for w in warped]
    shape = greys[0].shape
    for k, g in enumerate(greys):
        if g.shape != shape:
            raise ValueError(f"warped images must all be {shape[0]} x {shape[1]} (the exemplar image); "
                             f"image {k} is {g.shape[0]} x {g.shape[1]}")
    crops = [_crop(g, b[0]) for g in greys]
    m = len(crops)
    out = np.eye(m)
    for p in range(m):
        for q in range(p + 1, m):
            out[p, q] = out[q, p] = _ssim(crops[p], crops[q], int(win_size), bool(gaussian_weights))
    return out


def cluster_quality(images, members, image, index, boxes, warp_member: Callable, *,
                    win_size: int = 7, gaussian_weights: bool = False) -> np.ndarray:
    """Step 6 for one cluster: SSIM of its members after warping onto the exemplar.

    Parameters
    ----------
    images : sequence of N images, (H_i, W_i, 3) uint8
        The class's images (only the exemplar's is read here).
    members : (m,) array-like of int
        Rows of S of the members, the exemplar first (:func:`cluster_members`).
    image, index : (R,) array-like of int
        Image and proposal index of each row of S.
    boxes : sequence of N (n_i, 4) arrays
        Proposals of each image.
    warp_member : callable
        ``warp_member(exemplar_image, member_image) -> (H_e, W_e[, C])`` the
        member's image warped onto the exemplar image's grid (dense flow
        exemplar image -> member image, then :func:`vsum.flow.warp`).  Called
        once per member other than the exemplar.
    win_size, gaussian_weights
        SSIM settings, see :func:`member_ssim`.

    Returns
    -------
    ssim : (m, m) ndarray of float64
        :func:`member_ssim` of the exemplar-box crops; the cluster score is
        the median of its off-diagonal entries.
    """
    mem = np.asarray(members, np.int64).reshape(-1)
    img = np.asarray(image, np.int64)
    idx = np.asarray(index, np.int64)
    if len(mem) == 0:
        raise ValueError("a cluster needs at least one member (its exemplar)")
    e_img = int(img[mem[0]])
    e_box = np.asarray(boxes[e_img])[int(idx[mem[0]])]
    exemplar_image = np.asarray(images[e_img])
    warped = [exemplar_image]
    for p in mem[1:]:
        w = np.asarray(warp_member(e_img, int(img[p])))
        if w.shape[:2] != exemplar_image.shape[:2]:
            raise ValueError(f"warp_member({e_img}, {int(img[p])}) returned shape {w.shape}; "
                             f"expected the exemplar image's {exemplar_image.shape[:2]}")
        warped.append(w)
    return member_ssim(warped, e_box, win_size=win_size, gaussian_weights=gaussian_weights)


def cluster_score(ssim) -> float:
    """Median of the off-diagonal entries of a member SSIM matrix (NaN for fewer than 2 members)."""
    s = np.asarray(ssim, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"ssim must be a square matrix; got shape {s.shape}")
    if len(s) < 2:
        return float("nan")
    return float(np.median(_off_diagonal(s)))


def select_summaries(cluster_scores, member_ssims, config: SummaryConfig | None = None):
    """Step 6 rules: which clusters, and which of their members, are kept.

    Parameters
    ----------
    cluster_scores : (K,) array-like of float
        Score of each cluster (:func:`cluster_score`); NaN for a cluster with
        fewer than 2 members (never kept, left out of the reference).
    member_ssims : sequence of K (m_k, m_k) arrays
        Each cluster's member SSIM matrix.
    config : SummaryConfig, optional
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
    cfg = config or SummaryConfig()
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


# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------


@dataclass(eq=False)
class Cluster:
    """One cluster of proposals after steps 5-6.

    Attributes
    ----------
    exemplar_image, exemplar_index : int
        The exemplar proposal (image, row of that image's boxes).
    size : int
        Proposals affinity propagation put in the cluster (before step 5).
    images, indices : (m,) ndarray of int64
        The members (exemplar first): image and proposal index.
    boxes : (m, 4) ndarray of int32
        Their boxes, in their own image's pixels.
    similarity : (m,) ndarray of float64
        ``S[member, exemplar]`` (the exemplar's own: its self-match score).
    ssim : (m, m) ndarray of float64
        SSIM of the members' exemplar-box crops after warping.
    score : float
        Median off-diagonal SSIM (NaN for a single member).
    kept : bool
        Cluster rule: ``score >= cluster_keep_factor * reference``.
    member_kept : (m,) ndarray of bool
        Member rule (all False when the cluster is not kept).
    """

    exemplar_image: int
    exemplar_index: int
    size: int
    images: np.ndarray
    indices: np.ndarray
    boxes: np.ndarray
    similarity: np.ndarray
    ssim: np.ndarray
    score: float
    kept: bool = False
    member_kept: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def to_dict(self) -> dict:
        """JSON-serialisable form (lists and floats; NaN becomes None)."""
        return {
            "exemplar": [self.exemplar_image, self.exemplar_index],
            "size": self.size,
            "members": [
                {"image": int(i), "index": int(x), "box": [int(v) for v in b], "similarity": _num(s),
                 "kept": bool(k)}
                for i, x, b, s, k in zip(self.images, self.indices, self.boxes, self.similarity, self.member_kept)
            ],
            "ssim": [[_num(v) for v in row] for row in self.ssim],
            "score": _num(self.score),
            "kept": bool(self.kept),
        }


def _num(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


@dataclass(eq=False)
class SummaryResult:
    """Outcome of :func:`summarize_class`.

    Attributes
    ----------
    config : SummaryConfig
    n_images : int
    valid : list of N (n_i,) ndarrays of bool
        Step 1 flags per image.
    scores : list of N (n_i,) ndarrays of float64
        Pruning score (mean top-k LOM against the other images) of each valid
        proposal; NaN for the invalid ones.
    kept : list of N (k_i,) ndarrays of int64
        Proposals kept by step 2, per image, ascending.
    clusters : list of Cluster
        Every cluster of step 4 (steps 5-6 applied), in the order of their
        exemplars' rows in S.
    reference : float
        Median cluster score (NaN when no cluster has two members).
    counts : dict of str to int
        ``images``, ``proposals``, ``valid``, ``kept``, ``clusters``,
        ``clusters_scored`` (>= 2 members), ``clusters_kept``, ``summaries``.
    timings : dict of str to float
        Wall seconds of ``"valid"``, ``"pairs"`` (all-pairs LOM), ``"prune"``,
        ``"cluster"``, ``"quality"`` (flows, warps, SSIM).
    ap_converged : bool or None
        Whether affinity propagation converged (None when it did not run).
    ap_iterations : int
    preference : float or None
        Affinity propagation preference used.
    reason : str or None
        Why there are no summaries (None when there are some).
    notes : list of str
        Degenerate cases met on the way (e.g. non-convergence).
    """

    config: SummaryConfig
    n_images: int
    valid: list
    scores: list
    kept: list
    clusters: list = field(default_factory=list)
    reference: float = float("nan")
    counts: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    ap_converged: bool | None = None
    ap_iterations: int = 0
    preference: float | None = None
    reason: str | None = None
    notes: list = field(default_factory=list)

    @property
    def summaries(self) -> list:
        """The visual summaries: kept clusters with at least one kept member."""
        return [c for c in self.clusters if c.kept and c.member_kept.any()]

    def to_dict(self) -> dict:
        """JSON-serialisable form (for ``result.json``); NaN becomes None."""
        return {
            "config": self.config.to_dict(),
            "n_images": self.n_images,
            "counts": dict(self.counts),
            "timings": dict(self.timings),
            "valid": [np.flatnonzero(v).tolist() for v in self.valid],
            "kept": [k.tolist() for k in self.kept],
            "reference": _num(self.reference),
            "ap_converged": self.ap_converged,
            "ap_iterations": self.ap_iterations,
            "preference": None if self.preference is None else _num(self.preference),
            "clusters": [c.to_dict() for c in self.clusters],
            "summaries": [k for k, c in enumerate(self.clusters) if c.kept and c.member_kept.any()],
            "reason": self.reason,
            "notes": list(self.notes),
        }


def _check_inputs(images, masks, boxes, descriptors):
    lists = {"images": images, "masks": masks, "boxes": boxes, "descriptors": descriptors}
    for name, x in lists.items():
        if isinstance(x, np.ndarray) or not isinstance(x, Sequence):
            raise ValueError(f"{name} must be a list with one entry per image; got {type(x).__name__}")
    n = len(images)
    for name, x in lists.items():
        if len(x) != n:
            raise ValueError(f"images, masks, boxes and descriptors need one entry per image; "
                             f"{name} has {len(x)}, images has {n}")
    imgs, msks, bxs = [], [], []
    for i in range(n):
        im = np.asarray(images[i])
        if im.ndim not in (2, 3) or im.shape[0] == 0 or im.shape[1] == 0 or im.dtype.kind not in "biuf":
            raise ValueError(f"images[{i}] must be a non-empty numeric (H, W, 3) or (H, W) image; "
                             f"got {im.dtype} {im.shape}")
        m = as_mask(masks[i], f"masks[{i}]")
        if m.shape != im.shape[:2]:
            raise ValueError(f"masks[{i}] is {m.shape[0]} x {m.shape[1]} but images[{i}] is "
                             f"{im.shape[0]} x {im.shape[1]}: pass the binary mask at the image's resolution")
        b = as_boxes(boxes[i], f"boxes[{i}]")
        check_not_degenerate(b, f"boxes[{i}]")
        if len(np.asarray(descriptors[i])) != len(b):
            raise ValueError(f"descriptors[{i}] has {len(np.asarray(descriptors[i]))} rows but boxes[{i}] "
                             f"has {len(b)} boxes")
        imgs.append(im)
        msks.append(m)
        bxs.append(b)
    return imgs, msks, bxs


class _Warper:
    """``warp_member(e, m)``: image m warped onto image e by the LOM dense flow e -> m.

    The cache holds the warps onto one exemplar image at a time (and that
    image's whitened descriptors): :func:`summarize_class` visits the
    clusters grouped by exemplar image and :meth:`prefetch` computes the
    group's warps on ``workers`` threads (the compiled matcher and fill
    release the GIL; results do not depend on the thread count).
    """

    def __init__(self, images, boxes, descriptors, config: SummaryConfig, workers: int = 1):
        self.images, self.boxes, self.descriptors, self.config = images, boxes, descriptors, config
        self.workers = max(1, int(workers))
        self.exemplar: int | None = None
        self.whitened = None
        self.cache: dict = {}

    def _select(self, e: int) -> None:
        if self.exemplar != e:
            from .features import whiten

            self.cache.clear()
            self.exemplar = e
            self.whitened = whiten(self.descriptors[e])

    def _compute(self, e: int, m: int) -> np.ndarray:
        from .features import _as_descriptors, whitened_scores
        from .flow import dense_flow, match, warp

        w, bias = self.whitened
        app = whitened_scores(w, bias, _as_descriptors(self.descriptors[m], f"descriptors[{m}]"))
        conf = match(self.boxes[e], self.boxes[m], app, "lom", order=self.config.lom_order)
        vx, vy = dense_flow(self.images[e], self.images[m], self.boxes[e], self.boxes[m], conf,
                            fill=self.config.flow_fill)
        return warp(self.images[m], vx, vy)

    def prefetch(self, e: int, members) -> None:
        """Compute the warps of images ``members`` onto image ``e`` (in parallel)."""
        self._select(e)
        todo = [int(m) for m in dict.fromkeys(members) if (e, int(m)) not in self.cache]
        if self.workers > 1 and len(todo) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(self.workers, len(todo))) as pool:
                warped = list(pool.map(lambda m: self._compute(e, m), todo))
        else:
            warped = [self._compute(e, m) for m in todo]
        self.cache.update({(e, m): w for m, w in zip(todo, warped)})

    def __call__(self, e: int, m: int) -> np.ndarray:
        self._select(e)
        if (e, m) not in self.cache:
            self.cache[(e, m)] = self._compute(e, m)
        return self.cache[(e, m)]


class _CropRecorder:
    """Wraps ``warp_member``; keeps each warped member's crop at the current exemplar box (for the strips)."""

    def __init__(self, warp):
        self.warp = warp
        self.box = None
        self.crops: list = []

    def __call__(self, e: int, m: int) -> np.ndarray:
        warped = self.warp(e, m)
        self.crops.append(np.ascontiguousarray(_crop(np.asarray(warped), self.box)))
        return warped


def summarize_class(images, masks, boxes, descriptors, config: SummaryConfig | None = None, *,
                    warp_member: Callable | None = None, progress: bool = False, pairs=None,
                    crops: list | None = None) -> SummaryResult:
    """Stage 5 for the images of one class: masks + proposals -> visual summaries.

    Parameters
    ----------
    images : list of N (H_i, W_i, 3) uint8 arrays
        The class's images (RGB, 0-255), each at the resolution of its mask
        and boxes.
    masks : list of N (H_i, W_i) bool arrays
        Binary saliency masks (``saliency > 0.5``, stage 1).
    boxes : list of N (n_i, 4) int arrays
        Proposals of each image (:func:`vsum.proposals.selective_search`),
        inclusive corners.
    descriptors : list of N (n_i, 1984) float arrays
        Their descriptors (:func:`vsum.features.describe`).
    config : SummaryConfig, optional
        Parameters (published defaults).
    warp_member : callable, optional
        ``warp_member(e, m) -> image m on image e's grid``; default: the LOM
        dense flow ``e -> m`` over all proposals of both images
        (:func:`vsum.flow.match` with ``e`` as A, :func:`vsum.flow.dense_flow`,
        :func:`vsum.flow.warp`), computed once per image pair.
    progress : bool, default False
        Progress bars (tqdm) for the all-pairs matching.
    pairs : vsum.pairs.AllPairsResult, optional
        A stored stage-4 result to use instead of matching again: it must be
        ``all_pairs(boxes, descriptors, rows=valid, topk=redundancy_topk,
        order=lom_order)`` with blocks, ``valid`` the proposals of step 1
        (the pipeline stores it so that a resumed run skips stage 4).
    crops : list, optional
        When given, receives one list per cluster (in ``result.clusters``
        order): the exemplar's crop and then each other member's image warped
        onto the exemplar image and cut to the exemplar's box, (h, w, 3) uint8.

    Returns
    -------
    SummaryResult
        Counts, per-image valid/kept proposals, every cluster with its
        members, similarities, SSIMs and kept flags, and ``summaries``.  When
        no summary can be made, ``reason`` says why and the later fields are
        empty: fewer than 2 images; no valid proposal; valid proposals in only
        one image; affinity propagation without a cluster; no cluster with
        members from 2 images; every cluster rejected by the rules.

    Raises
    ------
    ValueError
        Malformed input: lists of different lengths, a mask not of its
        image's size, bad boxes or descriptors, a bad config.

    Notes
    -----
    All-pairs LOM runs once (:func:`vsum.pairs.all_pairs`, ``rows`` = valid
    proposals, ``topk = redundancy_topk``, diagonal pairs included): its
    top-k lists give the pruning scores (against **all** proposals of the
    other images) and its blocks, restricted to the kept proposals, the
    similarity matrix.
    """
    from .pairs import all_pairs

    cfg = config or SummaryConfig()
    if not isinstance(cfg, SummaryConfig):
        raise ValueError(f"config must be a SummaryConfig; got {type(cfg).__name__}")
    imgs, msks, bxs = _check_inputs(images, masks, boxes, descriptors)
    n = len(imgs)
    timings: dict = {}

    t0 = time.perf_counter()
    valid = [valid_proposals(m, b, cfg.valid_coverage) for m, b in zip(msks, bxs)]
    timings["valid"] = time.perf_counter() - t0
    counts = {"images": n, "proposals": int(sum(len(b) for b in bxs)), "valid": int(sum(v.sum() for v in valid)),
              "kept": 0, "clusters": 0, "clusters_scored": 0, "clusters_kept": 0, "summaries": 0}
    result = SummaryResult(cfg, n, valid, [np.full(len(b), np.nan) for b in bxs],
                           [np.zeros(0, np.int64) for _ in range(n)], counts=counts, timings=timings)
    if n < 2:
        result.reason = f"stage 5 needs at least 2 images; got {n}"
        return result
    if counts["valid"] == 0:
        result.reason = (f"no valid proposal: no box of any image is more than {cfg.valid_coverage:.0%} "
                         f"inside its mask")
        return result

    t0 = time.perf_counter()
    if pairs is None:
        pairs = all_pairs(bxs, list(descriptors), rows=valid, topk=cfg.redundancy_topk, order=cfg.lom_order,
                          progress=progress)
        timings["pairs"] = time.perf_counter() - t0
    else:
        if len(pairs.rows) != n or any(not np.array_equal(r, np.flatnonzero(v)) for r, v in zip(pairs.rows, valid)):
            raise ValueError("pairs must be all_pairs(..., rows=<the valid proposals of step 1>) of these images")
        timings["pairs"] = float(pairs.seconds)

    t0 = time.perf_counter()
    for i in range(n):
        result.scores[i][pairs.rows[i]] = pruning_scores(pairs.topk_scores[i], pairs.topk_image[i])
        result.kept[i] = prune_redundant(bxs[i], valid[i], np.nan_to_num(result.scores[i]),
                                         cfg.redundancy_overlap, cfg.redundancy_area_ratio)
    counts["kept"] = int(sum(len(k) for k in result.kept))
    timings["prune"] = time.perf_counter() - t0
    if sum(len(k) > 0 for k in result.kept) < 2:
        result.reason = "valid proposals in only one image: no cross-image cluster possible"
        return result

    t0 = time.perf_counter()
    s, image, index = similarity_matrix(pairs, result.kept)
    del pairs
    clus = cluster(s, cfg)
    timings["cluster"] = time.perf_counter() - t0
    result.ap_converged, result.ap_iterations, result.preference = clus.converged, clus.n_iter, clus.preference
    if clus.note:
        result.notes.append(clus.note)
    counts["clusters"] = clus.n_clusters
    if clus.n_clusters == 0:
        result.reason = clus.note
        return result

    t0 = time.perf_counter()
    warper = None
    if warp_member is None:
        from .boxes import get_num_threads

        warper = _Warper(imgs, bxs, list(descriptors), cfg, workers=get_num_threads())
    warp_fn = warper if warper is not None else warp_member
    recorder = _CropRecorder(warp_fn) if crops is not None else None
    exemplars = np.sort(clus.exemplars)
    chosen = [cluster_members(s, clus.labels, image, int(e), cfg.max_members) for e in exemplars]
    ssims, scores = [], []
    for e, (members, sim) in zip(exemplars, chosen):
        if warper is not None and warper.exemplar != image[e]:
            group = [image[mm[1:]] for ee, (mm, _) in zip(exemplars, chosen) if image[ee] == image[e]]
            warper.prefetch(int(image[e]), np.concatenate(group).tolist())
        if recorder is not None:
            e_box = bxs[int(image[e])][int(index[e])]
            recorder.box, recorder.crops = e_box, [np.ascontiguousarray(_crop(np.asarray(imgs[int(image[e])]), e_box))]
        ssim = cluster_quality(imgs, members, image, index, bxs, recorder or warp_fn, win_size=cfg.ssim_win_size,
                               gaussian_weights=cfg.ssim_gaussian_weights)
        if recorder is not None:
            crops.append(recorder.crops)
        ssims.append(ssim)
        scores.append(cluster_score(ssim))
        result.clusters.append(Cluster(
            exemplar_image=int(image[e]), exemplar_index=int(index[e]), size=int((clus.labels == clus.labels[e]).sum()),
            images=image[members], indices=index[members],
            boxes=np.stack([bxs[int(image[p])][int(index[p])] for p in members]).astype(np.int32),
            similarity=sim, ssim=ssim, score=scores[-1]))
    reference, cl_kept, mem_kept = select_summaries(scores, ssims, cfg)
    timings["quality"] = time.perf_counter() - t0
    result.reference = reference
    for c, k, mk in zip(result.clusters, cl_kept, mem_kept):
        c.kept, c.member_kept = bool(k), mk
    counts["clusters_scored"] = int(np.sum(~np.isnan(scores)))
    counts["clusters_kept"] = int(cl_kept.sum())
    counts["summaries"] = len(result.summaries)
    if counts["clusters_scored"] == 0:
        result.reason = "no cluster has members from two images"
    elif counts["summaries"] == 0:
        result.reason = "every cluster was rejected by the SSIM rules"
    return result


class _CallableModule(types.ModuleType):
    """``vsum.summarize(...)`` is the top-level API while ``vsum.summarize`` stays the stage-5 module."""

    def __call__(self, images, model="efficientnet_lite0", target=None, out="run", config=None, **options):
        """Stages 1-5 for one class: :func:`vsum.pipeline.summarize_images` (same parameters)."""
        from .pipeline import summarize_images

        return summarize_images(images, model, target=target, out=out, config=config, **options)


sys.modules[__name__].__class__ = _CallableModule

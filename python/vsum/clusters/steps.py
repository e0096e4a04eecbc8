"""Stage 5, steps 2-5: redundancy pruning, similarity matrix, affinity propagation, members.

Plain functions, NumPy in and out (``docs/method.md``, stage 5).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .._arrays import as_boxes, check_not_degenerate
from ..boxes import overlap_min
from .config import ClusterConfig


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
        ``ClusterConfig.redundancy_overlap``.
    area_ratio : float, default 2.0
        ``ClusterConfig.redundancy_area_ratio``.

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
class AffinityResult:
    """Outcome of :func:`affinity_clusters`.

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


def _off_diagonal_stats(s: np.ndarray) -> tuple[float, float, float]:
    """Max, min and median of ``s - max`` over the off-diagonal entries of a square matrix, without copying them out.

    Parameters
    ----------
    s : (R, R) ndarray of float32 or float64, R >= 2, finite

    Returns
    -------
    m : float
        ``M``, the largest off-diagonal entry.
    low : float
        The smallest off-diagonal entry.
    median : float
        ``np.median(off - M)`` in float64 over the off-diagonal entries
        ``off``, bit for bit: ``x -> float64(x) - M`` is monotone, so the
        order statistics of ``off - M`` are those of ``off`` shifted, and the
        median is formed from them exactly as ``np.median`` forms it (mean of
        the two middle values when the count is even).

    Notes
    -----
    One scratch copy of ``s`` in its own dtype (``4 R^2`` bytes for float32)
    replaces the boolean mask, the off-diagonal copy, its shifted float64
    copy and ``np.median``'s partition copy of the straightforward version.
    """
    r = len(s)
    flat = s.reshape(-1).copy()
    diag = slice(None, None, r + 1)
    flat[diag] = -np.inf
    m = float(flat.max())
    flat[diag] = np.inf  # the R diagonal entries sort last, after every off-diagonal one
    low = float(flat.min())
    n_off = r * r - r
    mid = [n_off // 2] if n_off % 2 else [n_off // 2 - 1, n_off // 2]
    flat.partition(mid)
    middle = flat[mid].astype(np.float64) - m
    del flat
    return m, low, float(np.median(middle))


def affinity_clusters(S, config: ClusterConfig | None = None) -> AffinityResult:
    """Step 4: affinity propagation on the similarity matrix.

    Parameters
    ----------
    S : (R, R) array-like of float
        Similarity matrix (:func:`similarity_matrix`), finite; need not be
        symmetric (``S[i, k]``: how well ``k`` suits as exemplar of ``i``).
        The diagonal is ignored.
    config : ClusterConfig, optional
        ``preference_factor``, ``damping``, ``max_iter``, ``convergence_iter``,
        ``random_state``.

    Returns
    -------
    AffinityResult
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
    in float64.

    Precision and memory: ``S`` itself is read in its own dtype (float32 from
    :func:`similarity_matrix`, never converted as a whole); the statistics use
    one scratch copy of it (:func:`_off_diagonal_stats`).  Affinity
    propagation stays in float64, as scikit-learn runs it: in float32 its
    messages, and so its clusters, would differ from those of the published
    runs.  The one float64 matrix ``S - M`` is built here and handed over
    without a further copy (``copy=False``); scikit-learn then holds three
    more ``R x R`` float64 arrays (availabilities, responsibilities, a
    scratch) and, briefly, two for its tie-breaking noise: about ``48 R^2``
    bytes at the peak, plus the caller's ``S``.  Degenerate cases, solved without it: ``R = 1`` (one cluster);
    all off-diagonal entries equal (one cluster, exemplar 0, since the
    preference then equals every similarity).  When affinity propagation does
    not converge scikit-learn returns no exemplar (labels -1): the result then
    has ``n_clusters == 0``, ``converged=False`` and a ``note``.
    """
    from sklearn.cluster import AffinityPropagation
    from sklearn.exceptions import ConvergenceWarning

    cfg = config or ClusterConfig()
    s = np.asarray(S)
    if s.dtype not in (np.float32, np.float64):
        s = s.astype(np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] == 0:
        raise ValueError(f"S must be a non-empty square (R, R) matrix; got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("S must be finite")
    r = len(s)
    if r == 1:
        return AffinityResult(np.zeros(1, np.int64), np.zeros(1, np.int64), 0.0, float(s[0, 0]), True, 0,
                              "a single proposal: one cluster")
    m, low, median = _off_diagonal_stats(s)
    pref = float(cfg.preference_factor * np.float64(median))
    if low == m:
        return AffinityResult(np.zeros(r, np.int64), np.zeros(1, np.int64), pref, m, True, 0,
                              "all similarities are equal: one cluster")
    shifted = s.astype(np.float64)  # a copy even when s is float64: S is the caller's
    shifted -= m
    np.fill_diagonal(shifted, pref)
    ap = AffinityPropagation(affinity="precomputed", damping=float(cfg.damping), max_iter=int(cfg.max_iter),
                             convergence_iter=int(cfg.convergence_iter), preference=pref,
                             random_state=int(cfg.random_state), copy=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ap.fit(shifted)
    del shifted
    not_converged = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    centres = np.asarray(ap.cluster_centers_indices_, np.int64).reshape(-1)
    labels = np.asarray(ap.labels_, np.int64)
    n_iter = int(ap.n_iter_)
    if len(centres) == 0 or (labels < 0).any():
        return AffinityResult(np.full(r, -1, np.int64), np.zeros(0, np.int64), pref, m, False, n_iter,
                              f"affinity propagation did not converge in {cfg.max_iter} iterations "
                              f"(damping {cfg.damping}): no cluster")
    note = f"affinity propagation did not converge in {cfg.max_iter} iterations; its last labels are used" \
        if not_converged else None
    return AffinityResult(labels, centres, pref, m, not not_converged, n_iter, note)


def cluster_members(S, labels, image, exemplar: int, max_members: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Step 5: the members shown for one cluster.

    Parameters
    ----------
    S : (R, R) array-like of float
        Similarity matrix the clustering ran on.
    labels : (R,) array-like of int
        Cluster of each proposal (:class:`AffinityResult`).
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
    s = np.asarray(S)  # read in its own dtype: only the exemplar's column is converted
    if s.dtype.kind not in "fiub":
        s = s.astype(np.float64)
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
    sim = s[cand, e].astype(np.float64)  # exact for float32: the order is that of the float64 values
    order = cand[np.lexsort((cand, -sim))]
    _, first = np.unique(img[order], return_index=True)  # the most similar of each image
    best = order[np.sort(first)]
    members = np.concatenate([[e], best])[: int(max_members)].astype(np.int64)
    return members, s[members, e].astype(np.float64)

"""Plain NumPy reference of the running top-k merge of the all-pairs driver.

Mirrors ``vsum._core.pairs_topk_merge`` (``csrc/pairs/topk_cpu.cpp``), which
:func:`vsum.pairs.all_pairs` calls twice per pair ``i < j``::

    pairs_topk_merge(conf_ij, rows[i], False, j, scores[i], images[i], indices[i])
    pairs_topk_merge(conf_ij, rows[j], True,  i, scores[j], images[j], indices[j])

Each selected proposal keeps a row of k slots (score float32, image int32,
index int32) sorted best first: higher score first, equal scores by lower
image, then lower index (see ``AllPairsResult.topk_*``).  Empty slots hold
score 0, image -1, index -1 and always form the tail of a row.  The merged
row is the first k of all candidates ever offered in that order, whatever
order they arrive in, so :func:`topk_merge` simply pools the row's filled
slots with the new candidates and sorts them; :func:`topk_lists` does the
same for a whole all-pairs run in one go.

Agreement with the compiled core: exact (no arithmetic, only ordering of the
float32 scores), for finite scores.  Inputs are assumed already validated
(float32 conf, in-range int64 rows, arrays of matching shapes).
"""

from __future__ import annotations

import numpy as np


def _best_first(scores, images, indices) -> np.ndarray:
    """Order of the candidates (1-D arrays), best first: score descending, then image, then index ascending."""
    # np.lexsort sorts by its last key first.  Negating in float64 is exact,
    # and -0.0 == 0.0 there, as in the C++ comparison.
    return np.lexsort((indices, images, -np.asarray(scores, np.float64)))


def topk_merge(conf, rows, transposed: bool, image: int, scores, images, indices) -> None:
    """Offer one confidence matrix's candidates to running top-k lists, in place.

    Parameters
    ----------
    conf : (na, nb) ndarray of float32
        Confidence of the proposals of one image pair.
    rows : (r,) ndarray of int
        ``transposed=False``: list ``s`` gets row ``rows[s]`` of conf (the
        candidates are its nb columns, index = column); ``transposed=True``:
        list ``s`` gets column ``rows[s]`` (candidates = the na rows, index =
        row).
    transposed : bool
        See ``rows``.
    image : int
        Image number given to every candidate (>= 0).
    scores : (r, k) ndarray of float32
    images : (r, k) ndarray of int32
    indices : (r, k) ndarray of int32
        The running lists, updated in place: best first, empty slots
        (index -1, score 0, image -1) at the end.
    """
    conf = np.asarray(conf, np.float32)
    cand = conf.T if transposed else conf  # the candidates of list s: row rows[s] of cand
    k = scores.shape[1]
    ncand = cand.shape[1]
    if ncand == 0:
        return  # nothing offered (the C++ returns early too)
    for s, r in enumerate(np.asarray(rows, np.int64)):
        filled = 0  # the filled prefix, as the C++ counts it
        while filled < k and indices[s, filled] >= 0:
            filled += 1
        pool_s = np.concatenate([scores[s, :filled], cand[r]])
        pool_i = np.concatenate([images[s, :filled], np.full(ncand, image, np.int32)])
        pool_x = np.concatenate([indices[s, :filled], np.arange(ncand, dtype=np.int32)])
        order = _best_first(pool_s, pool_i, pool_x)[:k]
        # Only the first len(order) slots are written (the C++ leaves the padding after them as it is).
        scores[s, : len(order)] = pool_s[order]
        images[s, : len(order)] = pool_i[order]
        indices[s, : len(order)] = pool_x[order]


def topk_lists(confs, rows, k: int):
    """Top-k lists of a whole all-pairs run, built the plain way.

    Parameters
    ----------
    confs : dict of (i, j) -> (n_i, n_j) array-like of float32
        The confidence of every pair ``i < j`` (pairs ``i == j`` and
        ``i > j`` are ignored: ``conf_ji`` is ``conf_ij.T`` by convention).
        Every pair ``i < j`` of the ``N = len(rows)`` images must be present.
    rows : list of N (r_i,) array-likes of int
        The selected proposals of each image.
    k : int
        List length (>= 1).

    Returns
    -------
    scores : list of N (r_i, k) ndarrays of float32
    images : list of N (r_i, k) ndarrays of int32
    indices : list of N (r_i, k) ndarrays of int32
        For ``rows[i][a]``: all proposals of every image ``j != i`` (row
        ``rows[i][a]`` of ``conf_ij`` for ``j > i``, column of ``conf_ji``
        for ``j < i``) sorted by score descending, then image, then index
        ascending, the first k kept; padded with 0 / -1 / -1.
    """
    n = len(rows)
    out_s, out_i, out_x = [], [], []
    for i in range(n):
        sel = np.asarray(rows[i], np.int64)
        parts, image, index = [np.zeros((len(sel), 0), np.float32)], [np.zeros(0, np.int32)], [np.zeros(0, np.int32)]
        for j in range(n):
            if j == i:
                continue
            m = np.asarray(confs[(i, j)], np.float32) if i < j else np.asarray(confs[(j, i)], np.float32).T
            parts.append(m[sel])
            image.append(np.full(m.shape[1], j, np.int32))
            index.append(np.arange(m.shape[1], dtype=np.int32))
        cand_s = np.concatenate(parts, axis=1)  # (r_i, sum_{j != i} n_j)
        cand_i, cand_x = np.concatenate(image), np.concatenate(index)
        top_s = np.zeros((len(sel), k), np.float32)
        top_i = np.full((len(sel), k), -1, np.int32)
        top_x = np.full((len(sel), k), -1, np.int32)
        for a in range(len(sel)):
            order = _best_first(cand_s[a], cand_i, cand_x)[:k]
            got = len(order)
            top_s[a, :got], top_i[a, :got], top_x[a, :got] = cand_s[a, order], cand_i[order], cand_x[order]
        out_s.append(top_s)
        out_i.append(top_i)
        out_x.append(top_x)
    return out_s, out_i, out_x

"""All-pairs proposal matching of N images (stage 4 driver, bounded memory).

:func:`all_pairs` matches every pair ``i <= j`` of N images with
:func:`vsum.flow.match` on the whitened appearance of
:func:`vsum.features.appearance`, streaming over the pairs: it keeps only what
stage 5 needs (the blocks of the proposals the caller selects and, per
selected proposal, its top-k scores against the other images), never the
``N x N x n x n`` tensor.

The running top-k merge (``vsum._core.pairs_topk_merge``) has a NumPy
reference, :mod:`vsum.reference.pairs`.

Importing this module does not import torch.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ._arrays import as_boxes, check_not_degenerate
from ._compiled import _core
from .boxes import get_num_threads
from .features import DEFAULT_RIDGE, _as_descriptors, whiten, whitened_scores
from .flow import METHODS, match

__all__ = ["AllPairsResult", "all_pairs"]


@dataclass(eq=False)
class AllPairsResult:
    """Compact outcome of :func:`all_pairs`.

    Attributes
    ----------
    method : str
        The matcher (``"lom"``, ``"phm"`` or ``"nam"``).
    sizes : (N,) ndarray of int64
        Number of proposals ``n_i`` of each image.
    rows : list of N (r_i,) ndarrays of int64
        The selected proposals of each image (indices into its boxes).
    blocks : dict or None
        ``blocks[(i, j)]`` for every ``i <= j``: ``conf_ij[rows[i]][:, rows[j]]``,
        a ``(r_i, r_j)`` float32 array, ``conf_ij = vsum.flow.match(boxes_i,
        boxes_j, appearance(desc_i, desc_j), method)``.  ``i > j`` is not
        stored: by convention ``conf_ji`` is ``conf_ij.T``.  None when
        ``all_pairs(..., blocks=False)``.
    topk : int
        k, the number of columns of the top-k arrays.
    topk_scores : list of N (r_i, k) ndarrays of float32
        For selected proposal ``rows[i][a]`` of image ``i``: its k best
        confidences against **all** proposals of **every other** image
        ``j != i`` (row ``rows[i][a]`` of ``conf_ij`` for ``j > i``, column
        ``rows[i][a]`` of ``conf_ji`` for ``j < i``), descending; equal scores
        are ordered by image, then by proposal index, ascending.  When fewer
        than k candidates exist (``sum_{j != i} n_j < k``, e.g. N = 1) the
        tail is padding: score 0, image -1, index -1.
    topk_image : list of N (r_i, k) ndarrays of int32
        Image ``j`` of each top-k score (-1 for padding).
    topk_index : list of N (r_i, k) ndarrays of int32
        Proposal index in image ``j`` (row of its boxes) of each top-k score
        (-1 for padding).
    pairs : int
        Pairs matched, ``N (N + 1) / 2`` (``i == j`` included), or
        ``N (N - 1) / 2`` with ``all_pairs(..., diagonal=False)``.
    seconds : float
        Wall time of the whole call.
    timings : dict of str to float
        Wall seconds spent in ``"whiten"`` (once per image), ``"appearance"``
        (BLAS products, bias, clip), ``"match"`` (the compiled matcher,
        including its input checks), ``"topk"`` (the compiled merge),
        ``"blocks"`` (copying the selected blocks) and ``"callback"``
        (``on_pair``).
    """

    method: str
    sizes: np.ndarray
    rows: list
    blocks: dict | None
    topk: int
    topk_scores: list
    topk_image: list
    topk_index: list
    pairs: int = 0
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        """N, the number of images."""
        return len(self.sizes)

    def offsets(self) -> np.ndarray:
        """(N + 1,) int64: image ``i`` occupies ``[offsets[i], offsets[i + 1])`` of :meth:`similarity`."""
        return np.concatenate([[0], np.cumsum([len(r) for r in self.rows])]).astype(np.int64)

    def similarity(self) -> np.ndarray:
        """The similarity matrix over all selected proposals of all images (stage 5).

        Returns
        -------
        S : (R, R) ndarray of float32, ``R = sum_i r_i``
            ``S[o_i + a, o_j + b] = conf_ij[rows[i][a], rows[j][b]]`` with
            ``o = offsets()``; for ``i > j`` it is the transpose
            ``conf_ji[rows[j][b], rows[i][a]]`` (never computed separately).
            The diagonal blocks are each image against itself (zero when
            computed with ``diagonal=False``).

        Raises
        ------
        ValueError
            If the result was computed with ``blocks=False``.
        """
        if self.blocks is None:
            raise ValueError("similarity() needs the blocks: call all_pairs(..., blocks=True)")
        off = self.offsets()
        s = np.zeros((off[-1], off[-1]), np.float32)
        for (i, j), blk in self.blocks.items():
            s[off[i] : off[i + 1], off[j] : off[j + 1]] = blk
            if i != j:
                s[off[j] : off[j + 1], off[i] : off[i + 1]] = blk.T
        return s


def _as_list(x, name: str) -> list:
    if isinstance(x, np.ndarray) or not hasattr(x, "__len__") or isinstance(x, (str, bytes)):
        raise ValueError(f"{name} must be a list with one array per image; got {type(x).__name__}")
    return list(x)


def _as_rows(r, n: int, i: int) -> np.ndarray:
    arr = np.asarray(r)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ValueError(f"rows[{i}] as a boolean mask must have shape ({n},); got {arr.shape}")
        return np.flatnonzero(arr).astype(np.int64)
    if arr.ndim == 1 and arr.size == 0:
        return np.zeros(0, np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ValueError(f"rows[{i}] must be a 1-D integer index array (or a boolean mask); got {arr.dtype} {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        bad = arr[(arr < 0) | (arr >= n)][0]
        raise ValueError(f"rows[{i}] holds index {int(bad)}, out of range for image {i} with {n} proposals")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _shape_for(image_shapes, i: int, j: int):
    if image_shapes is None:
        return None
    (hi, wi), (hj, wj) = image_shapes[i], image_shapes[j]
    return (max(hi, hj), max(wi, wj))


def all_pairs(
    boxes,
    descriptors,
    *,
    method: str = "lom",
    rows=None,
    topk: int = 100,
    blocks: bool = True,
    on_pair=None,
    image_shapes=None,
    diagonal: bool = True,
    order: str = "sequential",
    workers: int | None = None,
    ridge: float = DEFAULT_RIDGE,
    stats_path=None,
    progress: bool = False,
) -> AllPairsResult:
    """Match every pair of N images, keeping a compact result (bounded memory).

    For every pair ``i <= j`` (``i == j`` included: an image against itself)::

        conf_ij = vsum.flow.match(boxes[i], boxes[j],
                                  vsum.features.appearance(descriptors[i], descriptors[j]), method)

    computed in a stream: image ``i``'s descriptors are whitened once, its
    appearance against each image ``j >= i`` is one float32 BLAS product into
    a reused buffer (plus bias, clipped at 0), then the compiled matcher runs
    (GIL released; ``workers`` pairs at a time).  Only the selected blocks and the running
    top-k lists are kept.  The results are identical to that naive loop.

    Parameters
    ----------
    boxes : list of N (n_i, 4) array-likes of int
        Proposals of each image, ``(x1, y1, x2, y2)`` inclusive pixel corners
        (:func:`vsum.proposals.selective_search`).  ``n_i = 0`` is allowed.
    descriptors : list of N (n_i, 1984) array-likes of float
        Their descriptors (:func:`vsum.features.describe`), finite.
    method : {"lom", "phm", "nam"}
        Matcher of :func:`vsum.flow.match`.
    rows : list of N 1-D int arrays (or (n_i,) bool masks), optional
        The proposals of each image the caller cares about (e.g. the valid
        ones); default: all.  They select the rows/columns of ``blocks`` and
        the rows of the top-k arrays; the top-k *candidates* are always all
        proposals of the other images.
    topk : int, default 100
        k of the running top-k lists (>= 1).
    blocks : bool, default True
        Keep ``blocks[(i, j)] = conf_ij[rows[i]][:, rows[j]]`` for ``i <= j``
        (``sum_{i<=j} r_i r_j`` float32 values: with all 500 proposals of 50
        images about 1.3 GB; pass a selection in ``rows`` or False for large N).
    on_pair : callable, optional
        ``on_pair(i, j, conf_ij)`` is called for every pair ``i <= j`` (in
        order: i ascending, then j ascending) with the full ``(n_i, n_j)``
        float32 confidence, a fresh array the callback may keep; the driver
        keeps no reference to it.
    diagonal : bool, default True
        Include the pairs ``i == j`` (each image against itself, needed by
        stage 5).  False matches only ``i < j``: the diagonal blocks are then
        absent (zero in :meth:`AllPairsResult.similarity`); the top-k lists
        do not depend on it.
    order : {"sequential", "parallel"}, default "sequential"
        LOM order, as in :func:`vsum.flow.match`.
    workers : int, optional
        Pairs matched at the same time (threads; the matcher releases the
        GIL).  Default: :func:`vsum.boxes.get_num_threads` for sequential LOM
        (one thread per pair), else 1 (the matcher itself is multi-threaded).
        Results do not depend on it.
    image_shapes : list of N (H, W), optional
        Image sizes in pixels; only PHM uses them (the pair gets the larger
        height and width of its two images).  Default: ``vsum.flow.match``'s
        (the extent of the two box sets).
    ridge, stats_path
        Whitening parameters, as in :func:`vsum.features.whiten`.
    progress : bool, default False
        Show a tqdm progress bar over the pairs.

    Returns
    -------
    AllPairsResult
        ``blocks`` (or None), ``topk_scores`` / ``topk_image`` /
        ``topk_index`` (per image, ``(r_i, k)``, padded with 0 / -1 / -1 when
        fewer than k candidates exist), ``pairs``, ``seconds``, ``timings``
        and :meth:`AllPairsResult.similarity`.

    Raises
    ------
    ValueError
        ``boxes`` and ``descriptors`` of different lengths or not lists, bad
        boxes (shape, degenerate), descriptors of the wrong shape or with NaN /
        inf, a descriptor count different from the box count, ``rows`` of the
        wrong length or out of range, ``topk < 1``, an unknown ``method`` or
        ``image_shapes`` of the wrong length.

    Notes
    -----
    N = 0 gives an empty result; N = 1 matches only the pair ``(0, 0)`` and its
    top-k lists are all padding.  Memory beyond the inputs and the kept
    blocks: the whitened descriptors of one image, one ``(n_i, n_j)``
    appearance buffer and one confidence matrix, and ``3 k`` values per
    selected proposal.
    """
    t_start = time.perf_counter()
    box_list = _as_list(boxes, "boxes")
    desc_list = _as_list(descriptors, "descriptors")
    if len(box_list) != len(desc_list):
        raise ValueError(f"boxes and descriptors must have one entry per image; got {len(box_list)} and {len(desc_list)}")
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    method = method.lower()
    if isinstance(topk, bool) or not isinstance(topk, (int, np.integer)) or topk < 1:
        raise ValueError(f"topk must be an integer >= 1; got {topk!r}")
    topk = int(topk)
    if order not in ("sequential", "parallel"):
        raise ValueError(f"order must be 'sequential' or 'parallel'; got {order!r}")
    if workers is None:
        workers = get_num_threads() if method == "lom" and order == "sequential" else 1
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1; got {workers!r}")
    workers = int(workers)
    n_img = len(box_list)

    bx, ds = [], []
    for i in range(n_img):
        b = as_boxes(box_list[i], f"boxes[{i}]")
        check_not_degenerate(b, f"boxes[{i}]")
        d = _as_descriptors(desc_list[i], f"descriptors[{i}]")
        if len(d) != len(b):
            raise ValueError(f"descriptors[{i}] has {len(d)} rows but boxes[{i}] has {len(b)} boxes")
        bx.append(b)
        ds.append(d)
    sizes = np.array([len(b) for b in bx], np.int64)

    if rows is None:
        sel = [np.arange(n, dtype=np.int64) for n in sizes]
    else:
        rows = _as_list(rows, "rows")
        if len(rows) != n_img:
            raise ValueError(f"rows must have one entry per image ({n_img}); got {len(rows)}")
        sel = [_as_rows(r, int(n), i) for i, (r, n) in enumerate(zip(rows, sizes))]
    all_rows = [len(s) == n and np.array_equal(s, np.arange(n)) for s, n in zip(sel, sizes)]

    if image_shapes is not None:
        image_shapes = _as_list(image_shapes, "image_shapes")
        if len(image_shapes) != n_img:
            raise ValueError(f"image_shapes must have one (H, W) per image ({n_img}); got {len(image_shapes)}")
        try:
            image_shapes = [tuple(int(v) for v in hw) for hw in image_shapes]
        except (TypeError, ValueError):
            raise ValueError("image_shapes must be a list of (H, W) pairs of ints") from None
        if any(len(hw) != 2 for hw in image_shapes):
            raise ValueError("image_shapes must be a list of (H, W) pairs of ints")

    top_s = [np.zeros((len(s), topk), np.float32) for s in sel]
    top_i = [np.full((len(s), topk), -1, np.int32) for s in sel]
    top_x = [np.full((len(s), topk), -1, np.int32) for s in sel]
    kept: dict | None = {} if blocks else None
    timings = dict.fromkeys(("whiten", "appearance", "match", "topk", "blocks", "callback"), 0.0)
    bufs = [np.empty(int(sizes.max(initial=0)) ** 2, np.float32) for _ in range(workers)]
    from tqdm.auto import tqdm

    bar = tqdm(total=n_img * (n_img + 1) // 2 if diagonal else n_img * (n_img - 1) // 2, unit="pair",
               desc="all pairs", disable=not progress)
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    done = 0

    def run_match(job):
        i, j, app = job
        return match(bx[i], bx[j], app, method, image_shape=_shape_for(image_shapes, i, j), order=order)

    try:
        for i in range(n_img):
            if not diagonal and i == n_img - 1:
                break  # no pair left
            t0 = time.perf_counter()
            w, bias = whiten(ds[i], ridge=ridge, stats_path=stats_path)
            timings["whiten"] += time.perf_counter() - t0
            others = list(range(i if diagonal else i + 1, n_img))
            for start in range(0, len(others), workers):
                t0 = time.perf_counter()
                jobs = []
                for slot, j in enumerate(others[start:start + workers]):
                    ni, nj = int(sizes[i]), int(sizes[j])
                    app = whitened_scores(w, bias, ds[j], out=bufs[slot][: ni * nj].reshape(ni, nj))
                    jobs.append((i, j, app))
                t1 = time.perf_counter()
                confs = list(pool.map(run_match, jobs)) if pool is not None else [run_match(jobs[0])]
                timings["appearance"] += t1 - t0
                timings["match"] += time.perf_counter() - t1
                for (_, j, _), conf in zip(jobs, confs):
                    t2 = time.perf_counter()
                    if i != j and conf.size:
                        _core.pairs_topk_merge(conf, sel[i], False, j, top_s[i], top_i[i], top_x[i])
                        _core.pairs_topk_merge(conf, sel[j], True, i, top_s[j], top_i[j], top_x[j])
                    t3 = time.perf_counter()
                    if kept is not None:
                        if all_rows[i] and all_rows[j]:
                            kept[(i, j)] = conf
                        else:
                            kept[(i, j)] = conf[np.ix_(sel[i], sel[j])]
                    t4 = time.perf_counter()
                    if on_pair is not None:
                        on_pair(i, j, conf)
                    t5 = time.perf_counter()
                    timings["topk"] += t3 - t2
                    timings["blocks"] += t4 - t3
                    timings["callback"] += t5 - t4
                    done += 1
                    bar.update(1)
                del confs, jobs
    finally:
        if pool is not None:
            pool.shutdown()
        bar.close()
    return AllPairsResult(
        method=method,
        sizes=sizes,
        rows=sel,
        blocks=kept,
        topk=topk,
        topk_scores=top_s,
        topk_image=top_i,
        topk_index=top_x,
        pairs=done,
        seconds=time.perf_counter() - t_start,
        timings=timings,
    )

"""Stage 4 for a class: all-pairs proposal matching of N images (bounded memory).

:func:`all_pairs` matches every pair ``i <= j`` of N images with
:func:`vsum.flow.match` on the whitened appearance of
:func:`vsum.features.appearance`, streaming over the pairs: it keeps only what
stage 5 needs (the blocks of the proposals the caller selects and, per
selected proposal, its top-k scores against the other images), never the
``N x N x n x n`` tensor.  :class:`AllPairsResult` records the settings that
produced it and saves to / loads from one ``.npz`` file
(:mod:`vsum.pairs_file`).  With ``store=path`` the kept blocks are not held
in memory at all: they are written to that file as the pairs stream and read
back one block at a time, so memory does not grow with the square of the
number of selected proposals.

:class:`PairsConfig` and :func:`match_class` are stage 4 as the pipeline runs
it: the rows are the *valid* proposals (stage 5, step 1: boxes mostly inside
the binary saliency mask, :func:`valid_rows`), since stage 5 uses no other.

The running top-k merge (``vsum._core.pairs_topk_merge``) has a NumPy
reference, :mod:`vsum.reference.pairs`.

Importing this module does not import torch.
"""

from __future__ import annotations

import contextlib
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._compiled import _core
from ._config import StageConfig
from .boxes import coverage
from .features import DEFAULT_RIDGE, as_proposals, whiten, whitened_scores
from .flow import LOM_ORDERS, METHODS, match_batch
from .io import atomic_open
from .pairs_file import BlockWriter, StoredBlocks, block_layout, pair_keys
from .threads import get_num_threads

__all__ = ["AllPairsResult", "PairsConfig", "all_pairs", "match_class", "valid_rows"]


@dataclass(frozen=True)
class PairsConfig(StageConfig):
    """Stage-4 settings (published defaults, ``docs/method.md``).

    Attributes
    ----------
    valid_coverage : float, default 0.75
        Stage 5, step 1, applied before stage 4 because stage 4 keeps only
        the rows stage 5 can use: a proposal is valid when *more than* this
        fraction of its box pixels is salient (:func:`valid_rows`).
    method : {"lom", "phm", "nam"}, default "lom"
        Matcher (:func:`vsum.flow.match`); stage 5 also warps with it.
    order : {"sequential", "parallel"}, default "sequential"
        LOM update order (:func:`vsum.flow.match`).
    topk : int, default 100
        Length of each valid proposal's list of best scores against the other
        images; stage 5 prunes redundant proposals by the mean of this list
        ("the mean of its top-100 LOM scores").
    ridge : float, default 0.01
        Whitening ridge, relative to the mean diagonal of the background
        covariance (:func:`vsum.features.whiten`).
    """

    valid_coverage: float = 0.75
    method: str = "lom"
    order: str = "sequential"
    topk: int = 100
    ridge: float = DEFAULT_RIDGE

    def __post_init__(self):
        v = self.valid_coverage
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not 0.0 <= v <= 1.0:
            raise ValueError(f"PairsConfig: valid_coverage must be a number in [0, 1]; got {v!r}")
        if self.method not in METHODS:
            raise ValueError(f"PairsConfig: method must be one of {METHODS}; got {self.method!r}")
        if self.order not in LOM_ORDERS:
            raise ValueError(f"PairsConfig: order must be one of {LOM_ORDERS}; got {self.order!r}")
        if isinstance(self.topk, bool) or not isinstance(self.topk, (int, np.integer)) or self.topk < 1:
            raise ValueError(f"PairsConfig: topk must be an integer >= 1; got {self.topk!r}")
        r = self.ridge
        if isinstance(r, bool) or not isinstance(r, (int, float, np.integer, np.floating)) or not (
                np.isfinite(r) and r > 0):
            raise ValueError(f"PairsConfig: ridge must be a positive finite number; got {r!r}")


@dataclass(eq=False)
class AllPairsResult:
    """Compact outcome of :func:`all_pairs`.

    The settings that produced it are recorded (``method``, ``order``,
    ``topk``, ``diagonal``, ``ridge``, ``stats``, ``rows``), so a stored result
    is only reused for the same request (:meth:`mismatch`).

    Attributes
    ----------
    method : str
        The matcher (``"lom"``, ``"phm"`` or ``"nam"``).
    order : str
        The LOM update order (``"sequential"`` or ``"parallel"``).
    diagonal : bool
        Whether the pairs ``i == j`` were matched.
    ridge : float
        Relative whitening ridge.
    stats : str or None
        The background statistics file (None: the one shipped with vsum).
    sizes : (N,) ndarray of int64
        Number of proposals ``n_i`` of each image.
    rows : list of N (r_i,) ndarrays of int64
        The selected proposals of each image (indices into its boxes).
    blocks : mapping or None
        ``blocks[(i, j)]`` for every ``i <= j``: ``conf_ij[rows[i]][:, rows[j]]``,
        a ``(r_i, r_j)`` float32 array, ``conf_ij = vsum.flow.match(boxes_i,
        boxes_j, appearance(desc_i, desc_j), method)``.  ``i > j`` is not
        stored: by convention ``conf_ji`` is ``conf_ij.T``.  None when
        ``all_pairs(..., blocks=False)``.  A dict held in memory, or (results
        of ``all_pairs(..., store=)`` and of :meth:`load`) a
        :class:`vsum.pairs_file.StoredBlocks` that reads each block from the
        file when it is looked up; both iterate in pair order.
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
        ``"blocks"`` (copying the selected blocks, or
        writing them to the ``store`` file) and ``"callback"``
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
    order: str = "sequential"
    diagonal: bool = True
    ridge: float = DEFAULT_RIDGE
    stats: str | None = None
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


    def mismatch(self, *, method: str, order: str, topk: int, ridge: float, rows, diagonal: bool = True,
                 stats: str | None = None, blocks: bool = True) -> str | None:
        """Why this result does not answer a request, or None when it does.

        Parameters are those of :func:`all_pairs` (``rows`` as index arrays
        or boolean masks, one per image).  Returns a short reason naming the
        first setting that differs, e.g. ``"it was made with order
        'parallel', not 'sequential'"``.
        """
        wanted = {"method": method, "order": order, "topk": int(topk), "ridge": float(ridge),
                  "diagonal": bool(diagonal), "stats": stats}
        for name, value in wanted.items():
            if getattr(self, name) != value:
                return f"it was made with {name} {getattr(self, name)!r}, not {value!r}"
        if blocks and self.blocks is None:
            return "it holds no blocks"
        if len(rows) != self.n_images:
            return f"it covers {self.n_images} images, not {len(rows)}"
        for i, r in enumerate(rows):
            r = np.asarray(r)
            r = np.flatnonzero(r) if r.dtype == bool else r.astype(np.int64).reshape(-1)
            if not np.array_equal(r, self.rows[i]):
                return f"its rows of image {i} differ"
        return None

    def _small_arrays(self, keys: list, has_blocks: bool) -> dict:
        """Every field but ``blocks`` and ``timings`` as the arrays of the stored file; ``keys``: the stored blocks."""
        arrays = {"format": np.array(_FORMAT), "method": np.array(self.method), "order": np.array(self.order),
                  "topk": np.array(self.topk), "diagonal": np.array(self.diagonal), "ridge": np.array(self.ridge),
                  "stats": np.array("" if self.stats is None else self.stats), "sizes": self.sizes,
                  "has_blocks": np.array(bool(has_blocks)), "pairs": np.array(self.pairs),
                  "seconds": np.array(self.seconds)}
        for i in range(self.n_images):
            arrays[f"rows_{i}"] = self.rows[i]
            arrays[f"topk_scores_{i}"] = self.topk_scores[i]
            arrays[f"topk_image_{i}"] = self.topk_image[i]
            arrays[f"topk_index_{i}"] = self.topk_index[i]
        arrays["block_pairs"] = np.array(keys, np.int64).reshape(len(keys), 2)
        return arrays

    def save(self, path: str | os.PathLike) -> None:
        """Write the result to one ``.npz`` file, atomically (temporary name, then rename).

        Everything but ``timings`` is stored (layout: :mod:`vsum.pairs_file`);
        :meth:`load` reads it back.  The blocks are copied one at a time, so
        saving a result backed by a file needs no more memory than one block.
        A result whose blocks are already stored at ``path`` (from
        ``all_pairs(..., store=path)`` or ``load(path)``) is not rewritten.
        """
        if isinstance(self.blocks, StoredBlocks) and Path(path).exists() \
                and os.path.samefile(path, self.blocks.path):
            return
        keys = list(self.blocks or {})
        layout = block_layout([len(r) for r in self.rows], keys)
        with atomic_open(path) as fh:
            writer = BlockWriter(fh, layout)
            try:
                for key in keys:
                    writer.add(key, self.blocks[key])
                writer.finish(self._small_arrays(keys, self.blocks is not None))
            finally:
                writer.close()

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AllPairsResult":
        """Read a result written by :meth:`save` (or ``all_pairs(..., store=)``).

        Only the small arrays are read; the blocks stay in the file and are
        read one at a time when looked up (:class:`vsum.pairs_file.StoredBlocks`).
        Files of the previous layout (format 1, blocks as separate members)
        are read whole.

        Raises
        ------
        ValueError
            The file is not a stored all-pairs result (or one of another format).
        OSError
            The file cannot be read.
        """
        data, pairs_arr = {}, None
        try:
            with np.load(Path(path), allow_pickle=False) as npz:
                fmt = int(npz["format"]) if "format" in npz.files else None
                if fmt in (1, _FORMAT):  # format 2: the blocks stay in the file
                    data = {key: npz[key] for key in npz.files if fmt == 1 or not key.startswith("block")}
                    pairs_arr = npz["block_pairs"] if fmt == _FORMAT else None
        except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # not an npz, or truncated
            raise ValueError(f"{path} is not a stored all-pairs result: {exc}") from None
        if fmt not in (1, _FORMAT):
            raise ValueError(f"{path} is not a stored all-pairs result of format 1 or {_FORMAT}")
        n = len(data["sizes"])
        rows = [data[f"rows_{i}"] for i in range(n)]
        blocks = None
        if bool(data["has_blocks"]) and fmt == 1:
            blocks = {}
            for key, value in data.items():
                if key.startswith("block_"):
                    i, j = key.split("_")[1:]
                    blocks[(int(i), int(j))] = value
        elif bool(data["has_blocks"]):
            blocks = StoredBlocks(path, block_layout([len(r) for r in rows], pairs_arr.tolist()))
        stats = str(data["stats"])
        return cls(method=str(data["method"]), sizes=data["sizes"], rows=rows,
                   blocks=blocks, topk=int(data["topk"]), topk_scores=[data[f"topk_scores_{i}"] for i in range(n)],
                   topk_image=[data[f"topk_image_{i}"] for i in range(n)],
                   topk_index=[data[f"topk_index_{i}"] for i in range(n)], order=str(data["order"]),
                   diagonal=bool(data["diagonal"]), ridge=float(data["ridge"]), stats=stats or None,
                   pairs=int(data["pairs"]), seconds=float(data["seconds"]))


#: Version of the file layout written by :meth:`AllPairsResult.save` (1: one member per block, read whole;
#: 2: :mod:`vsum.pairs_file`, blocks streamed into one member and read one at a time).
_FORMAT = 2


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


def _as_image_shapes(image_shapes, n_img: int) -> list | None:
    if image_shapes is None:
        return None
    image_shapes = _as_list(image_shapes, "image_shapes")
    if len(image_shapes) != n_img:
        raise ValueError(f"image_shapes must have one (H, W) per image ({n_img}); got {len(image_shapes)}")
    try:
        image_shapes = [tuple(int(v) for v in hw) for hw in image_shapes]
    except (TypeError, ValueError):
        raise ValueError("image_shapes must be a list of (H, W) pairs of ints") from None
    if any(len(hw) != 2 for hw in image_shapes):
        raise ValueError("image_shapes must be a list of (H, W) pairs of ints")
    return image_shapes


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
    ridge: float = DEFAULT_RIDGE,
    stats_path=None,
    progress: bool = False,
    store=None,
) -> AllPairsResult:
    """Match every pair of N images, keeping a compact result (bounded memory).

    For every pair ``i <= j`` (``i == j`` included: an image against itself)::

        conf_ij = vsum.flow.match(boxes[i], boxes[j],
                                  vsum.features.appearance(descriptors[i], descriptors[j]), method)

    computed in a stream: image ``i``'s descriptors are whitened once, its
    appearance against each image ``j >= i`` is one float32 BLAS product into
    a reused buffer (plus bias, clipped at 0), and a batch of such pairs goes
    to the compiled core's thread pool at once (:func:`vsum.flow.match_batch`:
    pairs in parallel, each pair's matcher serial inside, GIL released).  Only
    the selected blocks and the running top-k lists are kept.  The results
    are identical to that naive loop, for every thread count.

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
    image_shapes : list of N (H, W), optional
        Image sizes in pixels; only PHM uses them (the pair gets the larger
        height and width of its two images).  Default: ``vsum.flow.match``'s
        (the extent of the two box sets).
    diagonal : bool, default True
        Include the pairs ``i == j`` (each image against itself, needed by
        stage 5).  False matches only ``i < j``: the diagonal blocks are then
        absent (zero in :meth:`AllPairsResult.similarity`); the top-k lists
        do not depend on it.
    order : {"sequential", "parallel"}, default "sequential"
        LOM order, as in :func:`vsum.flow.match`.
    ridge, stats_path
        Whitening parameters, as in :func:`vsum.features.whiten`.
    progress : bool, default False
        Show a tqdm progress bar over the pairs.
    store : path-like, optional
        Write the result to this file (:meth:`AllPairsResult.save`'s format)
        *while* matching: each kept block goes to the file as soon as its
        pair is matched and is not kept in memory; the returned result reads
        its blocks back from the file one at a time
        (:class:`vsum.pairs_file.StoredBlocks`).  The file is written to a
        temporary name and renamed into place at the end (on an error, the
        temporary file is removed and ``store`` left as it was).  Blocks,
        top-k lists and everything else are identical to ``store=None``.

    Returns
    -------
    AllPairsResult
        ``blocks`` (or None), ``topk_scores`` / ``topk_image`` /
        ``topk_index`` (per image, ``(r_i, k)``, padded with 0 / -1 / -1 when
        fewer than k candidates exist), the settings, ``pairs``, ``seconds``,
        ``timings`` and :meth:`AllPairsResult.similarity`.

    Raises
    ------
    ValueError
        ``boxes`` and ``descriptors`` of different lengths or not lists, bad
        boxes (shape, degenerate), descriptors of the wrong shape or with NaN /
        inf, a descriptor count different from the box count, ``rows`` of the
        wrong length or out of range, ``topk < 1``, an unknown ``method`` or
        ``order``, or ``image_shapes`` of the wrong length.

    Notes
    -----
    N = 0 gives an empty result; N = 1 matches only the pair ``(0, 0)`` and its
    top-k lists are all padding.  Memory beyond the inputs and the kept
    blocks (none with ``store``): the whitened descriptors of one image, one
    ``(n_i, n_j)`` appearance buffer and one confidence matrix per pair of a
    batch (``2 x`` the thread count pairs), and ``3 k`` values (12 k bytes)
    per selected proposal.
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
    if order not in LOM_ORDERS:
        raise ValueError(f"order must be one of {LOM_ORDERS}; got {order!r}")
    n_img = len(box_list)

    bx, ds = as_proposals(box_list, desc_list)
    sizes = np.array([len(b) for b in bx], np.int64)

    if rows is None:
        sel = [np.arange(n, dtype=np.int64) for n in sizes]
    else:
        rows = _as_list(rows, "rows")
        if len(rows) != n_img:
            raise ValueError(f"rows must have one entry per image ({n_img}); got {len(rows)}")
        sel = [_as_rows(r, int(n), i) for i, (r, n) in enumerate(zip(rows, sizes))]
    all_rows = [len(s) == n and np.array_equal(s, np.arange(n)) for s, n in zip(sel, sizes)]
    image_shapes = _as_image_shapes(image_shapes, n_img)

    top_s = [np.zeros((len(s), topk), np.float32) for s in sel]
    top_i = [np.full((len(s), topk), -1, np.int32) for s in sel]
    top_x = [np.full((len(s), topk), -1, np.int32) for s in sel]
    kept: dict | None = {} if blocks and store is None else None
    timings = dict.fromkeys(("whiten", "appearance", "match", "topk", "blocks", "callback"), 0.0)
    batch = 2 * get_num_threads()
    bufs = [np.empty(int(sizes.max(initial=0)) ** 2, np.float32) for _ in range(min(batch, n_img))]
    from tqdm.auto import tqdm

    bar = tqdm(total=n_img * (n_img + 1) // 2 if diagonal else n_img * (n_img - 1) // 2, unit="pair",
               desc="all pairs", disable=not progress)
    layout = block_layout([len(s) for s in sel], pair_keys(n_img, diagonal) if blocks else [])
    done = 0
    with contextlib.ExitStack() as stack:
        writer = BlockWriter(stack.enter_context(atomic_open(store)), layout) if store is not None else None
        if writer is not None:
            stack.callback(writer.close)  # runs before atomic_open's exit (a no-op after finish)
        stack.callback(bar.close)
        for i in range(n_img):
            if not diagonal and i == n_img - 1:
                break  # no pair left
            t0 = time.perf_counter()
            w, bias = whiten(ds[i], ridge=ridge, stats_path=stats_path)
            timings["whiten"] += time.perf_counter() - t0
            others = list(range(i if diagonal else i + 1, n_img))
            for start in range(0, len(others), batch):
                t0 = time.perf_counter()
                chunk = others[start:start + batch]
                ni = int(sizes[i])
                apps = [whitened_scores(w, bias, ds[j], out=buf[: ni * int(sizes[j])].reshape(ni, int(sizes[j])))
                        for j, buf in zip(chunk, bufs)]
                t1 = time.perf_counter()
                confs = match_batch([bx[i]] * len(chunk), [bx[j] for j in chunk], apps, method,
                                    image_shapes=[_shape_for(image_shapes, i, j) for j in chunk], order=order)
                timings["appearance"] += t1 - t0
                timings["match"] += time.perf_counter() - t1
                for j, conf in zip(chunk, confs):
                    t2 = time.perf_counter()
                    if i != j and conf.size:
                        _core.pairs_topk_merge(conf, sel[i], False, j, top_s[i], top_i[i], top_x[i])
                        _core.pairs_topk_merge(conf, sel[j], True, i, top_s[j], top_i[j], top_x[j])
                    t3 = time.perf_counter()
                    if blocks:
                        blk = conf if all_rows[i] and all_rows[j] else conf[np.ix_(sel[i], sel[j])]
                        if writer is not None:
                            writer.add((i, j), blk)
                        else:
                            kept[(i, j)] = blk
                    t4 = time.perf_counter()
                    if on_pair is not None:
                        on_pair(i, j, conf)
                    t5 = time.perf_counter()
                    timings["topk"] += t3 - t2
                    timings["blocks"] += t4 - t3
                    timings["callback"] += t5 - t4
                    done += 1
                    bar.update(1)
                del confs, apps
        result = AllPairsResult(
            method=method,
            sizes=sizes,
            rows=sel,
            blocks=kept,
            topk=topk,
            topk_scores=top_s,
            topk_image=top_i,
            topk_index=top_x,
            order=order,
            diagonal=bool(diagonal),
            ridge=float(ridge),
            stats=None if stats_path is None else str(Path(stats_path).resolve()),
            pairs=done,
            seconds=time.perf_counter() - t_start,
            timings=timings,
        )
        if writer is not None:
            writer.finish(result._small_arrays(list(layout), blocks))
    if store is not None and blocks:
        result.blocks = StoredBlocks(store, layout)
    return result


def valid_rows(masks, boxes, coverage_threshold: float = 0.75) -> list[np.ndarray]:
    """Stage 5, step 1: the valid proposals of each image.

    Parameters
    ----------
    masks : list of N (H_i, W_i) bool arrays
        Binary saliency masks (``saliency > 0.5``), at the resolution of the boxes.
    boxes : list of N (n_i, 4) array-likes of int
        Proposals, inclusive corners.
    coverage_threshold : float, default 0.75
        A proposal is valid when *more than* this fraction of its box pixels
        is salient (:func:`vsum.boxes.coverage`; pixels outside the image
        count as not salient).

    Returns
    -------
    list of N (n_i,) ndarrays of bool
    """
    if len(masks) != len(boxes):
        raise ValueError(f"masks and boxes need one entry per image; got {len(masks)} and {len(boxes)}")
    return [coverage(m, b) > np.float32(coverage_threshold) for m, b in zip(masks, boxes)]


def match_class(masks, boxes, descriptors, config: PairsConfig | None = None, *,
                progress: bool = False, store=None) -> AllPairsResult:
    """Stage 4 of a class as the pipeline runs it: all pairs over the valid proposals.

    :func:`all_pairs` with ``rows`` = :func:`valid_rows` (``valid_coverage``)
    and the method, order, top-k and ridge of ``config``, blocks and the
    diagonal pairs kept (stage 5 needs both); the image sizes (PHM's extent)
    are the masks' shapes.  When stage 5 can use no pair
    (fewer than 2 images, or no valid proposal) nothing is matched: the
    result records the settings and rows, with no block and ``pairs == 0``.

    Parameters
    ----------
    masks : list of N (H_i, W_i) bool arrays
    boxes : list of N (n_i, 4) int arrays
    descriptors : list of N (n_i, 1984) float32 arrays
    config : PairsConfig, optional
        Published defaults.
    progress : bool, default False
    store : path-like, optional
        Stream the blocks to this file instead of keeping them in memory
        (:func:`all_pairs`); the pipeline's ``similarity.npz``.  Memory then
        grows with the number of valid proposals ``V`` (their top-k lists),
        not with ``V^2``.  The result is the same as without it.

    Returns
    -------
    AllPairsResult
    """
    cfg = config if config is not None else PairsConfig()
    if not isinstance(cfg, PairsConfig):
        raise ValueError(f"config must be a PairsConfig; got {type(cfg).__name__}")
    rows = valid_rows(masks, boxes, cfg.valid_coverage)
    if len(boxes) < 2 or not any(r.any() for r in rows):
        sel = [np.flatnonzero(r).astype(np.int64) for r in rows]
        empty = AllPairsResult(method=cfg.method, sizes=np.array([len(r) for r in rows], np.int64), rows=sel,
                               blocks={}, topk=cfg.topk,
                               topk_scores=[np.zeros((len(s), cfg.topk), np.float32) for s in sel],
                               topk_image=[np.full((len(s), cfg.topk), -1, np.int32) for s in sel],
                               topk_index=[np.full((len(s), cfg.topk), -1, np.int32) for s in sel], order=cfg.order,
                               ridge=float(cfg.ridge))
        if store is not None:
            empty.save(store)
        return empty
    return all_pairs(boxes, descriptors, method=cfg.method, rows=rows, topk=cfg.topk, order=cfg.order,
                     ridge=cfg.ridge, image_shapes=[np.shape(m)[:2] for m in masks], progress=progress, store=store)

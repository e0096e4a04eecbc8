"""Stage 2: region proposals (graph segmentation and selective search).

Both functions run in the compiled core (:mod:`vsum._core`, GIL released).
The NumPy reference of :func:`segment` is :mod:`vsum.reference.segmentation`.

Box convention: ``(x1, y1, x2, y2)`` with **inclusive** pixel corners, x = the
column, as everywhere in vsum (see :mod:`vsum.boxes`).

Importing this module does not import torch.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ._arrays import as_image, as_numeric
from ._compiled import _core
from ._config import StageConfig

__all__ = ["MODES", "STRATEGIES", "MIN_IMAGE_SIDE", "ProposalConfig", "segment", "selective_search"]

#: Similarity terms of a merge strategy (bit flags understood by the core).
_TERMS = {"colour": 1, "texture": 2, "size": 4, "fill": 8}

#: Named strategies of Uijlings et al.: the terms added up in the similarity.
STRATEGIES = {
    "colour+texture+size+fill": ("colour", "texture", "size", "fill"),
    "texture+size+fill": ("texture", "size", "fill"),
    "fill": ("fill",),
    "size": ("size",),
}

#: The two published settings: colour spaces, FH thresholds k (min size = k), strategies.
MODES = {
    "quality": {
        "colour_spaces": ("hsv", "lab", "rgi", "h", "i"),
        "ks": (50, 100, 150, 300),
        "strategies": ("colour+texture+size+fill", "texture+size+fill", "fill", "size"),
    },
    "fast": {
        "colour_spaces": ("hsv", "lab"),
        "ks": (50, 100),
        "strategies": ("colour+texture+size+fill", "texture+size+fill"),
    },
}

#: Images with a side shorter than this are rejected by :func:`selective_search`.
MIN_IMAGE_SIDE = 16


def _number(value, name: str, *, integer: bool = False, minimum=None) -> float | int:
    ok = isinstance(value, numbers.Integral) if integer else isinstance(value, numbers.Real)
    if isinstance(value, bool) or not ok:
        kind = "an integer" if integer else "a real number"
        raise ValueError(f"{name} must be {kind}; got {value!r}")
    value = int(value) if integer else float(value)
    if not np.isfinite(value) or (minimum is not None and value < minimum):
        raise ValueError(f"{name} must be finite and >= {minimum}; got {value!r}")
    return value


def segment(image, sigma: float = 0.8, k: float = 100, min_size: int = 100) -> np.ndarray:
    """Felzenszwalb-Huttenlocher graph segmentation.

    Parameters
    ----------
    image : (H, W) or (H, W, C) array-like of real numbers
        Any numeric dtype (converted to float64, values used as they are: an
        8-bit image keeps its 0..255 scale, which sets the scale of ``k``).
        ``H, W >= 1``, at most 65535 each and ``H * W < 2**30``.
    sigma : float, default 0.8
        Standard deviation, in pixels, of the Gaussian applied to every channel
        before building the graph; 0 disables smoothing.  The kernel has
        ``ceil(4 sigma) + 1`` taps per side (centre included), is normalised to
        sum 1, and the image borders are extended by replicating the edge
        pixel; rows are filtered first, then columns.
    k : float, default 100
        Scale of the merge threshold: two components ``A``, ``B`` joined by an
        edge of weight ``w`` merge when ``w <= Int(X) + k / |X|`` for both
        (``Int`` = largest edge weight inside the component's spanning tree,
        ``|X|`` = pixels).  Larger ``k`` gives larger segments.
    min_size : int, default 100
        Components smaller than this many pixels are then merged into a
        neighbour, following the edges in increasing weight.

    Returns
    -------
    labels : (H, W) ndarray of int32
        Segment index of every pixel, ``0..n-1``, numbered in raster order of
        each segment's first pixel.

    Notes
    -----
    The graph is the 8-connected pixel grid; the weight of an edge is the
    Euclidean distance between the smoothed colours of its pixels (computed in
    float64, stored as float32).  Edges are sorted by weight with ties broken by
    their generation order (raster order of the first pixel; then right, down,
    down-right, up-right), so the result is fully deterministic.  The NumPy
    reference :func:`vsum.reference.segmentation.segment` gives the same labels.

    Raises
    ------
    ValueError
        For an empty or too large image, non-finite values, a negative
        ``sigma`` / ``k`` / ``min_size``.

    Examples
    --------
    >>> from vsum.proposals import segment
    >>> img = np.zeros((20, 30), dtype=np.uint8)
    >>> img[:, 15:] = 200                         # two flat halves
    >>> labels = segment(img, sigma=0.8, k=50, min_size=50)
    >>> labels.shape, labels.dtype, int(labels.max()) + 1
    ((20, 30), dtype('int32'), 2)
    """
    arr = as_numeric(image, "image", "an array of real numbers")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"image must have shape (H, W) or (H, W, C); got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"image must not be empty; got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("image must hold finite values (no NaN or infinity)")
    sigma = _number(sigma, "sigma", minimum=0)
    k = _number(k, "k", minimum=0)
    min_size = _number(min_size, "min_size", integer=True, minimum=0)
    return _core.felzenszwalb(arr, sigma, k, min_size)


def selective_search(
    image,
    num: int | None = 500,
    seed: int = 0,
    mode: str = "quality",
    *,
    sigma: float = 0.8,
    min_side: int = 20,
    border: float = 0.01,
    colour_spaces=None,
    ks=None,
    strategies=None,
):
    """Selective search region proposals (Uijlings et al. 2013), ranked.

    Parameters
    ----------
    image : (H, W, 3) ndarray of uint8
        RGB image, ``H, W >= 16``.
    num : int or None, default 500
        Number of proposals to keep (the first ``num`` of the ranking); None
        keeps all.
    seed : int, default 0
        Seed of the ranking's random numbers (``std::mt19937``), in
        ``[0, 2**32)``.  Same image and seed give the same boxes, whatever the
        thread count.
    mode : {"quality", "fast"}
        ``"quality"``: colour spaces HSV, Lab, rgI, H, I; ``k`` in
        {50, 100, 150, 300}; the four strategies colour+texture+size+fill,
        texture+size+fill, fill, size (80 hierarchies).  ``"fast"``: HSV and
        Lab, ``k`` in {50, 100}, the first two strategies (8 hierarchies).
    sigma : float, default 0.8
        Smoothing of the graph segmentation (see :func:`segment`).
    min_side : int, default 20
        Boxes narrower or shorter than this (pixels) are dropped.
    border : float, default 0.01
        Boxes closer than ``border * W`` (``border * H``) pixels to the left or
        right (top or bottom) edge are dropped, except the whole image.
    colour_spaces, ks, strategies : sequences, optional
        Override the mode's colour spaces (names from ``"hsv", "lab", "rgi",
        "h", "i"``), thresholds ``k`` (min size = ``round(k)``) and strategies
        (keys of :data:`STRATEGIES`, or tuples of terms from ``"colour",
        "texture", "size", "fill"``).

    Returns
    -------
    boxes : (n, 4) ndarray of int32
        ``(x1, y1, x2, y2)``, inclusive pixel corners, best first; ``n <= num``.
        No duplicates; every side >= ``min_side``; no box touches the border
        margin unless it is the whole image ``(0, 0, W - 1, H - 1)``.
    priorities : (n,) ndarray of float64
        Ranking score of each box, ascending: ``level * u`` where ``level`` is
        the box's priority in its hierarchy and ``u`` uniform in ``[0, 1)``.

    Notes
    -----
    Colour spaces are converted in C++ from the 8-bit RGB values, every channel
    scaled to [0, 255]: HSV (hue in degrees * 255/360), CIE Lab of sRGB with D65
    white (L * 2.55, a + 128, b + 128), rgI (255 r, 255 g with
    r = R / (R + G + B), and (R + G + B) / 3), H (the hue alone), I
    (0.299 R + 0.587 G + 0.114 B).

    Each hierarchy (colour space x k x strategy) segments the colour image
    (:func:`segment` with ``min_size = k``), describes each region by a colour
    histogram (25 bins per channel over [0, 256), L1-normalised), a texture
    histogram (Gaussian derivatives, sigma 1, in 8 directions per channel,
    rectified, divided by their image maximum, 10 bins each, L1-normalised),
    its size and box; then it repeatedly merges the most similar pair of
    8-connected neighbours (similarity = the sum of the strategy's terms:
    histogram intersections, ``1 - (r_i + r_j) / image``,
    ``1 - (bbox(r_i U r_j) - r_i - r_j) / image``); a merged region's
    histograms are the size-weighted averages of its parts.  A hierarchy emits
    the boxes of its initial regions then of each merge; with ``T`` boxes, the
    ``t``-th (0-based) has level ``T - t``, so the largest regions get the
    smallest levels.  All hierarchies are pooled, scored ``level * u``, ranked
    ascending, filtered (size, border, duplicates) and cut to ``num``.  The
    hierarchies run in parallel on :func:`vsum.threads.get_num_threads` threads.

    Raises
    ------
    ValueError
        If the image is not (H, W, 3) uint8 or is smaller than 16 x 16, or a
        parameter is out of range.

    Examples
    --------
    >>> from vsum.proposals import selective_search
    >>> rng = np.random.default_rng(0)
    >>> img = np.zeros((64, 64, 3), dtype=np.uint8)
    >>> img[16:48, 16:48] = (200, 30, 30)          # a red square on black
    >>> boxes, prio = selective_search(img, num=10, mode="fast")
    >>> [16, 16, 47, 47] in boxes.tolist()
    True
    """
    rgb = as_image(image, "image", dtype=np.uint8, grey="reject", min_side=MIN_IMAGE_SIDE)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}; got {mode!r}")
    setting = MODES[mode]
    spaces = [str(s).lower() for s in (setting["colour_spaces"] if colour_spaces is None else colour_spaces)]
    known = MODES["quality"]["colour_spaces"]
    for s in spaces:
        if s not in known:
            raise ValueError(f"unknown colour space {s!r}; expected one of {list(known)}")
    kvals = [_number(k, "k", minimum=0) for k in (setting["ks"] if ks is None else ks)]
    flags = []
    for s in setting["strategies"] if strategies is None else strategies:
        terms = STRATEGIES.get(s, s) if isinstance(s, str) else tuple(s)
        if isinstance(terms, str) or not terms or any(t not in _TERMS for t in terms):
            raise ValueError(
                f"unknown strategy {s!r}; expected one of {list(STRATEGIES)} or a tuple of terms from {list(_TERMS)}"
            )
        flags.append(sum(_TERMS[t] for t in set(terms)))
    if not spaces or not kvals or not flags:
        raise ValueError("colour_spaces, ks and strategies must not be empty")
    num = -1 if num is None else _number(num, "num", integer=True, minimum=0)
    seed = _number(seed, "seed", integer=True, minimum=0)
    if seed >= 2**32:
        raise ValueError(f"seed must be in [0, 2**32); got {seed}")
    sigma = _number(sigma, "sigma", minimum=0)
    min_side = _number(min_side, "min_side", integer=True, minimum=0)
    border = _number(border, "border", minimum=0)
    return _core.selective_search(rgb, spaces, kvals, flags, sigma, num, seed, min_side, border)


@dataclass(frozen=True)
class ProposalConfig(StageConfig):
    """Stage-2 settings of :func:`selective_search` (published defaults).

    Attributes
    ----------
    num : int, default 500
        Proposals kept per image (the first ``num`` of the ranking).
    seed : int, default 0
        Seed of the ranking, in ``[0, 2**32)``.
    mode : {"quality", "fast"}, default "quality"
    """

    num: int = 500
    seed: int = 0
    mode: str = "quality"

    def __post_init__(self):
        if isinstance(self.num, bool) or not isinstance(self.num, (int, np.integer)) or self.num < 1:
            raise ValueError(f"ProposalConfig: num must be an integer >= 1; got {self.num!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or not 0 <= self.seed < 2**32:
            raise ValueError(f"ProposalConfig: seed must be an integer in [0, 2**32); got {self.seed!r}")
        if self.mode not in MODES:
            raise ValueError(f"ProposalConfig: mode must be 'quality' or 'fast'; got {self.mode!r}")


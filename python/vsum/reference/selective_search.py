"""NumPy / pure-Python reference of :func:`vsum.proposals.selective_search`.

Selective search (Uijlings et al., IJCV 2013) written for clarity, mirroring
the compiled kernel (``csrc/proposals/selective_search_cpu.cpp``,
``ss_features_cpu.cpp``) step by step:

1. every colour space is computed from the 8-bit RGB values
   (:func:`colour_image`), then binned for the colour histograms
   (:func:`colour_bins`) and, through Gaussian derivatives, for the texture
   histograms (:func:`texture_bins`);
2. each (colour space, k) is segmented with the reference Felzenszwalb-
   Huttenlocher segmentation :func:`vsum.reference.segmentation.segment`
   (``min_size = round(k)``), and its regions described by
   :func:`region_features` (histograms, sizes, boxes, 8-connected neighbours);
3. each (colour space, k, strategy) is grouped hierarchically by
   :func:`group`, which emits the boxes of the initial regions and then of
   every merge;
4. :func:`rank` pools all hierarchies, scores them ``level * u`` and sorts;
   :func:`select` applies the size, border and duplicate filters and the cut
   to ``num``.

Where equality depends on it, the reference copies the C++'s implementation
choices rather than the paper's mathematics:

* the colour conversions, the Gaussian derivative filter and the texture
  binning are float32, operation by operation in the C++'s order (e.g.
  ``60 * (g - b) / delta`` is ``(60 * (g - b)) / delta``); Lab is float64 up
  to ``f(t)``, then float32.  The transcendental functions are the C
  library's: ``math.exp`` (rounded to float32, equal to ``expf`` for the five
  taps used, checked by the tests), ``**`` (``pow``) and ``math.cbrt``, not
  NumPy's own SIMD versions, which may differ in the last bit;
* histogram counts are L1-normalised as ``count * (1 / total)`` in float64
  and stored as float32;
* histogram intersections are float32 sums in index order
  (``numpy.cumsum``, never the pairwise ``numpy.sum``), added to a float64
  similarity; merged histograms are ``w_i h_i + (1 - w_i) h_j`` with the
  float32 weight ``w_i = float32(|r_i| / (|r_i| + |r_j|))``;
* the most similar pair is taken first, ties broken by the smaller ids
  ``(a, b)`` (the C++ heap's order; stale pairs are skipped when popped);
* the random numbers are those of ``std::mt19937(seed)`` turned into doubles
  by the C++'s ``uniform53`` (``((a >> 5) * 2^26 + (b >> 6)) / 2^53``, two
  32-bit draws each), which is exactly what NumPy's legacy
  ``numpy.random.RandomState(seed).random_sample`` computes (same
  initialisation ``init_genrand(seed)``, same formula ``genrand_res53``).

Replacing the in-order float32 intersection sums by ``numpy.sum`` or float64
sums, or computing the Gaussian taps in float64, changes boxes in the parity
tests (the last bit reorders pairs of equal or nearly equal similarity); the
other choices are copied for fidelity, without a known input where they
matter.

Expected agreement: identical boxes and priorities (``numpy.array_equal``),
checked by ``tests/test_selective_search_reference.py`` on random images and
a real photo.  This holds on x86-64, where the compiled core uses no fused
multiply-add (see the note in that test file).

The settings of the modes and the named strategies are read from
:mod:`vsum.proposals` (:data:`~vsum.proposals.MODES`,
:data:`~vsum.proposals.STRATEGIES`), so both accept the same arguments.

The segmentation and the grouping loop run in Python: about ten times slower
than the compiled kernel (see :func:`selective_search`).
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from ..proposals import MIN_IMAGE_SIDE, MODES, STRATEGIES
from .segmentation import segment

__all__ = [
    "COLOUR_SPACES",
    "TERMS",
    "RegionFeatures",
    "colour_bins",
    "colour_image",
    "gaussian_derivative_kernels",
    "gaussian_gradients",
    "group",
    "hierarchies",
    "rank",
    "region_features",
    "select",
    "selective_search",
    "texture_bins",
]

#: Colour spaces and their number of channels.
COLOUR_SPACES = {"hsv": 3, "lab": 3, "rgi": 3, "h": 1, "i": 1}
#: Similarity terms and their bit in a strategy (``enum SimilarityTerm`` of the C++).
TERMS = {"colour": 1, "texture": 2, "size": 4, "fill": 8}

COLOUR_BINS = 25
TEXTURE_DIRECTIONS = 8
TEXTURE_BINS = 10
TEXTURE_RADIUS = 4  # Gaussian derivative taps -4..4 (sigma 1)

f32 = np.float32


# ---------------------------------------------------------------------------
# 1. colour spaces and per-pixel bins
# ---------------------------------------------------------------------------


def _hsv(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 hue * 255/360, saturation * 255, value * 255 (float32 arithmetic)."""
    r = rgb[..., 0].astype(f32) / f32(255)
    g = rgb[..., 1].astype(f32) / f32(255)
    b = rgb[..., 2].astype(f32) / f32(255)
    mx = np.maximum(r, np.maximum(g, b))
    mn = np.minimum(r, np.minimum(g, b))
    delta = mx - mn
    hue = np.zeros(r.shape, dtype=f32)
    chroma = delta > 0
    red = chroma & (mx == r)  # the C++ tests r first, then g
    green = chroma & ~red & (mx == g)
    blue = chroma & ~red & ~green
    hue[red] = f32(60) * (g[red] - b[red]) / delta[red]
    hue[red & (hue < 0)] += f32(360)
    hue[green] = f32(60) * (b[green] - r[green]) / delta[green] + f32(120)
    hue[blue] = f32(60) * (r[blue] - g[blue]) / delta[blue] + f32(240)
    hue = np.minimum(hue, f32(359.999)) * (f32(255) / f32(360))
    saturation = np.zeros(r.shape, dtype=f32)
    bright = mx > 0
    saturation[bright] = f32(255) * delta[bright] / mx[bright]
    value = f32(255) * mx
    return np.stack([hue, saturation, value], axis=-1)


def _srgb_to_linear_table() -> np.ndarray:
    """(256,) float64 linear sRGB of each 8-bit value (C library ``pow``)."""
    table = np.empty(256)
    for i in range(256):
        c = i / 255.0
        table[i] = c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    return table


def _lab_f(t: np.ndarray) -> np.ndarray:
    """CIE ``f(t)`` in float64 (C library ``cbrt``), rounded to float32."""
    d = 6.0 / 29.0
    cube_root = np.array([math.cbrt(v) for v in t.ravel().tolist()]).reshape(t.shape)
    return np.where(t > d * d * d, cube_root, t / (3.0 * d * d) + 4.0 / 29.0).astype(f32)


def _lab(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 CIE Lab of sRGB (D65): L * 2.55, a + 128, b + 128, clamped to [0, 255]."""
    linear = _srgb_to_linear_table()
    r, g, b = linear[rgb[..., 0]], linear[rgb[..., 1]], linear[rgb[..., 2]]
    X = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047
    Y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    Z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883
    fx, fy, fz = _lab_f(X), _lab_f(Y), _lab_f(Z)
    L = (f32(116) * fy - f32(16)) * (f32(255) / f32(100))
    a = f32(500) * (fx - fy) + f32(128)
    bb = f32(200) * (fy - fz) + f32(128)
    return np.clip(np.stack([L, a, bb], axis=-1), f32(0), f32(255))


def _rgi(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 ``255 R / s``, ``255 G / s`` (85 when s = 0), ``s / 3``; s = R + G + B."""
    R, G, B = (rgb[..., c].astype(f32) for c in range(3))
    s = R + G + B
    safe = np.where(s > 0, s, f32(1))
    r = np.where(s > 0, f32(255) * R / safe, f32(85))
    g = np.where(s > 0, f32(255) * G / safe, f32(85))
    return np.stack([r, g, s / f32(3)], axis=-1)


def _intensity(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 1) float32 ``0.299 R + 0.587 G + 0.114 B``."""
    R, G, B = (rgb[..., c].astype(f32) for c in range(3))
    return (f32(0.299) * R + f32(0.587) * G + f32(0.114) * B)[..., None]


def colour_image(rgb: np.ndarray, space: str) -> np.ndarray:
    """Convert an RGB image to one of the colour spaces of selective search.

    Parameters
    ----------
    rgb : (H, W, 3) ndarray of uint8
    space : {"hsv", "lab", "rgi", "h", "i"}

    Returns
    -------
    (H, W, C) ndarray of float32
        ``C = 3`` (``1`` for "h" and "i"), every channel in [0, 255]; see
        :func:`vsum.proposals.selective_search` for the definitions.
    """
    if space == "hsv":
        return _hsv(rgb)
    if space == "h":
        return _hsv(rgb)[..., :1]
    if space == "lab":
        return _lab(rgb)
    if space == "rgi":
        return _rgi(rgb)
    if space == "i":
        return _intensity(rgb)
    raise ValueError(f"unknown colour space {space!r}; expected one of {list(COLOUR_SPACES)}")


def colour_bins(pixels: np.ndarray) -> np.ndarray:
    """Colour histogram bin of every value: ``floor(v * 25 / 256)`` in float32, clamped to 0..24.

    ``pixels`` (H, W, C) float32 -> (H, W, C) uint8.
    """
    b = (pixels * (f32(COLOUR_BINS) / f32(256))).astype(np.int64)  # truncation, as static_cast<int>
    return np.clip(b, 0, COLOUR_BINS - 1).astype(np.uint8)


def gaussian_derivative_kernels() -> tuple[np.ndarray, np.ndarray]:
    """Taps ``i = -4..4`` (float32) of the Gaussian (sigma 1, sum 1) and of its derivative.

    The derivative taps ``-i g[i]`` are scaled so that the response to the ramp
    ``f(x) = x`` is 1.  Sums run in increasing ``i``, in float32.
    """
    r = TEXTURE_RADIUS
    taps = range(-r, r + 1)
    # expf(-0.5 i^2): the float64 exp rounded to float32 equals glibc's expf here
    g = np.array([math.exp(float(f32(-0.5) * f32(i * i))) for i in taps], dtype=f32)
    gsum = f32(0)
    for v in g:
        gsum = f32(gsum + v)
    g = g / gsum
    d = np.array([-f32(i) * g[i + r] for i in taps], dtype=f32)
    dnorm = f32(0)
    for i in taps:
        dnorm = f32(dnorm + (-f32(i)) * d[i + r])
    return g, d / dnorm


def gaussian_gradients(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian derivatives ``(gx, gy)`` of an (H, W) float32 plane, each (H, W) float32.

    ``gx`` = derivative along x (columns) then smoothing along y, ``gy`` =
    smoothing along x then derivative along y; borders replicate the edge
    pixel; every sum runs over the taps in increasing offset, in float32.
    """
    g, d = gaussian_derivative_kernels()
    H, W = plane.shape
    r = TEXTURE_RADIUS
    cols, rows = np.arange(W), np.arange(H)
    smooth_x = np.zeros((H, W), dtype=f32)
    deriv_x = np.zeros((H, W), dtype=f32)
    for i in range(-r, r + 1):
        shifted = plane[:, np.clip(cols + i, 0, W - 1)]
        smooth_x = smooth_x + g[i + r] * shifted
        deriv_x = deriv_x + d[i + r] * shifted
    gx = np.zeros((H, W), dtype=f32)
    gy = np.zeros((H, W), dtype=f32)
    for i in range(-r, r + 1):
        yy = np.clip(rows + i, 0, H - 1)
        gx = gx + g[i + r] * deriv_x[yy]
        gy = gy + d[i + r] * smooth_x[yy]
    return gx, gy


def texture_bins(pixels: np.ndarray) -> np.ndarray:
    """Texture histogram bin of every pixel, channel and direction.

    For each channel, the Gaussian derivative responses in the directions
    ``theta = 0, 45, ..., 315`` degrees, ``cos(theta) gx + sin(theta) gy``
    (float32, with ``cos 45 = float32(sqrt(0.5))``), rectified, divided by
    their maximum over the image and binned: ``min(9, floor(10 * v))``
    (``v * (10 / max)`` in float32).  A direction with no positive response
    puts every pixel in bin 0.

    ``pixels`` (H, W, C) float32 -> (H, W, C, 8) uint8.
    """
    H, W, C = pixels.shape
    c45 = f32(math.sqrt(0.5))
    directions = [(f32(1), f32(0)), (c45, c45), (f32(0), f32(1)), (-c45, c45)]
    out = np.zeros((H, W, C, TEXTURE_DIRECTIONS), dtype=np.uint8)
    for c in range(C):
        gx, gy = gaussian_gradients(np.ascontiguousarray(pixels[..., c]))
        for direction in range(TEXTURE_DIRECTIONS):
            sign = f32(1) if direction < 4 else f32(-1)
            cx, cy = directions[direction % 4]
            response = np.maximum(f32(0), sign * (cx * gx + cy * gy))
            top = response.max()
            if not top > 0:
                continue
            scale = f32(TEXTURE_BINS) / top
            out[:, :, c, direction] = np.minimum(TEXTURE_BINS - 1, (response * scale).astype(np.int64))
    return out


# ---------------------------------------------------------------------------
# 2. regions of a segmentation
# ---------------------------------------------------------------------------


class RegionFeatures:
    """Initial regions of one segmentation.

    Attributes
    ----------
    colour : (n, 25 C) ndarray of float32
        Colour histograms, channel-major, each row summing to 1.
    texture : (n, 80 C) ndarray of float32
        Texture histograms, indexed ``(channel * 8 + direction) * 10 + bin``.
    size : (n,) ndarray of int64
        Pixels per region.
    box : (n, 4) ndarray of int32
        Inclusive ``(x1, y1, x2, y2)``.
    neighbours : list of (int, int)
        Sorted pairs ``a < b`` of 8-connected regions.
    """

    def __init__(self, colour, texture, size, box, neighbours):
        self.colour, self.texture, self.size, self.box, self.neighbours = colour, texture, size, box, neighbours

    @property
    def n(self) -> int:
        return len(self.size)


def _normalised_histograms(labels: np.ndarray, bins: np.ndarray, nbins: int, n: int, size: np.ndarray) -> np.ndarray:
    """(n, D * nbins) float32 histograms of ``bins`` (H, W, D) per label, L1-normalised.

    Counts are exact; each is multiplied by ``1 / (size * D)`` in float64, then
    rounded to float32 (the C++'s order).
    """
    D = bins.shape[-1]
    region = np.repeat(labels.ravel(), D)
    slot = np.tile(np.arange(D) * nbins, labels.size) + bins.reshape(-1).astype(np.int64)
    counts = np.bincount(region * (D * nbins) + slot, minlength=n * D * nbins).reshape(n, D * nbins)
    inverse = 1.0 / (size * D).astype(np.float64)
    return (counts.astype(np.float64) * inverse[:, None]).astype(f32)


def region_features(pixels: np.ndarray, labels: np.ndarray) -> RegionFeatures:
    """Histograms, sizes, boxes and adjacency of the regions of a labelling.

    Parameters
    ----------
    pixels : (H, W, C) ndarray of float32
        The colour image (:func:`colour_image`).
    labels : (H, W) ndarray of int
        Region labels ``0..n-1``.
    """
    H, W, C = pixels.shape
    n = int(labels.max()) + 1
    size = np.bincount(labels.ravel(), minlength=n).astype(np.int64)
    ys, xs = np.mgrid[0:H, 0:W]
    box = np.tile(np.array([W, H, -1, -1], dtype=np.int32), (n, 1))
    flat = labels.ravel()
    np.minimum.at(box[:, 0], flat, xs.ravel())
    np.minimum.at(box[:, 1], flat, ys.ravel())
    np.maximum.at(box[:, 2], flat, xs.ravel())
    np.maximum.at(box[:, 3], flat, ys.ravel())
    colour = _normalised_histograms(labels, colour_bins(pixels), COLOUR_BINS, n, size)
    texture = _normalised_histograms(
        labels, texture_bins(pixels).reshape(H, W, C * TEXTURE_DIRECTIONS), TEXTURE_BINS, n, size
    )
    # the same 8-neighbourhood as the segmentation graph: right, down, down-right, up-right
    pairs = set()
    for dy, dx in ((0, 1), (1, 0), (1, 1), (-1, 1)):
        a = labels[max(0, -dy) : H - max(0, dy), 0 : W - dx]
        b = labels[max(0, dy) : H + min(0, dy), dx:W]
        differ = a != b
        lo, hi = np.minimum(a, b)[differ], np.maximum(a, b)[differ]
        pairs.update(zip(lo.tolist(), hi.tolist()))
    return RegionFeatures(colour, texture, size, box, sorted(pairs))


# ---------------------------------------------------------------------------
# 3. hierarchical grouping
# ---------------------------------------------------------------------------


def _intersection(a: np.ndarray, b: np.ndarray) -> float:
    """Histogram intersection ``sum_i min(a_i, b_i)``, a float32 sum in index order."""
    return float(np.cumsum(np.minimum(a, b), dtype=f32)[-1])


def group(features: RegionFeatures, strategy: int, image_area: int) -> np.ndarray:
    """Hierarchical grouping of one segmentation with one strategy.

    Parameters
    ----------
    features : RegionFeatures
    strategy : int
        OR of :data:`TERMS` bits (1 colour, 2 texture, 4 size, 8 fill).
    image_area : int
        ``H * W``.

    Returns
    -------
    (T, 4) ndarray of int32
        The boxes of the ``n`` initial regions (label order), then of the
        region created by each merge (merge order); region ``n + m`` is the
        ``m``-th merge.
    """
    n = features.n
    use_colour, use_texture = bool(strategy & TERMS["colour"]), bool(strategy & TERMS["texture"])
    use_size, use_fill = bool(strategy & TERMS["size"]), bool(strategy & TERMS["fill"])
    colour = list(features.colour) if use_colour else None
    texture = list(features.texture) if use_texture else None
    size = features.size.tolist()
    box = [tuple(b) for b in features.box.tolist()]
    alive = [True] * n
    nbrs = [set() for _ in range(n)]
    for a, b in features.neighbours:
        nbrs[a].add(b)
        nbrs[b].add(a)
    A = float(image_area)

    def similarity(i: int, j: int) -> float:
        s = 0.0
        if use_colour:
            s += _intersection(colour[i], colour[j])
        if use_texture:
            s += _intersection(texture[i], texture[j])
        if use_size:
            s += 1.0 - float(size[i] + size[j]) / A
        if use_fill:
            bi, bj = box[i], box[j]
            bw = float(max(bi[2], bj[2]) - min(bi[0], bj[0]) + 1)
            bh = float(max(bi[3], bj[3]) - min(bi[1], bj[1]) + 1)
            s += 1.0 - (bw * bh - float(size[i] + size[j])) / A
        return s

    # min-heap of (-similarity, a, b): the most similar pair first, ties by smaller (a, b)
    heap = [(-similarity(a, b), a, b) for a, b in features.neighbours]
    heapq.heapify(heap)
    while heap:
        _, i, j = heapq.heappop(heap)
        if not (alive[i] and alive[j]):
            continue  # stale: one of them was merged already
        r = len(size)
        alive[i] = alive[j] = False
        alive.append(True)
        size.append(size[i] + size[j])
        bi, bj = box[i], box[j]
        box.append((min(bi[0], bj[0]), min(bi[1], bj[1]), max(bi[2], bj[2]), max(bi[3], bj[3])))
        wi = f32(float(size[i]) / float(size[i] + size[j]))
        wj = f32(1) - wi
        if use_colour:
            colour.append(wi * colour[i] + wj * colour[j])
        if use_texture:
            texture.append(wi * texture[i] + wj * texture[j])
        nbrs.append(set())
        for t in sorted((nbrs[i] | nbrs[j]) - {i, j}):
            nbrs[r].add(t)
            nbrs[t] -= {i, j}
            nbrs[t].add(r)
            heapq.heappush(heap, (-similarity(t, r), t, r))
        nbrs[i], nbrs[j] = set(), set()
    return np.array(box, dtype=np.int32).reshape(-1, 4)


def hierarchies(rgb: np.ndarray, spaces, ks, strategies, sigma: float) -> list[np.ndarray]:
    """Boxes of every hierarchy, in the order colour space, k, strategy (outer to inner).

    Parameters
    ----------
    rgb : (H, W, 3) ndarray of uint8
    spaces : sequence of str
    ks : sequence of float
        Segmentation thresholds; the minimum segment size is ``round(k)``
        (halves away from zero).
    strategies : sequence of int
        :data:`TERMS` bit sets.
    sigma : float

    Returns
    -------
    list of (T, 4) ndarray of int32
        One per hierarchy (:func:`group`).
    """
    H, W = rgb.shape[:2]
    lists = []
    for space in spaces:
        pixels = colour_image(rgb, space)
        for k in ks:
            min_size = math.floor(k) + (1 if k - math.floor(k) >= 0.5 else 0)  # llround
            labels = segment(pixels.astype(np.float64), sigma=sigma, k=k, min_size=min_size)
            features = region_features(pixels, labels)
            for strategy in strategies:
                lists.append(group(features, strategy, H * W))
    return lists


# ---------------------------------------------------------------------------
# 4. ranking and filters
# ---------------------------------------------------------------------------


def rank(lists, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pool the hierarchies and sort them by ``level * u``.

    Box ``t`` (0-based) of a hierarchy of ``T`` boxes has level ``T - t``;
    ``u`` is uniform in [0, 1), drawn in pool order.  The C++ draws from
    ``std::mt19937(seed)``, two 32-bit numbers ``a``, ``b`` per box, and
    returns ``((a >> 5) * 2^26 + (b >> 6)) / 2^53``: NumPy's legacy
    ``RandomState(seed).random_sample`` is exactly that generator and formula.

    Returns
    -------
    boxes : (N, 4) ndarray of int32
        All boxes of all hierarchies, ranked (stable sort, ascending score).
    scores : (N,) ndarray of float64
    """
    boxes = np.concatenate([np.asarray(l, dtype=np.int32).reshape(-1, 4) for l in lists])
    levels = np.concatenate([np.arange(len(l), 0, -1, dtype=np.float64) for l in lists])
    u = np.random.RandomState(seed).random_sample(len(levels))
    scores = levels * u
    order = np.argsort(scores, kind="stable")
    return boxes[order], scores[order]


def select(boxes, scores, H: int, W: int, num, min_side: int, border: float):
    """Walk down the ranking, keeping at most ``num`` boxes (all when None).

    A box is dropped when a side is shorter than ``min_side`` pixels, when it
    lies closer than ``border * W`` (``border * H``) pixels to the left or right
    (top or bottom) image edge unless it is the whole image, or when it was
    already kept.
    """
    mx, my = border * W, border * H
    kept, kept_scores, seen = [], [], set()
    for (x1, y1, x2, y2), score in zip(boxes.tolist(), scores.tolist()):
        if num is not None and len(kept) >= num:
            break
        if x2 - x1 + 1 < min_side or y2 - y1 + 1 < min_side:
            continue
        whole = (x1, y1, x2, y2) == (0, 0, W - 1, H - 1)
        if not whole and (x1 < mx or y1 < my or W - 1 - x2 < mx or H - 1 - y2 < my):
            continue
        if (x1, y1, x2, y2) in seen:
            continue
        seen.add((x1, y1, x2, y2))
        kept.append((x1, y1, x2, y2))
        kept_scores.append(score)
    return np.array(kept, dtype=np.int32).reshape(-1, 4), np.array(kept_scores, dtype=np.float64)


def _strategy_bits(strategy) -> int:
    terms = STRATEGIES.get(strategy, strategy) if isinstance(strategy, str) else tuple(strategy)
    if isinstance(terms, str) or not terms or any(t not in TERMS for t in terms):
        raise ValueError(f"unknown strategy {strategy!r}")
    return sum(TERMS[t] for t in set(terms))


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
    """Reference :func:`vsum.proposals.selective_search` (same parameters, same result).

    Parameters
    ----------
    image : (H, W, 3) ndarray of uint8
        RGB, ``H, W >= 16``.
    num, seed, mode, sigma, min_side, border, colour_spaces, ks, strategies
        As in :func:`vsum.proposals.selective_search`.

    Returns
    -------
    boxes : (n, 4) ndarray of int32
        Inclusive ``(x1, y1, x2, y2)``, best first.
    priorities : (n,) ndarray of float64
        Ascending scores ``level * u``.

    Notes
    -----
    Slow: in quality mode about 0.3 s for a 64 x 64 image and several seconds
    for a 224 x 224 photo, about ten times the compiled kernel's time.
    """
    rgb = np.asarray(image)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"image must be a uint8 array of shape (H, W, 3); got {rgb.dtype} {rgb.shape}")
    H, W = rgb.shape[:2]
    if H < MIN_IMAGE_SIDE or W < MIN_IMAGE_SIDE:
        raise ValueError(f"image must be at least {MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE} pixels; got {H} x {W}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}; got {mode!r}")
    setting = MODES[mode]
    spaces = [str(s).lower() for s in (setting["colour_spaces"] if colour_spaces is None else colour_spaces)]
    for s in spaces:
        if s not in COLOUR_SPACES:
            raise ValueError(f"unknown colour space {s!r}")
    kvals = [float(k) for k in (setting["ks"] if ks is None else ks)]
    bits = [_strategy_bits(s) for s in (setting["strategies"] if strategies is None else strategies)]
    if not spaces or not kvals or not bits:
        raise ValueError("colour_spaces, ks and strategies must not be empty")
    if num is not None and num < 0 or not 0 <= seed < 2**32:
        raise ValueError("num must be None or >= 0, and seed in [0, 2**32)")
    lists = hierarchies(np.ascontiguousarray(rgb), spaces, kvals, bits, float(sigma))
    boxes, scores = rank(lists, int(seed))
    return select(boxes, scores, H, W, num, int(min_side), float(border))

"""Proposal Flow matchers (stage 4): NAM, PHM and LOM for one image pair.

The kernels run in the compiled core (:mod:`vsum._core`, multi-threaded,
GIL released, results independent of the thread count).  A plain NumPy
version with the same semantics is :mod:`vsum.reference.flow`.

Importing this module does not import torch.
"""

from __future__ import annotations

import numpy as np

from ._arrays import as_boxes, as_image, as_mask, as_numeric, check_not_degenerate
from ._compiled import _core

__all__ = ["FILLS", "METHODS", "match", "match_batch", "match_field", "fill_flow", "dense_flow", "pair_flow", "warp",
           "transfer_points"]

METHODS = ("nam", "phm", "lom")


def _as_score_matrix(scores, name: str, na: int, nb: int) -> np.ndarray:
    """A finite, non-negative (na, nb) float32 C-contiguous copy (or view) of ``scores``."""
    s = as_numeric(scores, name)
    if s.shape != (na, nb):
        raise ValueError(f"{name} must have shape (len(boxes_a), len(boxes_b)) = ({na}, {nb}); got {s.shape}")
    s = np.ascontiguousarray(s, dtype=np.float32)
    if s.size and not np.isfinite(s).all():
        raise ValueError(f"{name} must be finite; it holds NaN or inf")
    if s.size and (s < 0).any():
        raise ValueError(f"{name} must be >= 0; it holds negative values")
    return s


LOM_ORDERS = ("sequential", "parallel")


def _match_options(method, order) -> tuple[str, bool]:
    """Checked ``method`` (lower case) and ``order`` of :func:`match`, as (method, lom_sequential)."""
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if order not in LOM_ORDERS:
        raise ValueError(f"order must be one of {LOM_ORDERS}; got {order!r}")
    return method.lower(), order == "sequential"


def _match_inputs(boxes_a, boxes_b, appearance, image_shape):
    """Converted and checked arrays of :func:`match`: (boxes_a, boxes_b, appearance, height, width)."""
    a = as_boxes(boxes_a, "boxes_a")
    b = as_boxes(boxes_b, "boxes_b")
    check_not_degenerate(a, "boxes_a")
    check_not_degenerate(b, "boxes_b")
    s = _as_score_matrix(appearance, "appearance", len(a), len(b))
    if image_shape is None:
        both = np.concatenate([a, b]) if len(a) + len(b) else np.zeros((1, 4), np.int64)
        image_shape = (max(1, int(both[:, 3].max()) + 1), max(1, int(both[:, 2].max()) + 1))
    try:
        height, width = (int(v) for v in image_shape)
    except (TypeError, ValueError):
        raise ValueError(f"image_shape must be a pair (H, W) of ints; got {image_shape!r}") from None
    if height <= 0 or width <= 0:
        raise ValueError(f"image_shape must be positive; got {(height, width)}")
    return a, b, s, height, width


def match(boxes_a, boxes_b, appearance, method: str = "lom", image_shape=None, order: str = "sequential") -> np.ndarray:
    """Matching confidence of every proposal pair of two images.

    Parameters
    ----------
    boxes_a : (na, 4) array-like of int
        Proposals of image A, ``(x1, y1, x2, y2)`` with inclusive pixel
        corners (x = column, y = row), as in :mod:`vsum.boxes`.
    boxes_b : (nb, 4) array-like of int
        Proposals of image B, same convention.
    appearance : (na, nb) array-like of float
        Appearance similarity ``s(a, b) >= 0`` (e.g. from
        :func:`vsum.features.appearance`); converted to float32.  Must be
        finite.
    method : {"lom", "phm", "nam"}
        Matcher, see Notes.  Default ``"lom"`` (the one the method uses).
    image_shape : (int, int), optional
        ``(H, W)`` in pixels spanning both images (use the larger height and
        width of the two); only PHM uses it, to lay out its offset histogram
        over ``[-W, W] x [-H, H]``.  Default: ``(max y2 + 1, max x2 + 1)``
        over both box sets (at least 1).
    order : {"sequential", "parallel"}, default "sequential"
        LOM only.  ``"sequential"`` is the original: rows of A are updated in
        place, in index order, and row ``a`` reads the *current* best match
        and best score of each neighbour (rows before ``a`` already updated)
        and the current sum of best scores.  It runs on one thread per pair
        (parallelise over pairs, as :func:`vsum.pairs.all_pairs` does).
        ``"parallel"`` is the order-independent variant (every row reads only
        the gated appearance), multi-threaded over rows.  On the willow-dev
        keypoint benchmark the sequential order scores slightly better
        (README), hence the default.

    Returns
    -------
    confidence : (na, nb) ndarray of float32
        ``confidence[a, b] >= 0``; the best match of ``a`` is
        ``confidence[a].argmax()``.  An empty box set gives an empty array.

    Raises
    ------
    ValueError
        Bad boxes (shape, non-integer, degenerate), ``appearance`` of the
        wrong shape or holding NaN, inf or negative values, an unknown
        ``method`` or a non-positive ``image_shape``.

    Notes
    -----
    Geometry: a box has centre ``((x1 + x2) / 2, (y1 + y2) / 2)``, width
    ``x2 - x1 + 1``, height ``y2 - y1 + 1`` and area ``w * h`` (pixels).
    Every method first zeroes each pair whose aspect ratios ``w / h`` differ
    by a factor of 2 or more (the *gated* appearance ``g``).

    * **NAM**: ``confidence = g``.
    * **PHM** (probabilistic Hough matching): each pair votes with weight
      ``g(a, b)`` for its offset ``(dx, dy)`` = centre of b - centre of a and
      scale ``s = log2(sqrt(area_b / area_a))`` (log2 of the ratio of the
      square roots of the areas), into a histogram of 90 x 90 = 8100 x-y cells
      over ``[-W, W] x [-H, H]`` and 20 scale bins over ``[-4, 4]`` (values
      outside go to the edge bins).  For each ``a`` and bin only the largest
      vote counts.  The histogram is smoothed by a separable 5x5x5 Gaussian
      (sigma 1 bin, zero padding) and ``confidence = g * smoothed[bin(a, b)]``.
    * **LOM** (local offset matching): for each ``a``, its neighbours are the
      proposals of A sharing at least one pixel with it (IoU > 0, ``a``
      included).  Each neighbour ``k`` votes with the offset of its best
      match ``b_k = argmax g[k]``: ``(dx, dy, ds)`` = (centre difference,
      ``area_b / area_k``).  Their geometric median ``m`` is found by 20
      Weiszfeld iterations from ``(1, 1, 1)`` with weights ``1 / (L1
      distance + 1e-6)``.  Then ``confidence[a, b] = g[a, b] * exp(-0.05 *
      ||(dx, dy)_ab - m_xy|| - 0.3 * |ds_ab - m_s|) * r_a`` where ``r_a`` =
      sum of the neighbours' best scores / sum of all best scores of A.  The
      best matches and scores are those of the gated appearance (``order =
      "parallel"``) or the current ones of the in-place update (``order =
      "sequential"``); a row's own new best match is the first arg max of its
      float32 confidence row.

    Cost: O(na * nb) for NAM and PHM (plus a fixed 162 000-bin smoothing),
    O(na * nb + na^2) for LOM.
    """
    method, sequential = _match_options(method, order)
    a, b, s, height, width = _match_inputs(boxes_a, boxes_b, appearance, image_shape)
    return _core.flow_match(a, b, s, method, height, width, sequential)


def match_batch(boxes_a, boxes_b, appearances, method: str = "lom", image_shapes=None,
                order: str = "sequential") -> list[np.ndarray]:
    """Matching confidence of several image pairs at once, the pairs in parallel.

    ``match_batch(A, B, S, ...)[k]`` equals ``match(A[k], B[k], S[k], ...,
    image_shape=image_shapes[k])`` exactly, for every method, order and
    thread count.

    Parameters
    ----------
    boxes_a : list of (na_k, 4) array-like of int
        Proposals of image A of each pair, as ``boxes_a`` of :func:`match`.
    boxes_b : list of (nb_k, 4) array-like of int
        Proposals of image B of each pair, same convention.
    appearances : list of (na_k, nb_k) array-like of float
        Appearance similarity of each pair, finite and ``>= 0``; converted
        to float32.
    method : {"lom", "phm", "nam"}
        Matcher of every pair, see :func:`match`.
    image_shapes : list of (int, int), optional
        ``(H, W)`` of each pair, as ``image_shape`` of :func:`match`.
        Default: each pair's own default (from its boxes).
    order : {"sequential", "parallel"}, default "sequential"
        LOM order of every pair, see :func:`match`.

    Returns
    -------
    confidences : list of (na_k, nb_k) ndarray of float32
        One confidence matrix per pair, in input order (an empty list for an
        empty batch).

    Raises
    ------
    ValueError
        Lists of different lengths, an unknown ``method`` or ``order``, or
        any error of :func:`match` in a pair; the message starts with
        ``"pair k: "``, ``k`` the lowest bad pair (the same at every thread
        count).

    Notes
    -----
    Every pair is converted and checked as in :func:`match`, then the pairs
    run in parallel on the compiled core's persistent thread pool
    (:mod:`vsum.threads`), one pair per task and each pair serial inside its
    task (a batch of one pair runs as :func:`match`).  This is the efficient
    way to match many pairs, e.g. with the sequential LOM order, which is
    serial within a pair.  The GIL is released while the pairs run.
    """
    method, sequential = _match_options(method, order)
    lists = []
    for name, value in (("boxes_a", boxes_a), ("boxes_b", boxes_b), ("appearances", appearances)):
        if isinstance(value, np.ndarray) or not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be a list with one array per pair (wrap a single pair as [array]); "
                             f"got {type(value).__name__}")
        lists.append(list(value))
    n = len(lists[0])
    if image_shapes is None:
        shapes = [None] * n
    elif isinstance(image_shapes, (list, tuple)):
        shapes = list(image_shapes)
    else:
        raise ValueError(f"image_shapes must be None or a list of (H, W), one per pair; got {image_shapes!r}")
    if any(len(v) != n for v in lists[1:]) or len(shapes) != n:
        lengths = f"{n}, {len(lists[1])}, {len(lists[2])}" + ("" if image_shapes is None else f", {len(shapes)}")
        raise ValueError("boxes_a, boxes_b, appearances (and image_shapes) must have one element per pair; "
                         f"got lengths {lengths}")
    args = [[], [], [], [], []]
    for k, (a, b, s, shape) in enumerate(zip(*lists, shapes)):
        try:
            converted = _match_inputs(a, b, s, shape)
        except ValueError as exc:
            raise ValueError(f"pair {k}: {exc}") from None
        for column, value in zip(args, converted):
            column.append(value)
    a, b, s, heights, widths = args
    return _core.flow_match_batch(a, b, s, method, heights, widths, sequential)


# ---------------------------------------------------------------------------
# dense flow field from proposal matches, edge-aware fill, warping
# ---------------------------------------------------------------------------

#: Named fills of :func:`dense_flow`.
FILLS = ("fgs", "nearest", "sd")
FILL_LAM = 1000.0
FILL_SIGMA = 40.0
FILL_ITERATIONS = 3
#: Most FGS iterations accepted (kFillMaxIterations in csrc/flow/fill.h).
FILL_MAX_ITERATIONS = 100


def _as_shape(shape, name: str) -> tuple[int, int]:
    try:
        dims = tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (H, W) of ints (or an image's .shape); got {shape!r}") from None
    if len(dims) not in (2, 3):
        raise ValueError(f"{name} must be a pair (H, W) of ints (or an image's .shape); got {shape!r}")
    if dims[0] <= 0 or dims[1] <= 0:
        raise ValueError(f"{name} must be positive; got {dims[:2]}")
    return dims[0], dims[1]


def match_field(boxes_a, boxes_b, conf, shape_a, shape_b):
    """Sparse flow field A -> B from proposal matches (before the fill).

    Parameters
    ----------
    boxes_a : (na, 4) array-like of int
        Proposals of image A, ``(x1, y1, x2, y2)`` with inclusive pixel
        corners (x = column, y = row).  Boxes may extend beyond image A (they
        are clipped; one fully outside assigns nothing).
    boxes_b : (nb, 4) array-like of int
        Proposals of image B, same convention; they may extend beyond B.
    conf : (na, nb) array-like of float
        Matching confidence ``>= 0``, finite (e.g. from :func:`match`);
        converted to float32.
    shape_a, shape_b : (int, int)
        ``(H, W)`` of images A and B in pixels (an image's ``.shape`` works too).

    Returns
    -------
    vx, vy : (Ha, Wa) ndarray of float32
        Integer-valued displacement: pixel ``(x, y)`` of A maps to pixel
        ``(x + vx, y + vy)`` of B, which always lies inside B.
    valid : (Ha, Wa) ndarray of bool
        Pixels holding a match that survived the one-to-one filter.
    score : (Ha, Wa) ndarray of float32
        Confidence of the proposal match that assigned the pixel (0 where
        never assigned).

    Raises
    ------
    ValueError
        Bad boxes (shape, non-integer, degenerate), ``conf`` of the wrong
        shape or holding NaN, inf or negative values, non-positive shapes.

    Notes
    -----
    1. Each proposal ``a`` is matched to ``best(a) = argmax conf[a]`` (first
       maximum) with score ``conf[a, best(a)]``; proposals with score 0 are
       skipped.  Proposals are visited by score, descending (ties: smaller
       index first).
    2. Each visited proposal assigns the pixels of its box (clipped to A) not
       yet assigned, mapping box A onto box B corners to corners, per axis:
       ``x' = xb1 + (x - xa1) * (xb2 - xb1) / (xa2 - xa1)`` (or the centre
       ``(xb1 + xb2) / 2`` when ``xa1 == xa2``), rounded half up
       (``floor(x' + 0.5)``) and clamped to ``[0, Wb - 1]``; same for y.
    3. One-to-one filter: when several valid pixels land on the same pixel
       of B only the highest score stays valid (ties: the smallest raster
       index ``y * Wa + x``); the others keep their ``vx, vy, score`` but
       become invalid.
    4. Pixels never assigned: ``valid = False``, ``vx = vy = score = 0``.

    Parallel over image rows, results independent of the thread count
    (a few ms for 500 boxes on a 267 x 400 image).

    See Also
    --------
    vsum.reference.dense.match_field : NumPy reference.
    fill_flow, dense_flow
    """
    a = as_boxes(boxes_a, "boxes_a")
    b = as_boxes(boxes_b, "boxes_b")
    check_not_degenerate(a, "boxes_a")
    check_not_degenerate(b, "boxes_b")
    c = _as_score_matrix(conf, "conf", len(a), len(b))
    ha, wa = _as_shape(shape_a, "shape_a")
    hb, wb = _as_shape(shape_b, "shape_b")
    return _core.flow_match_field(a, b, c, ha, wa, hb, wb)


def _as_guide(guide, shape: tuple[int, int]) -> tuple[np.ndarray, int]:
    """Image A as the fill's guide: ``(H, W * C)`` float32 rows and ``C`` (3, or 1 for a grey guide)."""
    g = as_image(guide, "guide", dtype=np.float32, grey="keep", min_side=0)
    if g.shape[:2] != shape:
        raise ValueError(f"guide must have shape {shape} or {shape + (3,)} (image A); got {np.shape(guide)}")
    return g.reshape(shape[0], -1), g.shape[2]


def _as_field(vx, vy, valid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = as_numeric(vx, "vx"), as_numeric(vy, "vy")
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"vx and vy must be 2-D arrays of the same shape (H, W); got {x.shape} and {y.shape}")
    m = as_mask(valid, "valid")
    if m.shape != x.shape:
        raise ValueError(f"valid must have the shape of vx {x.shape}; got {m.shape}")
    m = m.view(np.uint8)
    return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y, np.float32), np.ascontiguousarray(m)


def _fill_params(lam, sigma, iterations) -> tuple[float, float, int]:
    """``lam >= 0`` and ``sigma > 0`` finite floats, ``iterations`` an int in ``[1, FILL_MAX_ITERATIONS]``."""
    try:
        lam, sigma = float(lam), float(sigma)
    except (TypeError, ValueError):
        raise ValueError(f"lam and sigma must be numbers; got {lam!r}, {sigma!r}") from None
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)):
        raise ValueError(f"iterations must be an int; got {iterations!r}")
    iterations = int(iterations)
    if not (np.isfinite(lam) and lam >= 0.0):
        raise ValueError(f"lam must be finite and >= 0; got {lam}")
    if not (np.isfinite(sigma) and sigma > 0.0):
        raise ValueError(f"sigma must be finite and > 0; got {sigma}")
    if not 1 <= iterations <= FILL_MAX_ITERATIONS:
        raise ValueError(f"iterations must be in [1, {FILL_MAX_ITERATIONS}]; got {iterations}")
    return lam, sigma, iterations


def fill_flow(vx, vy, valid, guide, *, lam: float = FILL_LAM, sigma: float = FILL_SIGMA,
              iterations: int = FILL_ITERATIONS, smooth: bool = True):
    """Edge-aware fill (and smoothing) of a sparse flow field, guided by image A.

    Fast Global Smoother (Min et al., "Fast global image smoothing based on
    weighted least squares", IEEE TIP 2014) in normalised-convolution form.

    Parameters
    ----------
    vx, vy : (H, W) array-like of float
        Flow components (pixels); only the values at valid pixels are read
        (they must be finite there).
    valid : (H, W) array-like of bool
        Pixels holding data (e.g. from :func:`match_field`).
    guide : (H, W, 3) or (H, W) array-like
        Image A, RGB or grey, on the 0-255 scale.
    lam : float, default 1000
        Smoothness ``lambda >= 0``; larger fills holes further and smooths
        more (0: no propagation, holes take the nearest valid value).
    sigma : float, default 40
        Range scale of the guide edges, in guide units (0-255): neighbours
        ``p, q`` are linked with weight ``exp(-||g_p - g_q|| / sigma)``,
        ``||.||`` the Euclidean norm over the channels.
    iterations : int, default 3
        FGS iterations ``T`` in ``[1, 100]``.  The defaults scored best of
        ``lam`` in {30, 100, 300, 1000} x ``sigma`` in {5, 15, 40} on the
        willow-dev keypoint benchmark (LOM, 500 fast selective-search boxes:
        PCK@0.1 0.413 vs 0.399 for the nearest-valid fill).
    smooth : bool, default True
        True: every pixel takes the filtered value (fill + smoothing).
        False: valid pixels keep their input values exactly; only the
        invalid ones are filled.

    Returns
    -------
    vx, vy : (H, W) ndarray of float32
        Filled flow, finite everywhere.

    Raises
    ------
    ValueError
        Mismatched shapes, a float ``valid`` mask, non-finite values at valid
        pixels or in the guide, ``lam < 0``, ``sigma <= 0`` or ``iterations``
        out of range.

    Notes
    -----
    With data ``d = valid * f`` and weights ``c = valid``, the result is
    ``U(d) / U(c)``, where ``U`` applies ``T`` rounds of 1D weighted least
    squares solves ``(I + lambda_t L) u = u``, first along every row, then
    along every column (tridiagonal, Thomas algorithm), with
    ``lambda_t = 1.5 * lam * 4^(T - t) / (4^T - 1)``, ``t = 1..T``, and ``L``
    the 1D Laplacian with the guide weights above.  ``U`` has non-negative
    coefficients, so every output is a weighted mean of valid inputs (exact
    on constant fields, within their range).  Where ``U(c) < 1e-12`` (no
    valid pixel reachable) the value of the nearest valid pixel (Euclidean)
    is used, and 0 everywhere when no pixel is valid.  Cost O(T * H * W),
    parallel over rows and column blocks, results independent of the
    thread count.

    See Also
    --------
    vsum.reference.fill.fill_flow : NumPy reference.
    """
    x, y, m = _as_field(vx, vy, valid)
    g, channels = _as_guide(guide, x.shape)
    lam, sigma, iterations = _fill_params(lam, sigma, iterations)
    return _core.flow_fill(x, y, m, g, channels, lam, sigma, iterations, bool(smooth))


def _fill_nearest(vx, vy, valid, guide=None):
    """Invalid pixels take the value of the nearest valid pixel (Euclidean); zeros without any."""
    from scipy import ndimage

    valid = np.asarray(valid, bool)
    vx = np.asarray(vx, np.float32)
    vy = np.asarray(vy, np.float32)
    if not valid.any():
        return np.zeros_like(vx), np.zeros_like(vy)
    if valid.all():
        return vx.copy(), vy.copy()
    iy, ix = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return vx[iy, ix], vy[iy, ix]


def dense_flow(img_a, img_b, boxes_a, boxes_b, conf, *, fill="fgs", lam: float = FILL_LAM,
               sigma: float = FILL_SIGMA, iterations: int = FILL_ITERATIONS, smooth: bool = True):
    """Dense flow field A -> B from proposal matches.

    :func:`match_field` followed by a fill of the invalid pixels guided by
    image A.

    Parameters
    ----------
    img_a : (Ha, Wa, 3) or (Ha, Wa) array-like
        Image A (0-255 scale, e.g. uint8 RGB); guides the fill.
    img_b : (Hb, Wb[, C]) array-like
        Image B; only its shape is used.
    boxes_a, boxes_b, conf
        Proposals and their matching confidence, see :func:`match_field`.
    fill : {"fgs", "nearest", "sd"} or callable, default "fgs"
        ``"fgs"``: :func:`fill_flow` with ``lam, sigma, iterations, smooth``.
        ``"nearest"``: invalid pixels take the value of the nearest valid
        pixel (Euclidean), no smoothing.  ``"sd"``: the SD filter of the
        original method with its published parameters
        (:func:`vsum.sd_filter.sd_fill`; SciPy, about a second per pair).
        A callable is called as ``fill(vx, vy, valid, img_a) -> (vx, vy)``.
    lam, sigma, iterations, smooth
        Parameters of :func:`fill_flow` (only for ``fill="fgs"``).

    Returns
    -------
    vx, vy : (Ha, Wa) ndarray of float32
        Pixel ``(x, y)`` of A corresponds to ``(x + vx, y + vy)`` in B
        (pixel coordinates, origin at the centre of the top-left pixel).

    Raises
    ------
    ValueError
        Bad input of :func:`match_field` or :func:`fill_flow`, an image of
        the wrong rank, an unknown ``fill``, or a callable returning arrays
        of the wrong shape.
    """
    a_img = np.asarray(img_a)
    b_shape = np.shape(img_b)
    if a_img.ndim not in (2, 3):
        raise ValueError(f"img_a must be an (H, W, 3) or (H, W) image; got shape {a_img.shape}")
    if len(b_shape) not in (2, 3):
        raise ValueError(f"img_b must be an (H, W[, C]) image; got shape {b_shape}")
    vx, vy, valid, _ = match_field(boxes_a, boxes_b, conf, a_img.shape[:2], b_shape[:2])
    if fill == "sd":
        from .sd_filter import sd_fill as fill
    if callable(fill):
        out = fill(vx, vy, valid, a_img)
        try:
            fx, fy = (np.asarray(v, np.float32) for v in out)
        except (TypeError, ValueError):
            raise ValueError("a fill callable must return a pair (vx, vy) of arrays") from None
        if fx.shape != vx.shape or fy.shape != vx.shape:
            raise ValueError(f"a fill callable must return two arrays of shape {vx.shape}; got {fx.shape}, {fy.shape}")
        return fx, fy
    if fill == "fgs":
        return fill_flow(vx, vy, valid, a_img, lam=lam, sigma=sigma, iterations=iterations, smooth=smooth)
    if fill == "nearest":
        return _fill_nearest(vx, vy, valid)
    raise ValueError(f"fill must be one of {FILLS} or a callable; got {fill!r}")


def pair_flow(img_a, img_b, boxes_a, boxes_b, appearance, *, method: str = "lom", order: str = "sequential",
              fill="fgs", image_shape=None):
    """Dense flow A -> B of one image pair, from the appearance of its proposals to the filled field.

    The one place that chains stage 4 for a pair: :func:`match` (``method``,
    LOM ``order``), then :func:`dense_flow` (``fill``).  Stage 5 warps
    cluster members onto their exemplar image with it (``warp(img_b,
    *pair_flow(...))``), and the keypoint benchmark
    (:func:`vsum.evaluate.evaluate_flow`) moves keypoints with it.

    Parameters
    ----------
    img_a, img_b : (H, W, 3) array-like, 0-255 scale
        Images A and B (A guides the fill; only B's shape is used).
    boxes_a, boxes_b : (na, 4), (nb, 4) array-like of int
        Their proposals, inclusive ``(x1, y1, x2, y2)``.
    appearance : (na, nb) array-like of float
        Appearance similarity of the proposals (e.g.
        :func:`vsum.features.appearance` or
        :func:`vsum.features.whitened_scores`), finite and ``>= 0``.
    method : {"lom", "phm", "nam"}, default "lom"
    order : {"sequential", "parallel"}, default "sequential"
        LOM update order (see :func:`match`).
    fill : {"fgs", "nearest", "sd"} or callable, default "fgs"
        See :func:`dense_flow`.
    image_shape : (int, int), optional
        PHM's histogram extent (see :func:`match`); the larger height and
        width of the two images is the usual choice.

    Returns
    -------
    vx, vy : (Ha, Wa) ndarray of float32
        Pixel ``(x, y)`` of A corresponds to ``(x + vx, y + vy)`` in B.

    Raises
    ------
    ValueError
        Bad input of :func:`match` or :func:`dense_flow`.
    """
    conf = match(boxes_a, boxes_b, appearance, method, image_shape=image_shape, order=order)
    return dense_flow(img_a, img_b, boxes_a, boxes_b, conf, fill=fill)


def _as_flow(vx, vy) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(vx, dtype=np.float32)
    y = np.asarray(vy, dtype=np.float32)
    if x.ndim != 2 or x.shape != y.shape or x.size == 0:
        raise ValueError(f"vx and vy must be non-empty 2-D arrays of the same shape (H, W); got {x.shape}, {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("vx and vy must be finite")
    return x, y


def warp(img_b, vx, vy) -> np.ndarray:
    """Resample image B onto A's grid through the flow A -> B.

    Parameters
    ----------
    img_b : (Hb, Wb) or (Hb, Wb, C) array-like
        Image B, any of uint8, uint16, int16, float32, float64 (other
        numeric dtypes are resampled in float64 and cast back).
    vx, vy : (Ha, Wa) array-like of float
        Flow A -> B in pixels (e.g. from :func:`dense_flow`), finite.

    Returns
    -------
    warped : (Ha, Wa) or (Ha, Wa, C) ndarray, dtype of ``img_b``
        ``warped[y, x] = B(x + vx[y, x], y + vy[y, x])``, bilinear
        (``cv2.remap``, ``INTER_LINEAR``, ``BORDER_REPLICATE``: positions
        outside B read its nearest edge pixel).  Integer flows reproduce
        B's pixels exactly.

    Raises
    ------
    ValueError
        Mismatched or non-finite flow, an empty image or one of the wrong rank.
    """
    import cv2

    b = as_numeric(img_b, "img_b", "a numeric image")
    if b.ndim not in (2, 3) or b.shape[0] == 0 or b.shape[1] == 0:
        raise ValueError(f"img_b must be a non-empty (H, W) or (H, W, C) image; got shape {b.shape}")
    x, y = _as_flow(vx, vy)
    h, w = x.shape
    map_x = np.arange(w, dtype=np.float32)[None, :] + x
    map_y = np.arange(h, dtype=np.float32)[:, None] + y
    native = b.dtype in (np.uint8, np.uint16, np.int16, np.float32, np.float64)
    src = b if native else b.astype(np.float64)
    planes = [src] if src.ndim == 2 or src.shape[2] <= 4 else [src[:, :, k] for k in range(src.shape[2])]
    out = [cv2.remap(np.ascontiguousarray(p), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
           for p in planes]
    res = out[0] if len(out) == 1 else np.stack(out, axis=2)
    if b.ndim == 3 and res.ndim == 2:  # cv2 drops a trailing axis of length 1
        res = res[:, :, None]
    if not native:
        res = np.rint(res) if b.dtype.kind in "biu" else res
        res = res.astype(b.dtype)
    return res


def transfer_points(points_xy, vx, vy) -> np.ndarray:
    """Move points of image A through the flow A -> B.

    Parameters
    ----------
    points_xy : (k, 2) array-like of float
        ``(x, y)`` pixel coordinates in A, origin at the centre of the
        top-left pixel (sub-pixel positions allowed), finite.
    vx, vy : (H, W) array-like of float
        Flow A -> B (e.g. from :func:`dense_flow`).

    Returns
    -------
    points : (k, 2) ndarray of float64
        ``p + flow(q)``, where ``q`` is ``p`` clamped to ``[0, W - 1] x
        [0, H - 1]`` and the flow is sampled bilinearly at ``q``.
        The result is not clamped to B.

    Raises
    ------
    ValueError
        Points not of shape (k, 2) or not finite; a bad flow.
    """
    p = np.asarray(points_xy, dtype=np.float64)
    if p.ndim == 1 and p.size == 0:
        p = p.reshape(0, 2)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points_xy must have shape (k, 2); got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("points_xy must be finite")
    x, y = _as_flow(vx, vy)
    h, w = x.shape
    qx = np.clip(p[:, 0], 0.0, w - 1.0)
    qy = np.clip(p[:, 1], 0.0, h - 1.0)
    x0 = np.minimum(np.floor(qx).astype(np.int64), max(w - 2, 0))
    y0 = np.minimum(np.floor(qy).astype(np.int64), max(h - 2, 0))
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = qx - x0
    fy = qy - y0

    def sample(f):
        f = f.astype(np.float64)
        top = f[y0, x0] * (1 - fx) + f[y0, x1] * fx
        bottom = f[y1, x0] * (1 - fx) + f[y1, x1] * fx
        return top * (1 - fy) + bottom * fy

    return np.stack([p[:, 0] + sample(x), p[:, 1] + sample(y)], axis=1)

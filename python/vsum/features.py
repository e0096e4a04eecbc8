"""Stage 3: Felzenszwalb HOG, proposal descriptors, whitening, appearance scores.

- :func:`hog` - the 31-dimensional Felzenszwalb HOG of an image (the DPM /
  voc-release ``features.cc`` variant, without the 32nd truncation feature),
  computed in the compiled core.
- :func:`describe` - one 1984-dimensional HOG descriptor per box (box padded by
  one cell, resized to 80 x 80, inner 8 x 8 cells), batched and parallel over
  the boxes of an image.
- :func:`whiten` / :func:`appearance` - the whitened (LDA) similarity of
  Hariharan, Malik and Ramanan (ECCV 2012) with the background statistics
  shipped in ``vsum/data/hog_stats.npz`` (made by
  ``scripts/estimate_hog_stats.py``)::

      s(a, b) = max(0, w_a . h_b + bias_a),  w_a = S^-1 (h_a - mu),  bias_a = -w_a . mu

Image convention
----------------
Images are ``(H, W, 3)`` RGB arrays (or ``(H, W)`` grey, replicated to three
channels) of any integer or float dtype, converted to float32 **without
rescaling**: pass values on the **0-255 scale** (e.g. the ``uint8`` array of a
decoded photo), as voc-release does.  The features are invariant to a global
scale of the image except through ``eps = 1e-4`` added to the block energies
before normalisation: a [0, 1] image behaves like a 0-255 image whose eps is
65025 times larger, which damps faint gradients (multiply such images by 255).

Boxes are ``(x1, y1, x2, y2)`` int with inclusive pixel corners, x = column
(see :mod:`vsum.boxes`).

NumPy references with the same semantics: :mod:`vsum.reference.hog`
(tests and benchmarks only; nothing here imports it).
Importing this module does not import torch.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._arrays import as_boxes, as_image, check_not_degenerate
from ._compiled import _core
from ._config import StageConfig

__all__ = [
    "DESC_CELLS",
    "DESC_LENGTH",
    "DescriptorConfig",
    "MIN_IMAGE_SIDE",
    "FEATURES",
    "STATS_PATH",
    "WhiteningModel",
    "appearance",
    "as_cell",
    "as_descriptors",
    "as_proposals",
    "describe",
    "hog",
    "hog_shape",
    "load_stats",
    "whitening_model",
    "whiten",
    "whitened_scores",
]

#: Features per HOG cell (18 contrast-sensitive + 9 insensitive orientations + 4 texture).
FEATURES = 31
#: Cells per side of a proposal descriptor, and its length (8 * 8 * 31).
DESC_CELLS = 8
DESC_LENGTH = DESC_CELLS * DESC_CELLS * FEATURES
#: :func:`describe` needs images at least this many pixels on each side.
MIN_IMAGE_SIDE = 16
#: Largest HOG cell side accepted, in pixels.
MAX_CELL = 1 << 12

#: The background statistics shipped with the package.
STATS_PATH = Path(__file__).resolve().parent / "data" / "hog_stats.npz"
#: Default ridge, relative to the mean diagonal of the stationary covariance.
DEFAULT_RIDGE = 0.01


@dataclass(frozen=True)
class DescriptorConfig(StageConfig):
    """Stage-3 settings: none can be changed.

    The descriptor layout is fixed by the method (``docs/method.md``, stage
    3): the box padded by one HOG cell, resized to 80 x 80 pixels, 31-d
    Felzenszwalb HOG with 8-pixel cells, the inner 8 x 8 cells
    (:data:`DESC_LENGTH` = 1984 values).  The class exists so that stage 3
    has a configuration like every stage, keyed into the run cache: a
    setting added here later invalidates stored descriptors.
    """


def as_cell(cell) -> int:
    """Validate the HOG cell size: an integer in ``[1, 4096]`` (ValueError otherwise)."""
    if isinstance(cell, bool) or not isinstance(cell, (int, np.integer)):
        raise ValueError(f"cell must be an integer number of pixels; got {cell!r}")
    cell = int(cell)
    if not 1 <= cell <= MAX_CELL:
        raise ValueError(f"cell must be an integer in [1, {MAX_CELL}]; got {cell}")
    return cell


def hog_shape(height: int, width: int, cell: int = 8) -> tuple[int, int, int]:
    """Shape of :func:`hog` for an ``height x width`` image.

    ``(max(round(height / cell) - 2, 0), max(round(width / cell) - 2, 0), 31)``
    with halves rounded up (C ``llround``): e.g. 224 x 224 with 8 px cells gives
    ``(26, 26, 31)``, 375 x 500 gives ``(45, 61, 31)``, 80 x 80 gives ``(8, 8, 31)``.
    """
    cell = as_cell(cell)

    def blocks(side: int) -> int:
        return int(math.floor(int(side) / cell + 0.5))

    return max(blocks(height) - 2, 0), max(blocks(width) - 2, 0), FEATURES


def hog(image, cell: int = 8) -> np.ndarray:
    """Felzenszwalb's 31-dimensional HOG (voc-release variant), compiled.

    Parameters
    ----------
    image : (H, W, 3) or (H, W) array-like, integer or float
        RGB (or grey) image on the 0-255 scale (see the module notes); row =
        y, column = x.  Converted to C-contiguous float32.
    cell : int, default 8
        Cell side in pixels, ``1 <= cell <= 4096``.

    Returns
    -------
    features : (max(round(H/cell) - 2, 0), max(round(W/cell) - 2, 0), 31) ndarray of float32
        Per cell ``(y, x)`` of the image's ``round(H/cell) x round(W/cell)``
        grid minus its border cells (feature cell ``(i, j)`` is grid cell
        ``(i + 1, j + 1)``, whose pixels are ``[(i + 1) * cell, (i + 2) * cell)``):

        - ``[0:18]`` contrast-sensitive orientations (bin ``o`` centred at
          ``o * 20`` degrees of ``atan2(dy, dx)``, dy pointing down the rows),
        - ``[18:27]`` contrast-insensitive orientations (bins ``o`` and ``o + 9``
          summed before normalisation),
        - ``[27:31]`` texture: ``0.2357 *`` the sum over the 18 sensitive
          orientations of each of the 4 block normalisations.

        Orientation features are ``0.5 *`` the sum over the 4 normalisations
        of ``min(h / sqrt(E + 1e-4), 0.2)``, ``E`` the gradient energy of a
        2 x 2 block of cells containing the cell, so each lies in ``[0, 0.4]``.
        An image with fewer than 3 cells on a side gives an empty array.

    Raises
    ------
    ValueError
        For a bad shape, dtype, non-finite values or cell size.

    Notes
    -----
    Per pixel: central differences per channel, the channel with the largest
    gradient magnitude (pixels read at ``(min(y, H-2), min(x, W-2))``, border
    pixels of the cell grid do not vote).  Each pixel votes its magnitude into
    the two nearest of the 18 orientation bins (linear in angle) and into the
    4 nearest cells (bilinear in space, cell centres at
    ``(c + 0.5) * cell - 0.5``).  The rest follows voc-release ``features.cc``.

    See Also
    --------
    vsum.reference.hog.fhog : NumPy reference.

    Examples
    --------
    >>> import numpy as np
    >>> from vsum.features import hog
    >>> hog(np.zeros((224, 224, 3), np.uint8)).shape
    (26, 26, 31)
    """
    return _core.fhog(as_image(image, "image", dtype=np.float32, min_side=0), as_cell(cell))


def describe(image, boxes) -> np.ndarray:
    """HOG descriptors of boxes of one image (stage 3), compiled and parallel over boxes.

    Parameters
    ----------
    image : (H, W, 3) or (H, W) array-like, integer or float
        The image on the 0-255 scale, at least 16 x 16 pixels.
    boxes : (n, 4) array-like of int
        Boxes ``(x1, y1, x2, y2)`` with inclusive corners in the image's pixel
        coordinates; they may extend beyond the image.

    Returns
    -------
    descriptors : (n, 1984) ndarray of float32
        Row ``i`` is the ``(8, 8, 31)`` FHOG of box ``i`` flattened in ``(cell
        y, cell x, feature)`` order.  The box (``w x h`` pixels) is padded by
        ``8 * w / 64`` pixels left and right and ``8 * h / 64`` above and
        below (one cell), sampled bilinearly (no antialiasing) onto an
        80 x 80 grid with edge replication outside the image (pixel centres:
        output column ``u`` reads source column
        ``x1 - w/8 - 0.5 + (u + 0.5) * w / 64``), and described with
        :func:`hog` (8 px cells: 10 x 10 cells, the inner 8 x 8 kept, which
        cover exactly the box).  ``n = 0`` gives a ``(0, 1984)`` array.

    Raises
    ------
    ValueError
        If the image is smaller than 16 x 16 or invalid, or ``boxes`` is not
        ``(n, 4)`` integer, or a box is degenerate (``x2 < x1`` or ``y2 < y1``;
        the message names the row).

    See Also
    --------
    vsum.reference.hog.describe : NumPy reference.
    whiten, appearance : the whitened similarity of descriptors.
    """
    im = as_image(image, "image", dtype=np.float32, min_side=MIN_IMAGE_SIDE)
    b = as_boxes(boxes, "boxes")
    check_not_degenerate(b, "boxes")
    return _core.hog_describe(im, b)


# ---------------------------------------------------------------------------
# whitening (Hariharan, Malik, Ramanan, ECCV 2012)
# ---------------------------------------------------------------------------


def load_stats(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Background HOG statistics: mean cell ``mu`` and stationary covariances ``gamma``.

    Parameters
    ----------
    path : path-like, optional
        An ``.npz`` written by ``scripts/estimate_hog_stats.py``; default: the
        file shipped with the package (:data:`STATS_PATH`).

    Returns
    -------
    stats : dict
        ``mu`` (31,) float64, the mean FHOG cell; ``gamma`` (15, 15, 31, 31)
        float64 with ``gamma[dy + 7, dx + 7] = E[(f(y, x) - mu) (f(y + dy,
        x + dx) - mu)^T]`` for ``|dy|, |dx| <= 7``; ``max_offset`` (7); and
        the provenance entries of the file (``images``, ``scales``,
        ``created``, ...), as NumPy values.
    """
    path = Path(path) if path is not None else STATS_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"HOG background statistics not found at {path}; run scripts/estimate_hog_stats.py "
            f"(or reinstall the package, which ships vsum/data/hog_stats.npz)"
        )
    with np.load(path, allow_pickle=False) as data:
        stats = {k: data[k] for k in data.files}
    mu, gamma = stats.get("mu"), stats.get("gamma")
    if mu is None or gamma is None or mu.shape != (FEATURES,) or gamma.ndim != 4 or gamma.shape[2:] != (FEATURES, FEATURES):
        raise ValueError(f"{path} is not a HOG statistics file (needs mu (31,) and gamma (2k+1, 2k+1, 31, 31))")
    k = (gamma.shape[0] - 1) // 2
    if gamma.shape[:2] != (2 * k + 1, 2 * k + 1) or k < DESC_CELLS - 1:
        raise ValueError(f"{path}: gamma must cover offsets up to {DESC_CELLS - 1}; got shape {gamma.shape}")
    stats["mu"] = mu.astype(np.float64)
    stats["gamma"] = gamma.astype(np.float64)
    stats["max_offset"] = k
    return stats


@dataclass(frozen=True, eq=False)
class WhiteningModel:
    """The whitened 1984-dimensional model of :func:`describe` descriptors.

    Attributes
    ----------
    mu : (1984,) ndarray of float64
        The mean cell tiled over the 8 x 8 cells (descriptor order).
    sigma : (1984, 1984) ndarray of float64
        Stationary covariance of the 8 x 8 window, ``sigma[(p, f), (q, g)] =
        gamma_b[q_y - p_y, q_x - p_x][f, g]``, symmetrised, plus ``ridge * I``;
        ``gamma_b(d) = gamma(d) * counts(d) / counts(0)`` is the biased
        (zero-padded) autocovariance estimate, positive semi-definite.
    chol : (1984, 1984) ndarray of float64
        Lower Cholesky factor of ``sigma``.
    ridge : float
        The absolute ridge lambda added to the diagonal.
    relative_ridge : float
        ``ridge`` divided by the mean diagonal of the covariance.
    """

    mu: np.ndarray
    sigma: np.ndarray
    chol: np.ndarray
    ridge: float
    relative_ridge: float
    _torch_cache: dict = field(default_factory=dict, repr=False)

    def solve(self, centred: np.ndarray) -> np.ndarray:
        """``sigma^-1 @ centred.T`` transposed: (n, 1984) float64 -> (n, 1984) float64."""
        from scipy.linalg import cho_solve

        if centred.shape[0] == 0:
            return np.zeros_like(centred)
        return cho_solve((self.chol, True), centred.T, check_finite=False).T


def build_model(stats: dict[str, Any], ridge: float = DEFAULT_RIDGE) -> WhiteningModel:
    """Assemble :class:`WhiteningModel` from :func:`load_stats` output.

    ``ridge`` is relative: lambda = ``ridge * mean(diag(covariance))``.
    About a second (a 1984 x 1984 Cholesky factorisation).
    """
    ridge = float(ridge)
    if not (ridge > 0 and np.isfinite(ridge)):
        raise ValueError(f"ridge must be a positive finite number; got {ridge!r}")
    k, gamma = int(stats["max_offset"]), stats["gamma"]
    counts = stats.get("counts")
    if counts is not None:
        # Biased (zero-padded) autocovariance: gamma(d) * N_d / N_0.  Unlike the
        # per-offset averages it makes every window covariance positive
        # semi-definite (a sum of outer products of zero-padded windows), so a
        # small ridge suffices for the Cholesky factorisation.
        gamma = gamma * (counts / counts[k, k])[:, :, None, None]
    c = DESC_CELLS
    cy, cx = np.divmod(np.arange(c * c), c)
    blocks = gamma[(cy[None, :] - cy[:, None]) + k, (cx[None, :] - cx[:, None]) + k]  # (64, 64, 31, 31)
    n = c * c * FEATURES
    sigma = blocks.transpose(0, 2, 1, 3).reshape(n, n)
    sigma = 0.5 * (sigma + sigma.T)
    # FHOG has exact linear dependencies (per cell, the sum of the 18 sensitive
    # features is proportional to the sum of the 4 texture features): the
    # ridge makes sigma positive definite.
    lam = ridge * float(np.mean(np.diag(sigma)))
    sigma[np.diag_indices(n)] += lam
    chol = np.linalg.cholesky(sigma)
    mu = np.tile(stats["mu"], c * c)
    return WhiteningModel(mu=mu, sigma=sigma, chol=chol, ridge=lam, relative_ridge=ridge)


@functools.lru_cache(maxsize=4)
def _cached_model(path: str | None, ridge: float) -> WhiteningModel:
    return build_model(load_stats(path), ridge)


def whitening_model(ridge: float = DEFAULT_RIDGE, stats_path: str | os.PathLike | None = None) -> WhiteningModel:
    """The (cached) whitening model for a relative ``ridge`` and statistics file.

    Built once per ``(stats_path, ridge)`` on first use (about a second) and
    kept for the process.
    """
    return _cached_model(None if stats_path is None else str(Path(stats_path).resolve()), float(ridge))


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch") and type(x).__name__ == "Tensor"


def as_descriptors(desc, name: str = "descriptors") -> np.ndarray:
    """Validate descriptors: an ``(n, 1984)`` finite numeric array as C-contiguous float32 (ValueError otherwise)."""
    arr = np.asarray(desc)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, DESC_LENGTH)
    if arr.ndim != 2 or arr.shape[1] != DESC_LENGTH:
        raise ValueError(f"{name} must have shape (n, {DESC_LENGTH}) (see vsum.features.describe); got {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be a float array; got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.size and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def as_proposals(boxes, descriptors) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Validate the proposals of N images and their descriptors, image by image.

    Parameters
    ----------
    boxes : sequence of N (n_i, 4) array-likes of int
        Boxes ``(x1, y1, x2, y2)``, inclusive corners, not degenerate.
    descriptors : sequence of N (n_i, 1984) array-likes of float
        One finite descriptor per box (:func:`describe`).

    Returns
    -------
    boxes : list of N (n_i, 4) int32 arrays
    descriptors : list of N (n_i, 1984) float32 arrays, C-contiguous

    Raises
    ------
    ValueError
        Naming the image: bad boxes, bad descriptors, or a descriptor count
        other than the box count (the callers check the list lengths).
    """
    out_boxes, out_descs = [], []
    for i, (b, d) in enumerate(zip(boxes, descriptors)):
        b = as_boxes(b, f"boxes[{i}]")
        check_not_degenerate(b, f"boxes[{i}]")
        d = as_descriptors(d, f"descriptors[{i}]")
        if len(d) != len(b):
            raise ValueError(f"descriptors[{i}] has {len(d)} rows but boxes[{i}] has {len(b)} boxes")
        out_boxes.append(b)
        out_descs.append(d)
    return out_boxes, out_descs


def whiten(desc, *, ridge: float = DEFAULT_RIDGE, stats_path=None) -> tuple[np.ndarray, np.ndarray]:
    """LDA weights of descriptors: ``w = S^-1 (h - mu)``, ``bias = -w . mu``.

    Parameters
    ----------
    desc : (n, 1984) array-like of float
        Descriptors from :func:`describe`.
    ridge : float, default 0.01
        Ridge lambda relative to the mean diagonal of the background
        covariance (added to the diagonal before the Cholesky factorisation).
    stats_path : path-like, optional
        Background statistics; default: the shipped ``hog_stats.npz``.

    Returns
    -------
    w : (n, 1984) ndarray of float32
        Whitened descriptors (computed in float64 with a Cholesky solve).
    bias : (n,) ndarray of float32
        ``-w . mu`` with ``mu`` the mean cell tiled over the 8 x 8 cells, so
        that ``w . h + bias = w . (h - mu)``.
    """
    h = as_descriptors(desc, "desc").astype(np.float64)
    model = whitening_model(ridge, stats_path)
    w = model.solve(h - model.mu)
    bias = -(w @ model.mu)
    return w.astype(np.float32), bias.astype(np.float32)


def _appearance_torch(desc_a, desc_b, model: WhiteningModel):
    import torch

    ref = desc_a if _is_torch(desc_a) else desc_b
    device = ref.device
    a = torch.as_tensor(desc_a, device=device).to(torch.float64)
    b = torch.as_tensor(desc_b, device=device).to(torch.float32)
    for name, t in (("desc_a", a), ("desc_b", b)):
        if t.ndim != 2 or t.shape[1] != DESC_LENGTH:
            raise ValueError(f"{name} must have shape (n, {DESC_LENGTH}); got {tuple(t.shape)}")
    key = str(device)
    if key not in model._torch_cache:
        model._torch_cache[key] = (
            torch.as_tensor(model.chol, device=device),
            torch.as_tensor(model.mu, device=device),
        )
    chol, mu = model._torch_cache[key]
    if a.shape[0] == 0 or b.shape[0] == 0:
        return torch.zeros((a.shape[0], b.shape[0]), dtype=torch.float32, device=device)
    w = torch.cholesky_solve((a - mu).T.contiguous(), chol).T  # (na, 1984) float64
    bias = -(w @ mu)
    scores = torch.addmm(bias.to(torch.float32)[:, None], w.to(torch.float32), b.T)
    return scores.clamp_(min=0)


def appearance(desc_a, desc_b, *, ridge: float = DEFAULT_RIDGE, stats_path=None):
    """Whitened appearance similarity of every pair of descriptors.

    Parameters
    ----------
    desc_a : (na, 1984) array-like or torch.Tensor
        Descriptors of the proposals of image A (:func:`describe`).
    desc_b : (nb, 1984) array-like or torch.Tensor
        Descriptors of the proposals of image B.
    ridge, stats_path
        As in :func:`whiten`.

    Returns
    -------
    scores : (na, nb) ndarray of float32, or torch.Tensor (float32)
        ``max(0, w_a . h_b + bias_a)`` with ``(w_a, bias_a) = whiten(desc_a)``:
        not symmetric.  Computed as one matrix product (NumPy BLAS, float32).
        When either input is a torch tensor the result is a float32 tensor on
        that tensor's device (GPU if it is on the GPU), computed with torch.
        Empty inputs give an empty ``(na, nb)`` result.
    """
    model = whitening_model(ridge, stats_path)
    if _is_torch(desc_a) or _is_torch(desc_b):
        return _appearance_torch(desc_a, desc_b, model)
    b = as_descriptors(desc_b, "desc_b")
    w, bias = whiten(desc_a, ridge=ridge, stats_path=stats_path)
    return whitened_scores(w, bias, b)


def whitened_scores(w: np.ndarray, bias: np.ndarray, desc_b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``max(0, w @ desc_b.T + bias[:, None])``: :func:`appearance` from already whitened descriptors.

    For callers that score one image against many (whiten it once with
    :func:`whiten`).  Inputs are used as given (not validated): ``w`` (na,
    1984) float32 and ``bias`` (na,) float32 from :func:`whiten`, ``desc_b``
    (nb, 1984) float32 C-contiguous from :func:`describe`.  ``out``, when
    given, is a float32 (na, nb) buffer that receives the scores.  The same
    BLAS call as :func:`appearance`, so the scores are bit-identical.

    Returns
    -------
    (na, nb) ndarray of float32 (``out`` when given).
    """
    na, nb = w.shape[0], desc_b.shape[0]
    if out is None:
        out = np.empty((na, nb), np.float32)
    if na == 0 or nb == 0:
        out[...] = 0.0
        return out
    np.matmul(w, desc_b.T, out=out)
    out += bias[:, None]
    np.maximum(out, 0.0, out=out)
    return out

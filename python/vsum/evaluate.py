"""Keypoint benchmark of dense flow fields (PCK), in the PF-WILLOW style.

A *keypoint dataset* is a folder with one sub-folder per class; each class
folder holds images and ``keypoints.json``, a mapping from image file name to
a list of ``[x, y]`` points (the same parts in the same order in every image
of the class; ``null`` for a point that is not visible).  Coordinates are
pixels with the origin at the centre of the top-left pixel.

For every ordered pair (A, B) of distinct images of a class the flow A -> B
(stages 2-4: selective search, HOG descriptors, proposal matching, dense flow)
moves each visible keypoint of A; it is correct when it lands within
``alpha * max(bbox_w, bbox_h)`` pixels of the same keypoint in B, the box
being the bounding box of B's visible keypoints.  A pair's PCK is the fraction
of keypoints visible in both images that are correct; a class's PCK is the
mean over its pairs, and the dataset's the mean over classes.

:func:`synthetic_pair` and :func:`write_synthetic_dataset` build pairs with
exactly known correspondences (a photo and its scaled and shifted copy) to
test the evaluator itself.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import VsumError

__all__ = [
    "ALPHAS",
    "FlowEvalConfig",
    "KeypointClass",
    "load_keypoint_class",
    "PreparedImage",
    "SyntheticPair",
    "evaluate_flow",
    "load_keypoint_dataset",
    "pair_pck",
    "prepare_image",
    "synthetic_pair",
    "write_synthetic_dataset",
]

ALPHAS = (0.05, 0.1, 0.2)
KEYPOINTS_FILE = "keypoints.json"
#: Default :attr:`FlowEvalConfig.max_side`: images are evaluated with their longer side at most this many pixels.
#: Proposal flow works on 500 boxes and 8-pixel HOG cells whatever the size, so a 12-Mpixel photo at full
#: resolution costs gigabytes (its flow fields, warps and fill) and adds no accuracy; PF-WILLOW images are about
#: 300 pixels, so 1024 changes nothing on them.
DEFAULT_MAX_SIDE = 1024
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class FlowEvalConfig:
    """Settings of :func:`evaluate_flow`; the defaults are the published parameters.

    Attributes
    ----------
    methods : tuple of str
        Matchers to evaluate, from ``"nam"``, ``"phm"``, ``"lom"``.
    alphas : tuple of float
        PCK thresholds, as fractions of the longer side of B's keypoint box.
    num_proposals : int
        Selective-search proposals per image (``num_op``, 500).
    seed : int
        Seed of the selective-search ranking.
    fill : str
        Hole filling of the dense flow, passed to :func:`vsum.flow.dense_flow`
        (``"fgs"``: edge-aware fast global smoother; ``"nearest"``: nearest
        valid pixel; ``"sd"``: the SD filter of the original, slow).
    order : {"sequential", "parallel"}
        LOM update order (:func:`vsum.flow.match`).
    max_side : int or None
        Images whose longer side exceeds it are downscaled (keypoints scaled
        with them, PCK measured in the downscaled frame); default
        :data:`DEFAULT_MAX_SIDE` (1024), None keeps full resolution.
    """

    methods: tuple[str, ...] = ("lom",)
    alphas: tuple[float, ...] = ALPHAS
    num_proposals: int = 500
    seed: int = 0
    fill: str = "fgs"
    order: str = "sequential"
    max_side: int | None = DEFAULT_MAX_SIDE

    def __post_init__(self):
        from .flow import FILLS, LOM_ORDERS, METHODS

        methods = tuple(str(m).lower() for m in self.methods)
        bad = [m for m in methods if m not in METHODS]
        if bad or not methods:
            raise VsumError(f"methods must be a non-empty selection of {METHODS}; got {self.methods!r}")
        object.__setattr__(self, "methods", tuple(dict.fromkeys(methods)))
        alphas = tuple(float(a) for a in self.alphas)
        if not alphas or not all(0 < a <= 1 for a in alphas):
            raise VsumError(f"alphas must be numbers in (0, 1]; got {self.alphas!r}")
        object.__setattr__(self, "alphas", alphas)
        if int(self.num_proposals) < 1:
            raise VsumError(f"num_proposals must be >= 1; got {self.num_proposals}")
        if self.fill not in FILLS:
            raise VsumError(f"fill must be one of {FILLS}; got {self.fill!r}")
        if self.order not in LOM_ORDERS:
            raise VsumError(f"order must be one of {LOM_ORDERS}; got {self.order!r}")
        if self.max_side is not None and int(self.max_side) < 16:
            raise VsumError(f"max_side must be >= 16 pixels; got {self.max_side}")


@dataclass
class KeypointClass:
    """One class of a keypoint dataset.

    Attributes
    ----------
    name : str
        The class folder's name.
    paths : list of Path
        Its images, sorted by file name.
    points : (n_images, n_points, 2) ndarray of float64
        ``points[i, k] = (x, y)`` of keypoint k in image i, in pixels (origin
        at the centre of the top-left pixel); NaN where not visible.
    """

    name: str
    paths: list[Path]
    points: np.ndarray


def _parse_point(value, where: str) -> tuple[float, float]:
    if value is None:
        return (math.nan, math.nan)
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise VsumError(f"{where}: a keypoint must be [x, y] or null; got {value!r}")
    try:
        x, y = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        raise VsumError(f"{where}: keypoint coordinates must be numbers; got {value!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise VsumError(f"{where}: keypoint coordinates must be finite; got {value!r}")
    return (x, y)


def _load_class(folder: Path) -> KeypointClass:
    from .io import display_text

    file = folder / KEYPOINTS_FILE
    try:
        table = json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise VsumError(f"{display_text(str(file))}: not UTF-8 text (byte {exc.start}: {exc.reason}); "
                        f"save it as UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise VsumError(f"{display_text(str(file))}: not valid JSON ({exc})") from None
    if not isinstance(table, dict) or not table:
        raise VsumError(f"{file}: must be a non-empty mapping from image file name to a list of [x, y] points")
    names = sorted(table)
    counts = {len(table[n]) if isinstance(table[n], list) else -1 for n in names}
    if len(counts) != 1 or -1 in counts:
        raise VsumError(f"{file}: every image must list the same number of keypoints; got counts {sorted(counts)}")
    paths, rows = [], []
    for name in names:
        path = folder / name
        if Path(name).name != name or not path.is_file():
            raise VsumError(f"{file}: image {name!r} not found in {folder}")
        paths.append(path)
        rows.append([_parse_point(p, f"{file} [{name!r}][{k}]") for k, p in enumerate(table[name])])
    return KeypointClass(name=display_text(folder.name), paths=paths, points=np.asarray(rows, dtype=np.float64).reshape(len(names), -1, 2))


def load_keypoint_class(folder) -> KeypointClass:
    """One class folder of a keypoint dataset: its photos and ``keypoints.json`` (VsumError when malformed)."""
    folder = Path(folder)
    if not (folder / KEYPOINTS_FILE).is_file():
        from .io import display_text

        raise VsumError(f"{display_text(str(folder))} holds no {KEYPOINTS_FILE}")
    return _load_class(folder)


def load_keypoint_dataset(root) -> list[KeypointClass]:
    """Read a keypoint dataset (see the module docstring for the format).

    Parameters
    ----------
    root : path-like
        The dataset folder (one sub-folder per class), or a single class
        folder holding ``keypoints.json``.

    Returns
    -------
    list of KeypointClass
        Sorted by class name; classes with fewer than two images are kept (they
        contribute no pair and are reported as such).

    Raises
    ------
    VsumError
        Missing folder, no class with a ``keypoints.json``, malformed JSON,
        unequal keypoint counts, missing images, non-numeric coordinates.
    """
    root = Path(root)
    if not root.is_dir():
        raise VsumError(f"keypoint dataset folder not found: {root}")
    if (root / KEYPOINTS_FILE).is_file():
        folders = [root]
    else:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and (p / KEYPOINTS_FILE).is_file())
    if not folders:
        raise VsumError(f"{root}: no class folder with a {KEYPOINTS_FILE} (expected <root>/<class>/{KEYPOINTS_FILE})")
    return [_load_class(f) for f in folders]


def pair_pck(predicted, target, alphas: Sequence[float] = ALPHAS) -> tuple[np.ndarray, int]:
    """PCK of one pair: keypoints of A moved by the flow vs the keypoints of B.

    Parameters
    ----------
    predicted : (k, 2) array-like of float
        Where the flow sends A's keypoints, ``(x, y)`` pixels in B; NaN rows
        (not visible in A) are not counted.
    target : (k, 2) array-like of float
        B's keypoints; NaN rows (not visible in B) are not counted.
    alphas : sequence of float
        Thresholds as fractions of ``max(bbox_w, bbox_h)`` of B's visible
        keypoints.

    Returns
    -------
    pck : (len(alphas),) ndarray of float64
        Fraction of counted keypoints within ``alpha * max(bbox_w, bbox_h)``
        (Euclidean distance ``<=`` the threshold); NaN when nothing is counted.
    counted : int
        Keypoints visible in both images.
    """
    p = np.asarray(predicted, dtype=np.float64).reshape(-1, 2)
    t = np.asarray(target, dtype=np.float64).reshape(-1, 2)
    if p.shape != t.shape:
        raise ValueError(f"predicted and target must have the same shape; got {p.shape} and {t.shape}")
    seen_b = np.isfinite(t).all(axis=1)
    both = seen_b & np.isfinite(p).all(axis=1)
    alphas = np.asarray(alphas, dtype=np.float64)
    if not both.any():
        return np.full(len(alphas), np.nan), 0
    box = t[seen_b]
    size = float(max(box[:, 0].max() - box[:, 0].min(), box[:, 1].max() - box[:, 1].min()))
    dist = np.hypot(*(p[both] - t[both]).T)
    return (dist[None, :] <= alphas[:, None] * size).mean(axis=1), int(both.sum())


@dataclass
class PreparedImage:
    """Stages 2-3 of one image, computed once and shared by all its pairs.

    Attributes
    ----------
    rgb : (H, W, 3) ndarray of uint8
    boxes : (n, 4) ndarray of int32
        Selective-search proposals, inclusive ``(x1, y1, x2, y2)``.
    descriptors : (n, 1984) ndarray of float32
    weights : (n, 1984) ndarray of float32
        Whitened descriptors ``w = S^-1 (h - mu)``.
    bias : (n,) ndarray of float32
    scale : float
        Factor applied to the file's pixel coordinates (1 unless downscaled).
    """

    rgb: np.ndarray
    boxes: np.ndarray
    descriptors: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    scale: float = 1.0


def prepare_image(rgb: np.ndarray, num_proposals: int = 500, seed: int = 0, scale: float = 1.0) -> PreparedImage:
    """Selective search, descriptors and whitening of one RGB uint8 image."""
    from .features import describe, whiten
    from .proposals import selective_search

    boxes, _ = selective_search(rgb, num=num_proposals, seed=seed)
    desc = describe(rgb, boxes)
    w, bias = whiten(desc)
    return PreparedImage(rgb=rgb, boxes=boxes, descriptors=desc, weights=w, bias=bias, scale=scale)


def _flow(a: PreparedImage, b: PreparedImage, method: str, config: FlowEvalConfig) -> tuple[np.ndarray, np.ndarray]:
    """Dense flow A -> B of two prepared images (:func:`vsum.flow.pair_flow`)."""
    from .features import whitened_scores
    from .flow import pair_flow

    scores = whitened_scores(a.weights, a.bias, b.descriptors)
    shape = (max(a.rgb.shape[0], b.rgb.shape[0]), max(a.rgb.shape[1], b.rgb.shape[1]))
    return pair_flow(a.rgb, b.rgb, a.boxes, b.boxes, scores, method=method, order=config.order, fill=config.fill,
                     image_shape=shape)


def _read(path: Path, max_side: int | None) -> tuple[np.ndarray, float]:
    from .io import ImageSkip, display_text, downscale_longest_side, read_image

    try:
        rgb = read_image(path).rgb
    except ImageSkip as exc:
        raise VsumError(f"{display_text(str(path))}: {exc}") from None
    scale = 1.0
    if max_side is not None and max(rgb.shape[:2]) > max_side:
        small = downscale_longest_side(rgb, max_side)
        scale = small.shape[1] / rgb.shape[1]
        rgb = small
    return rgb, scale


def evaluate_flow(root, config: FlowEvalConfig | None = None, *, progress: bool = False,
                  flow_fn: Callable | None = None) -> dict:
    """PCK of the dense flow of every method on a keypoint dataset.

    Parameters
    ----------
    root : path-like
        Keypoint dataset (see :func:`load_keypoint_dataset`).
    config : FlowEvalConfig, optional
        Methods, thresholds, proposals, fill; defaults as published.
    progress : bool
        Show a progress bar per class.
    flow_fn : callable, optional
        ``flow_fn(prepared_a, prepared_b, method) -> (vx, vy)`` replacing
        the dense flow of :func:`vsum.flow.pair_flow` (for experiments and tests).

    Returns
    -------
    dict
        JSON-ready: ``config``; ``classes`` (per class: images, pairs, keypoints
        counted, and per method ``pck`` {alpha: value} and ``seconds``);
        ``mean`` (per method {alpha: mean over classes}); ``seconds``
        (``prepare`` for stages 2-3, per method, ``total``).
    """
    from tqdm.auto import tqdm

    from .flow import transfer_points
    from .io import display_text, json_float

    config = config or FlowEvalConfig()
    classes = load_keypoint_dataset(root)
    start = time.perf_counter()
    prepare_seconds = 0.0
    method_seconds = {m: 0.0 for m in config.methods}
    per_class = []
    for cls in classes:
        t0 = time.perf_counter()
        prepared = []
        for path in cls.paths:
            rgb, scale = _read(path, config.max_side)
            prepared.append(prepare_image(rgb, config.num_proposals, config.seed, scale))
        prepare_seconds += time.perf_counter() - t0
        n = len(prepared)
        pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
        entry = {"name": cls.name, "images": n, "pairs": len(pairs), "methods": {}}
        bar = tqdm(total=len(pairs) * len(config.methods), desc=cls.name, unit="pair", leave=False,
                   disable=not progress)
        for method in config.methods:
            t1 = time.perf_counter()
            values, counted = [], 0
            for i, j in pairs:
                a, b = prepared[i], prepared[j]
                if flow_fn is not None:
                    vx, vy = flow_fn(a, b, method)
                else:
                    vx, vy = _flow(a, b, method, config)
                pts_a = cls.points[i] * a.scale
                moved = np.full_like(pts_a, np.nan)
                seen = np.isfinite(pts_a).all(axis=1)
                if seen.any():
                    moved[seen] = transfer_points(pts_a[seen], vx, vy)
                pck, count = pair_pck(moved, cls.points[j] * b.scale, config.alphas)
                if count:
                    values.append(pck)
                    counted += count
                bar.update(1)
            seconds = time.perf_counter() - t1
            method_seconds[method] += seconds
            mean = np.mean(values, axis=0) if values else np.full(len(config.alphas), np.nan)
            entry["methods"][method] = {
                "pck": {str(a): json_float(v) for a, v in zip(config.alphas, mean)},  # None: no pair counted
                "pairs_counted": len(values),
                "keypoints_counted": counted,
                "seconds": round(seconds, 3),
            }
        bar.close()
        per_class.append(entry)
    means = {}
    for method in config.methods:
        rows = [[c["methods"][method]["pck"][str(a)] for a in config.alphas] for c in per_class
                if c["methods"][method]["pairs_counted"]]
        means[method] = {str(a): (json_float(v) if rows else None)
                         for a, v in zip(config.alphas, np.mean(rows, axis=0) if rows else config.alphas)}
    return {
        "dataset": display_text(str(Path(root))),
        "config": asdict(config),
        "classes": per_class,
        "mean": means,
        "seconds": {"prepare": round(prepare_seconds, 3), **{m: round(s, 3) for m, s in method_seconds.items()},
                    "total": round(time.perf_counter() - start, 3)},
    }


def _pck_text(value, bold: bool = False) -> str:
    """A PCK for the table: 3 decimals, ``n/a`` when no pair was counted (None)."""
    text = "n/a" if value is None else f"{value:.3f}"
    return f"**{text}**" if bold else text


def format_table(result: dict) -> str:
    """Markdown table of an :func:`evaluate_flow` result: one row per class and method (``n/a``: no pair counted)."""
    alphas = [str(a) for a in result["config"]["alphas"]]
    lines = ["| class | method | " + " | ".join(f"PCK@{a}" for a in alphas) + " | pairs |",
             "|---|---|" + "---:|" * (len(alphas) + 1)]
    for c in result["classes"]:
        for m, r in c["methods"].items():
            lines.append(f"| {c['name']} | {m.upper()} | " + " | ".join(_pck_text(r["pck"][a]) for a in alphas)
                         + f" | {r['pairs_counted']} |")
    for m, r in result["mean"].items():
        lines.append(f"| **mean** | **{m.upper()}** | " + " | ".join(_pck_text(r[a], True) for a in alphas) + " | |")
    return "\n".join(lines)


@dataclass
class SyntheticPair:
    """A photo A and its scaled and shifted copy B with exact correspondences.

    Point ``p`` of A is ``scale * p + shift`` in B (pixel coordinates, origin
    at the top-left pixel centre).

    Attributes
    ----------
    image_a, image_b : (H, W, 3) ndarray of uint8
        B has A's size; what falls outside is replicated from the border.
    points_a, points_b : (k, 2) ndarray of float64
        Keypoints ``(x, y)``, all inside both images.
    vx, vy : (H, W) ndarray of float32
        The exact flow A -> B: ``vx = (scale - 1) * x + shift_x``, likewise vy.
    scale : float
    shift : (float, float)
    """

    image_a: np.ndarray
    image_b: np.ndarray
    points_a: np.ndarray
    points_b: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    scale: float = 1.0
    shift: tuple[float, float] = field(default=(0.0, 0.0))


def synthetic_pair(image, scale: float = 0.8, shift=(12.0, 6.0), num_points: int = 10, seed: int = 0,
                   points_a=None) -> SyntheticPair:
    """Make a :class:`SyntheticPair` from an RGB uint8 image.

    The keypoints are ``points_a`` ((k, 2) float, in A) when given, else drawn
    uniformly (seeded) among the positions of A whose image in B lies at least
    2 pixels inside B.
    """
    import cv2

    a = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) uint8; got shape {a.shape}")
    scale = float(scale)
    if not scale > 0:
        raise ValueError(f"scale must be positive; got {scale}")
    tx, ty = (float(v) for v in shift)
    h, w = a.shape[:2]
    m = np.array([[scale, 0.0, tx], [0.0, scale, ty]])
    b = cv2.warpAffine(a, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    lo_x, hi_x = max(0.0, (2 - tx) / scale), min(w - 1.0, (w - 3 - tx) / scale)
    lo_y, hi_y = max(0.0, (2 - ty) / scale), min(h - 1.0, (h - 3 - ty) / scale)
    if not (lo_x < hi_x and lo_y < hi_y):
        raise ValueError("scale and shift leave no pixel of A inside B")
    if points_a is None:
        rng = np.random.default_rng(seed)
        pa = np.stack([rng.uniform(lo_x, hi_x, num_points), rng.uniform(lo_y, hi_y, num_points)], axis=1)
    else:
        pa = np.asarray(points_a, dtype=np.float64).reshape(-1, 2)
    pb = pa * scale + [tx, ty]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return SyntheticPair(a, b, pa, pb, ((scale - 1) * xs + tx).astype(np.float32),
                         ((scale - 1) * ys + ty).astype(np.float32), scale, (tx, ty))


def write_synthetic_dataset(folder, image, transforms=((0.8, (12.0, 6.0)), (1.0, (-10.0, 4.0))),
                            num_points: int = 10, seed: int = 0, class_name: str = "synthetic") -> Path:
    """Write a one-class keypoint dataset: ``image`` plus one copy per ``(scale, shift)``.

    Returns the dataset folder (``folder``); the class folder is
    ``folder/class_name`` with ``a.png``, ``b0.png``, ``b1.png``, ... and
    ``keypoints.json``.
    """
    import cv2

    image = np.asarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    lo, hi = np.zeros(2), np.array([w - 1.0, h - 1.0])
    for scale, shift in transforms:  # positions of A that stay 2 px inside B under every transform
        t = np.asarray(shift, dtype=np.float64)
        lo = np.maximum(lo, (2 - t) / scale)
        hi = np.minimum(hi, (np.array([w - 3.0, h - 3.0]) - t) / scale)
    if not (lo < hi).all():
        raise ValueError("the transforms leave no common pixel of A inside every copy")
    rng = np.random.default_rng(seed)
    points_a = rng.uniform(lo, hi, (num_points, 2))
    cls = Path(folder) / class_name
    cls.mkdir(parents=True, exist_ok=True)
    table = {"a.png": points_a.tolist()}
    cv2.imwrite(str(cls / "a.png"), image[:, :, ::-1])
    for k, (scale, shift) in enumerate(transforms):
        pair = synthetic_pair(image, scale, shift, points_a=points_a)
        cv2.imwrite(str(cls / f"b{k}.png"), pair.image_b[:, :, ::-1])
        table[f"b{k}.png"] = pair.points_b.tolist()
    (cls / KEYPOINTS_FILE).write_text(json.dumps(table, indent=1), encoding="utf-8")
    return Path(folder)

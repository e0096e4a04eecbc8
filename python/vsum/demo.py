"""Built-in demo images: real photos that ship with scikit-image.

They need no download and no data folder, so ``vsum masks --demo`` and
``vsum demo`` run on a fresh install.

- :func:`demo_image_paths`: five photos of five different things (a tabby
  cat, a coffee cup, a rocket, an astronaut, a motorbike); ``vsum masks
  --demo`` explains each for the model's own top-1 class.
- :func:`write_demo_views`: one class for stages 1-5.  Visual summaries need
  several photos of one class, and scikit-image ships one photo of a cat
  (``chelsea.png``), so the demo class is made of views of it: the photo
  itself plus crops at other scales and positions, mirrored, slightly
  rotated and with other brightness and contrast.  Corresponding parts
  (eyes, nose, ears) then sit at different places and sizes in each view,
  which is what proposal flow has to match.  Real classes are run with
  ``vsum summarize FOLDER``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import VsumError

#: scikit-image's bundled photographs (file names inside ``skimage.data.data_dir``).
DEMO_FILES = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "motorcycle_left.png")

#: The photo the ``vsum demo`` class is made of (a tabby cat).
DEMO_CLASS_SOURCE = "chelsea.png"


@dataclass(frozen=True)
class DemoConfig:
    """What ``vsum demo`` runs: the built-in class and its reduced schedule.

    Attributes
    ----------
    views : int, default 8
        Images in the demo class (the photo itself and ``views - 1`` altered views).
    smooth_iterations, sharp_iterations : int, default 100 and 50
        Stage-1 iterations, a third of the published 300 and 150, so the demo
        finishes in a few minutes on a 2-core CPU.  Everything else uses the
        published defaults.
    seed : int, default 0
        Seed of the views.
    """

    views: int = 8
    smooth_iterations: int = 100
    sharp_iterations: int = 50
    seed: int = 0

    def __post_init__(self):
        for name, low in (("views", 2), ("smooth_iterations", 1), ("sharp_iterations", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"DemoConfig: {name} must be an integer >= {low}; got {value!r}")


def _skimage_data_dir() -> Path:
    try:
        from skimage import data
    except ImportError:
        raise VsumError("the demo images come from scikit-image: pip install scikit-image") from None
    return Path(data.data_dir)


def demo_image_paths() -> list[Path]:
    """Paths of the demo photos (a tabby cat, a coffee cup, a rocket, an astronaut, a motorbike)."""
    root = _skimage_data_dir()
    paths = [root / name for name in DEMO_FILES if (root / name).is_file()]
    if not paths:
        raise VsumError(f"scikit-image's bundled photos are missing from {root}")
    return paths


def altered_view(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One altered view of a photo: crop, scale, mirror, rotation and tone.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 array
    rng : numpy Generator
        Draws the crop size (60-95 % of the photo's width and height), its
        centre, the rotation (-12 to 12 degrees), the mirror (p = 0.5), the
        contrast (x 0.8-1.2) and the brightness (-20 to 20 grey levels).

    Returns
    -------
    (h, w, 3) uint8 array
        The view at the resolution of the crop (the same aspect ratio as ``rgb``).
    """
    import cv2

    height, width = rgb.shape[:2]
    scale = rng.uniform(0.6, 0.95)
    out_w, out_h = int(round(width * scale)), int(round(height * scale))
    angle = rng.uniform(-12.0, 12.0)
    # centre of the crop, far enough inside that the rotated crop stays in the photo
    margin_x, margin_y = (width - out_w) / 2, (height - out_h) / 2
    cx = width / 2 + rng.uniform(-margin_x, margin_x)
    cy = height / 2 + rng.uniform(-margin_y, margin_y)
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    matrix[:, 2] += (out_w / 2 - cx, out_h / 2 - cy)
    view = cv2.warpAffine(rgb, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    if rng.random() < 0.5:
        view = view[:, ::-1]
    contrast, brightness = rng.uniform(0.8, 1.2), rng.uniform(-20.0, 20.0)
    toned = (view.astype(np.float32) - 128.0) * contrast + 128.0 + brightness
    return np.ascontiguousarray(np.clip(np.rint(toned), 0, 255).astype(np.uint8))


def write_demo_views(out_dir: str | Path, views: int = 8, seed: int = 0) -> list[Path]:
    """Write the demo class: ``out_dir/chelsea_00.png`` (the photo) and ``views - 1`` altered views.

    Deterministic for a given ``seed``; every file is written atomically, and
    files that already hold the same pixels are left alone (so a rerun of
    ``vsum demo`` resumes from its cache).

    Returns
    -------
    list of Path
        The ``views`` PNG files, in order.
    """
    from .io import atomic_write_png, read_image

    if views < 2:
        raise ValueError(f"views must be >= 2; got {views}")
    source = _skimage_data_dir() / DEMO_CLASS_SOURCE
    if not source.is_file():
        raise VsumError(f"scikit-image's demo photo {source} is missing")
    rgb = read_image(source).rgb
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(views):
        view = rgb if k == 0 else altered_view(rgb, rng)
        path = out_dir / f"{Path(DEMO_CLASS_SOURCE).stem}_{k:02d}.png"
        if not (path.is_file() and _same_pixels(path, view)):
            atomic_write_png(path, view)
        paths.append(path)
    return paths


def _same_pixels(path: Path, rgb: np.ndarray) -> bool:
    from .io import ImageSkip, read_image

    try:
        stored = read_image(path).rgb
    except ImageSkip:
        return False
    return stored.shape == rgb.shape and bool(np.array_equal(stored, rgb))


def majority_class(paths: list[Path], classifier) -> int:
    """The top-1 class most of ``paths`` get, preprocessed as stage 1 sees them (whole image resized).

    Ties go to the class of the earliest image.
    """
    import torch

    from .io import read_image
    from .preprocess import resize_whole

    side = classifier.input_size
    batch = torch.stack([resize_whole(read_image(p, max_side=side).rgb, side) for p in paths]).to(classifier.device)
    with torch.no_grad():
        top1 = classifier.logits(batch).argmax(dim=1).cpu().tolist()
    counts = Counter(top1)
    return max(top1, key=lambda c: (counts[c], -top1.index(c)))


def run_demo(out: str | Path = "runs/demo", model="efficientnet_lite0", config: DemoConfig | None = None, *,
             force: bool = False, progress: bool = True, device: str | None = None, wait: bool = False):
    """Stages 1-5 on the built-in demo class (``vsum demo``).

    Writes the views to ``out/images/`` and runs :func:`vsum.pipeline.summarize`
    on them into ``out/`` with the published parameters, except the stage-1
    iterations of ``config``.  The class explained is the top-1 class most
    views get (a tabby cat for the default model).

    Parameters
    ----------
    out : path-like
        Run folder.
    model : str or vsum.models.Classifier
        Default: the offline EfficientNet-Lite0.
    config : DemoConfig, optional
    force, progress, device, wait
        As for :func:`vsum.pipeline.summarize`.

    Returns
    -------
    vsum.pipeline.RunResult
    """
    from .masks import MaskConfig
    from .models import as_classifier
    from .pipeline import PipelineConfig, summarize

    config = config if config is not None else DemoConfig()
    if not isinstance(config, DemoConfig):
        raise ValueError(f"config must be a DemoConfig; got {type(config).__name__}")
    classifier = as_classifier(model, device)
    out = Path(out)
    paths = write_demo_views(out / "images", config.views, config.seed)
    target = majority_class(paths, classifier)
    masks = MaskConfig().with_iterations(config.smooth_iterations, config.sharp_iterations)
    return summarize(paths, classifier, target=target, out=out, config=PipelineConfig(masks=masks), force=force,
                     progress=progress, wait=wait)

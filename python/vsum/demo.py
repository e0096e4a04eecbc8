"""A built-in demo image set: real photos that ship with scikit-image.

They need no download and no data folder, so ``vsum masks --demo`` runs on a
fresh install. Each is explained for the default model's own top-1 class.
"""

from __future__ import annotations

from pathlib import Path

from . import VsumError

#: scikit-image's bundled photographs (file names inside ``skimage.data.data_dir``).
DEMO_FILES = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "motorcycle_left.png")


def demo_image_paths() -> list[Path]:
    """Paths of the demo photos (a tabby cat, a coffee cup, a rocket, an astronaut, a motorbike)."""
    try:
        from skimage import data
    except ImportError:
        raise VsumError("the demo images come from scikit-image: pip install scikit-image") from None
    root = Path(data.data_dir)
    paths = [root / name for name in DEMO_FILES if (root / name).is_file()]
    if not paths:
        raise VsumError(f"scikit-image's bundled photos are missing from {root}")
    return paths

"""Helpers shared by several test files (pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


def shared_data_path() -> Path:
    """Where the shared test photos should be: ``$VSUM_DATA``, else ``<repo>/../shared/data``."""
    env = os.environ.get("VSUM_DATA")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def require_data(present: bool, what: str) -> None:
    """Skip the calling test when shared test data is missing, or fail under ``VSUM_REQUIRE_DATA=1``.

    ``what`` names the data the test needs (e.g. ``"5 albatross photos in ..."``).
    """
    if present:
        return
    message = f"needs {what}, which is not there"
    if os.environ.get("VSUM_REQUIRE_DATA") == "1":
        pytest.fail(f"VSUM_REQUIRE_DATA=1 but the test {message}")
    pytest.skip(message)


def random_boxes(rng: np.random.Generator, n: int, height: int, width: int, *, min_side: int = 1,
                 max_side: int | None = None, outside: int = 0) -> np.ndarray:
    """``(n, 4)`` int32 inclusive boxes inside a ``height x width`` image, or up to ``outside`` px beyond it.

    Sides are drawn from ``min_side..max_side`` (default: half the shorter image side, at least 2).
    """
    ms = max_side or max(2, min(height, width) // 2)
    w = rng.integers(min_side, ms + 1, n)
    h = rng.integers(min_side, ms + 1, n)
    x1 = rng.integers(-outside, width - w + 1 + outside)
    y1 = rng.integers(-outside, height - h + 1 + outside)
    return np.stack([x1, y1, x1 + w - 1, y1 + h - 1], axis=1).astype(np.int32)


def albatross_thumbnails(data_dir: Path, count: int, side: int = 128) -> tuple[list, list]:
    """The first ``count`` albatross photos shrunk to ``side`` px (aspect kept), each with a centred elliptic mask.

    Returns ``(images, masks)``: ``(H, W, 3) uint8`` arrays and ``(H, W)`` bool
    ellipses with semi-axes 0.4 H and 0.4 W (a stand-in for stage 1).
    """
    from PIL import Image

    files = sorted((data_dir / "albatross").glob("*.jpg"))[:count]
    require_data(len(files) == count, f"{count} albatross photos in {data_dir / 'albatross'}")
    images, masks = [], []
    for f in files:
        with Image.open(f) as im:
            im = im.convert("RGB")
            im.thumbnail((side, side))
            a = np.asarray(im)
        h, w = a.shape[:2]
        yy, xx = np.mgrid[:h, :w]
        images.append(a)
        masks.append(((yy - h / 2) / (0.4 * h)) ** 2 + ((xx - w / 2) / (0.4 * w)) ** 2 < 1)
    return images, masks


def require_chromium() -> str:
    """The headless Chromium binary; skips the calling test without one, or fails under ``VSUM_REQUIRE_CHROMIUM=1``."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("VSUM_REQUIRE_CHROMIUM") == "1":
        pytest.fail("VSUM_REQUIRE_CHROMIUM=1 but no chromium, chromium-browser or google-chrome on PATH")
    pytest.skip("no Chromium binary (chromium, chromium-browser, google-chrome) on PATH")

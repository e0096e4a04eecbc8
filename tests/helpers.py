"""Helpers shared by several test files (pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import numpy as np


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

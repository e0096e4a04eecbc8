"""A synthetic image class with known parts, for the stage-5 and pipeline tests (no shared data needed).

Every image shows one "bird" on a textured background: a striped body
(ellipse), a red head (square with an eye) and a checkered tail (square),
at a random position, scale and orientation (mirrored or not).  The
binary mask is the bird's silhouette, which stands in for stage 1; the part
label of every pixel is known, so a test can ask which part a box shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

#: Part labels of :attr:`SyntheticClass.parts`.
BACKGROUND, BODY, HEAD, TAIL = 0, 1, 2, 3
PART_NAMES = {BODY: "body", HEAD: "head", TAIL: "tail"}


@dataclass
class SyntheticClass:
    """Images of one synthetic class.

    Attributes
    ----------
    images : list of (side, side, 3) uint8 arrays
    masks : list of (side, side) bool arrays
        The bird's silhouette.
    parts : list of (side, side) uint8 arrays
        Part label of every pixel (0 background, 1 body, 2 head, 3 tail).
    """

    images: list
    masks: list
    parts: list

    def part_of_box(self, image: int, box) -> int:
        """The part covering most pixels of an inclusive box (0 when the background dominates)."""
        x1, y1, x2, y2 = (int(v) for v in box)
        labels = self.parts[image][max(y1, 0):y2 + 1, max(x1, 0):x2 + 1]
        counts = np.bincount(labels.ravel(), minlength=4)
        return int(counts.argmax())

    def write(self, folder: Path) -> list[Path]:
        """Save the images as ``bird_<k>.png`` in ``folder``; their paths."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for k, rgb in enumerate(self.images):
            path = folder / f"bird_{k:02d}.png"
            cv2.imwrite(str(path), rgb[:, :, ::-1])
            paths.append(path)
        return paths


def _background(rng: np.random.Generator, side: int) -> np.ndarray:
    """Smooth coloured noise: texture for the proposals and the HOG of the background."""
    noise = rng.normal(0.0, 1.0, (side // 8, side // 8, 3)).astype(np.float32)
    smooth = cv2.resize(noise, (side, side), interpolation=cv2.INTER_CUBIC)
    base = rng.uniform(60, 140, 3).astype(np.float32)
    return np.clip(base + 25.0 * smooth, 0, 255)


def synthetic_class(n: int = 5, side: int = 128, seed: int = 0) -> SyntheticClass:
    """``n`` images of the synthetic bird class, ``side x side`` pixels, deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    images, masks, parts = [], [], []
    for _ in range(n):
        canvas = _background(rng, side)
        label = np.zeros((side, side), np.uint8)
        scale = side / 128.0 * rng.uniform(0.7, 0.9)
        cx, cy = side / 2 + rng.uniform(-0.12, 0.12) * side, side / 2 + rng.uniform(-0.1, 0.1) * side
        flip = -1.0 if rng.random() < 0.5 else 1.0

        def pt(x: float, y: float) -> tuple[int, int]:
            return int(round(cx + flip * x * scale)), int(round(cy + y * scale))

        # body: an ellipse with dark vertical stripes
        body = np.zeros((side, side), np.uint8)
        cv2.ellipse(body, pt(0, 0), (int(28 * scale), int(18 * scale)), 0, 0, 360, 1, -1)
        stripes = (np.arange(side)[None, :] // max(2, int(5 * scale))) % 2 == 0
        colour_body = np.array([200, 170, 40], np.float32)
        canvas[body == 1] = colour_body
        canvas[(body == 1) & stripes] = colour_body * 0.55
        label[body == 1] = BODY
        # tail: a blue and white checkered square behind the body
        tail = np.zeros((side, side), np.uint8)
        corners = [pt(-26, -12), pt(-52, 12)]
        (xa, ya), (xb, yb) = corners
        cv2.rectangle(tail, (min(xa, xb), min(ya, yb)), (max(xa, xb), max(ya, yb)), 1, -1)
        tail &= (label == 0).astype(np.uint8)
        yy, xx = np.mgrid[0:side, 0:side]
        checker = ((yy // max(2, int(4 * scale))) + (xx // max(2, int(4 * scale)))) % 2 == 0
        canvas[tail == 1] = (40, 90, 200)
        canvas[(tail == 1) & checker] = (230, 230, 240)
        label[tail == 1] = TAIL
        # head: a red rounded square in front, with a black eye
        head = np.zeros((side, side), np.uint8)
        (xa, ya), (xb, yb) = pt(26, -32), pt(52, -6)
        cv2.rectangle(head, (min(xa, xb), min(ya, yb)), (max(xa, xb), max(ya, yb)), 1, -1)
        canvas[head == 1] = (190, 40, 40)
        cv2.circle(canvas, pt(42, -22), max(1, int(4 * scale)), (10, 10, 10), -1)
        label[head == 1] = HEAD
        images.append(np.ascontiguousarray(np.clip(np.rint(canvas), 0, 255).astype(np.uint8)))
        masks.append(label > 0)
        parts.append(label)
    return SyntheticClass(images, masks, parts)

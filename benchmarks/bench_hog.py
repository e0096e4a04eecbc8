"""Benchmark `hog`: compiled FHOG and proposal descriptors (vsum.features) vs the
NumPy reference (vsum.reference.hog), and vs skimage.feature.hog on the same input.

The descriptor cases are the issue's target: one real photo resized to
224 x 224, its 500 boxes from vsum.proposals.selective_search (set-up, not
timed), all described in one call ("fhog + describe" also computes the FHOG
of the whole photo); target >= 20x the NumPy reference and faster than
skimage.feature.hog of the same 80 x 80 crops."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np

from harness import Case, benchmark

HERE = Path(__file__).resolve().parent


def _data_dir() -> Path:
    env = os.environ.get("VSUM_DATA")
    return Path(env) if env else HERE.parent.parent / "shared" / "data"


def _photo(width: int, height: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A real photo resized to width x height (uint8 RGB), else random noise."""
    path = _data_dir() / "paper-examples" / "robin1.jpg"
    if path.is_file():
        from PIL import Image

        with Image.open(path) as img:
            return np.asarray(img.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)), path.name
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "random"


def _proposals(image: np.ndarray, n: int) -> np.ndarray:
    """The first n selective-search proposals of the image (the boxes stage 3 describes)."""
    from vsum.proposals import selective_search

    boxes, _ = selective_search(image, num=n)
    return boxes


def _median_time(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _close(a, b) -> None:
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    for x, y in zip(a, b):
        scale = max(float(np.abs(y).max(initial=0.0)), 1e-6)
        assert float(np.abs(x - y).max(initial=0.0)) <= 1e-4 * scale


def _skimage_measure(fn):
    """measure(): skimage time of the same work and the compiled speed-up over it."""

    def measure(result):
        t = _median_time(fn)
        return {"skimage median": f"{t * 1e3:.3g} ms", "vs skimage": f"{t / result.timing.median_s:.1f}x"}

    return measure


@benchmark(
    "hog",
    description="FHOG (31-d, 8 px cells) and 1984-d proposal descriptors: compiled vs NumPy reference; "
    "skimage.feature.hog (9 orientations, 8 px cells, 2x2 blocks) on the same images / 80x80 crops",
)
def cases(quick: bool):
    from skimage.feature import hog as sk_hog

    import vsum.features as vf
    from vsum.reference import hog as ref

    def sk(image):
        return sk_hog(image, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), channel_axis=-1)

    rng = np.random.default_rng(0)
    for W, H in [(224, 224)] if quick else [(224, 224), (500, 375)]:
        image, source = _photo(W, H, rng)
        yield Case(
            name=f"fhog {W}x{H}",
            fn=lambda image=image: vf.hog(image),
            reference=lambda image=image: ref.fhog(image),
            check=_close,
            work=1,
            unit="images",
            params={"op": "fhog", "image": f"{W}x{H} {source}", "boxes": ""},
            measure=_skimage_measure(lambda image=image: sk(image)),
        )

    # The case: one 224 x 224 photo, its 500 selective-search boxes,
    # described in one call.
    image, source = _photo(224, 224, rng)
    boxes = _proposals(image, 100 if quick else 500)
    n = len(boxes)
    crops = [ref.crop_box(image, b) for b in boxes]  # the very crops the descriptors see
    yield Case(
        name=f"describe {n} boxes",
        fn=lambda: vf.describe(image, boxes),
        reference=lambda: ref.describe(image, boxes),
        check=_close,
        work=n,
        unit="boxes",
        params={"op": "describe", "image": f"224x224 {source}", "boxes": f"{n} selective search"},
        reference_repeat=5,
        measure=_skimage_measure(lambda: [sk(c) for c in crops]),
    )
    yield Case(
        name=f"fhog + describe {n} boxes",
        fn=lambda: (vf.hog(image), vf.describe(image, boxes)),
        reference=lambda: (ref.fhog(image), ref.describe(image, boxes)),
        check=_close,
        work=n,
        unit="boxes",
        params={"op": "fhog+describe", "image": f"224x224 {source}", "boxes": f"{n} selective search"},
        reference_repeat=5,
        measure=_skimage_measure(lambda: (sk(image), [sk(c) for c in crops])),
    )

"""Benchmark `boxes`: compiled box kernels (vsum.boxes) vs the NumPy reference."""

from __future__ import annotations

import numpy as np

from harness import Case, benchmark


def _random_boxes(rng: np.random.Generator, n: int, size: int, min_side: int, max_side: int) -> np.ndarray:
    """n boxes inside a size x size frame, sides in [min_side, max_side]."""
    w = rng.integers(min_side, max_side + 1, n)
    h = rng.integers(min_side, max_side + 1, n)
    x1 = rng.integers(0, size - w + 1)
    y1 = rng.integers(0, size - h + 1)
    return np.stack([x1, y1, x1 + w - 1, y1 + h - 1], axis=1).astype(np.int32)


def _assert_equal(a, b) -> None:
    np.testing.assert_array_equal(a, b)


@benchmark("boxes", description="box IoU / overlap-min / mask coverage: compiled core vs NumPy reference")
def cases(quick: bool):
    import vsum.boxes as vb
    from vsum.reference import boxes as ref

    rng = np.random.default_rng(0)
    for n in [500] if quick else [500, 2000]:
        a = _random_boxes(rng, n, 1024, 8, 512)
        b = _random_boxes(rng, n, 1024, 8, 512)
        for op in ("iou", "overlap_min"):
            fn, ref_fn = getattr(vb, op), getattr(ref, op)
            yield Case(
                name=f"{op} {n}x{n}",
                fn=lambda fn=fn, a=a, b=b: fn(a, b),
                reference=lambda ref_fn=ref_fn, a=a, b=b: ref_fn(a, b),
                check=_assert_equal,
                work=n * n,
                unit="pairs",
                params={"kernel": op, "n": n, "m": n},
            )
    for side in [224] if quick else [224, 1024]:
        mask = rng.random((side, side)) < 0.5
        for n in [500] if quick else [500, 5000]:
            boxes = _random_boxes(rng, n, side, 4, side)
            yield Case(
                name=f"coverage {n} boxes {side}x{side}",
                fn=lambda mask=mask, boxes=boxes: vb.coverage(mask, boxes),
                reference=lambda mask=mask, boxes=boxes: ref.coverage(mask, boxes),
                check=_assert_equal,
                work=n,
                unit="boxes",
                params={"kernel": "coverage", "n": n, "mask": f"{side}x{side}"},
            )

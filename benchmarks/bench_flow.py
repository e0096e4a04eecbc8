"""Benchmark `flow`: Proposal Flow matchers (vsum.flow.match) vs the NumPy reference.

Cases: NAM / PHM / LOM on one synthetic 500 x 500 pair (random boxes, random
appearance), and LOM on a realistic pair: selective-search proposals (up to
500 each) and whitened appearance of two albatross photos resized so their
longer side is 224 px.  The realistic case is skipped, with a message, when
the photos are absent (data folder: $VSUM_DATA, default ../shared/data).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from harness import Case, benchmark

REAL_PAIR = ("Black_footed_Albatross_0001_2950163169.jpg", "Black_footed_Albatross_0002_2293084168.jpg")
REAL_SIDE = 224


def _random_boxes(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    w = rng.integers(8, size // 2 + 1, n)
    h = rng.integers(8, size // 2 + 1, n)
    x1 = rng.integers(0, size - w + 1)
    y1 = rng.integers(0, size - h + 1)
    return np.stack([x1, y1, x1 + w - 1, y1 + h - 1], axis=1).astype(np.int32)


def _close(a, b) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7 * max(1.0, float(np.abs(b).max(initial=0))))
    if a.size:
        np.testing.assert_array_equal(a.argmax(axis=1), b.argmax(axis=1))


def _data_root() -> Path:
    return Path(os.environ.get("VSUM_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _real_pair():
    """(boxes_a, boxes_b, appearance, image_shape) of two photos, or None when absent."""
    from vsum import features, io, proposals

    paths = [_data_root() / "albatross" / name for name in REAL_PAIR]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"[flow] realistic LOM case skipped: photos not found: {', '.join(missing)} (set VSUM_DATA)",
              flush=True)
        return None
    imgs = [np.asarray(io.read_image(p, max_side=REAL_SIDE).rgb) for p in paths]
    boxes = [proposals.selective_search(img, num=500)[0] for img in imgs]
    descs = [features.describe(img, bx) for img, bx in zip(imgs, boxes)]
    s = np.asarray(features.appearance(descs[0], descs[1]), np.float32)
    shape = (max(i.shape[0] for i in imgs), max(i.shape[1] for i in imgs))
    return boxes[0], boxes[1], s, shape


@benchmark("flow", description="NAM / PHM / LOM proposal matching, compiled vs NumPy reference: one synthetic "
                               "500 x 500 pair, and LOM on two real photos (selective search, whitened HOG)")
def cases(quick: bool):
    import vsum.flow as vf
    from vsum.reference import flow as ref

    rng = np.random.default_rng(0)
    n, size = 500, 256
    a, b = _random_boxes(rng, n, size), _random_boxes(rng, n, size)
    s = rng.random((n, n)).astype(np.float32)
    for m, order in (("lom", "sequential"), ("lom", "parallel"), ("phm", None), ("nam", None)):
        kw = {"order": order} if order else {}
        yield Case(
            name=f"{m}{' ' + order if order else ''} {n}x{n}",
            fn=lambda m=m, kw=kw: vf.match(a, b, s, m, image_shape=(size, size), **kw),
            reference=lambda m=m, kw=kw: ref.match(a, b, s, m, image_shape=(size, size), **kw),
            check=_close,
            work=n * n,
            unit="pairs",
            params={"method": m, "order": order, "n": n, "m": n, "data": "random"},
        )

    real = _real_pair()
    if real is not None:
        ra, rb, rs, shape = real
        for order in ("sequential", "parallel"):
            yield Case(
                name=f"lom {order} photos {len(ra)}x{len(rb)}",
                fn=lambda order=order: vf.match(ra, rb, rs, "lom", image_shape=shape, order=order),
                reference=lambda order=order: ref.match(ra, rb, rs, "lom", image_shape=shape, order=order),
                check=_close,
                work=len(ra) * len(rb),
                unit="pairs",
                params={"method": "lom", "order": order, "n": len(ra), "m": len(rb),
                        "data": f"albatross 0001/0002, {REAL_SIDE} px"},
                extra={"nonzero appearance": f"{float((rs > 0).mean()):.0%}"},
            )

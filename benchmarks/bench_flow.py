"""Benchmark `flow`: Proposal Flow matchers (vsum.flow.match) vs the NumPy reference, one 500 x 500 pair."""

from __future__ import annotations

import numpy as np

from harness import Case, benchmark


def _random_boxes(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    w = rng.integers(8, size // 2 + 1, n)
    h = rng.integers(8, size // 2 + 1, n)
    x1 = rng.integers(0, size - w + 1)
    y1 = rng.integers(0, size - h + 1)
    return np.stack([x1, y1, x1 + w - 1, y1 + h - 1], axis=1).astype(np.int32)


def _close(a, b) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7 * max(1.0, float(np.abs(b).max(initial=0))))


@benchmark("flow", description="NAM / PHM / LOM proposal matching of one 500 x 500 pair: compiled vs NumPy reference")
def cases(quick: bool):
    import vsum.flow as vf
    from vsum.reference import flow as ref

    rng = np.random.default_rng(0)
    n, size = 500, 256
    a, b = _random_boxes(rng, n, size), _random_boxes(rng, n, size)
    s = rng.random((n, n)).astype(np.float32)
    for m in ("lom", "phm", "nam"):
        yield Case(
            name=f"{m} {n}x{n}",
            fn=lambda m=m: vf.match(a, b, s, m, image_shape=(size, size)),
            reference=lambda m=m: ref.match(a, b, s, m, image_shape=(size, size)),
            check=_close,
            work=n * n,
            unit="pairs",
            params={"method": m, "n": n, "m": n},
        )

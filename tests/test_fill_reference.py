"""FGS flow fill: compiled vsum.flow.fill_flow vs the NumPy reference (vsum.reference.fill).

Random fields (shapes down to 1 x N and N x 1, sparse to full masks, RGB and
grey guides, every parameter), the nearest-valid fallback and its ties, bad
input, and a real sparse field from a PF-WILLOW photo pair.  The core
computes in float64 and returns float32; the reference repeats its float64
operations, so the tolerance below is a float32 rounding step (the observed
difference is 0) and the fallback pixels must be identical.
"""

from __future__ import annotations

import numpy as np
import pytest

import vsum.flow as vf
from vsum.reference import fill as ref

from helpers import require_data

RTOL = 1e-6  # tighter than the float32 output needs; measured: bit-identical


def assert_fill_close(got, want, vx, vy, valid, low=None):
    """Both components close (relative to the data scale) and identical at the fallback pixels ``low``."""
    m = np.asarray(valid) != 0
    scale = max(1.0, float(np.abs(np.asarray(vx, np.float64)[m]).max(initial=0)),
                float(np.abs(np.asarray(vy, np.float64)[m]).max(initial=0)))
    for g, w, name in zip(got, want, ("vx", "vy")):
        assert g.dtype == w.dtype == np.float32 and g.shape == w.shape, name
        assert np.isfinite(g).all(), name
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=RTOL * scale, err_msg=name)
        if low is not None:
            np.testing.assert_array_equal(g[low], w[low], err_msg=f"{name} at fallback pixels")


def random_case(rng, h, w, density, channels):
    vx = (rng.standard_normal((h, w)) * 20).astype(np.float32)
    vy = (rng.standard_normal((h, w)) * 20).astype(np.float32)
    valid = rng.random((h, w)) < density
    vx[~valid] = np.nan  # never read: invalid pixels may hold anything
    # A piecewise-constant guide (strong edges) plus noise, 0-255.
    guide = rng.integers(0, 4, (h, w, channels)).astype(np.float32) * 80 + rng.random((h, w, channels)) * 10
    if channels == 1 and rng.random() < 0.5:
        guide = guide[:, :, 0]  # (H, W) grey
    return vx, vy, valid, guide


SHAPES = [(1, 1), (1, 37), (41, 1), (2, 3), (23, 31), (64, 70), (9, 130)]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_random_parity(seed, shape):
    rng = np.random.default_rng(seed * 100 + shape[0] * 7 + shape[1])
    n_low = 0
    for density in (0.003, 0.05, 0.5, 0.97, 1.0):
        channels = 3 if rng.random() < 0.5 else 1
        vx, vy, valid, guide = random_case(rng, *shape, density, channels)
        for lam, sigma, iterations, smooth in [
            (1000.0, 40.0, 3, True),
            (float(rng.choice([0.0, 1.0, 30.0])), 15.0, int(rng.integers(1, 4)), False),
            (1e7, 5.0, int(rng.integers(1, 4)), bool(rng.integers(0, 2))),
            (300.0, 1.0, 2, True),  # sigma 1 on 80-level edges: weights underflow, regions cut off
        ]:
            kw = {"lam": lam, "sigma": sigma, "iterations": iterations, "smooth": smooth}
            want = ref.fill_flow(vx, vy, valid, guide, **kw)
            low = ref.fill_confidence(valid, guide, lam=lam, sigma=sigma, iterations=iterations) < ref.MIN_WEIGHT
            n_low += int(low.sum())
            assert_fill_close(vf.fill_flow(vx, vy, valid, guide, **kw), want, vx, vy, valid, low)
            if not smooth:
                np.testing.assert_array_equal(want[0][valid], vx[valid])
    if shape[0] * shape[1] > 20:
        assert n_low > 0  # the fallback was exercised


@pytest.mark.parametrize("iterations", [1, 2, 3])
def test_parity_thread_counts_and_input_types(iterations, restore_threads):
    rng = np.random.default_rng(iterations)
    h, w = 90, 150  # > 64 columns: several column blocks in the core
    vx = rng.standard_normal((h, w)) * 3  # float64 input
    vy = rng.integers(-9, 9, (h, w))  # integer input
    valid = (rng.random((h, w)) < 0.1).astype(np.int32)  # integer mask
    guide = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)  # uint8 RGB
    want = ref.fill_flow(vx, vy, valid, guide, iterations=iterations)
    for t in (1, 2, 3):
        restore_threads(t)
        assert_fill_close(vf.fill_flow(vx, vy, valid, guide, iterations=iterations), want, vx, vy, valid)


def test_fallback_ties_lam0():
    """lam = 0: every invalid pixel takes its nearest valid pixel; ties (left column, then upper row) agree."""
    ties = 0
    for seed in range(400):
        rng = np.random.default_rng(seed)
        h, w = (int(v) for v in rng.integers(1, 14, 2))
        valid = np.zeros((h, w), bool)
        valid.flat[rng.choice(h * w, min(h * w, int(rng.integers(1, 6))), replace=False)] = True
        vx = np.arange(h * w, dtype=np.float32).reshape(h, w)  # the value names the source pixel
        vy = -vx
        got = vf.fill_flow(vx, vy, valid, np.zeros((h, w)), lam=0.0, iterations=1)
        want = ref.fill_flow(vx, vy, valid, np.zeros((h, w)), lam=0.0, iterations=1)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        # count pixels with several nearest valid pixels (the tie rule decided)
        vy_, vx_ = np.nonzero(valid)
        yy, xx = np.mgrid[:h, :w]
        d2 = (yy[..., None] - vy_) ** 2 + (xx[..., None] - vx_) ** 2
        ties += int(((d2 == d2.min(axis=-1, keepdims=True)).sum(axis=-1) > 1).sum())
    assert ties > 100


def test_nearest_valid_tie_rule():
    valid = np.zeros((5, 5), bool)
    valid[0, 2] = valid[2, 0] = valid[2, 4] = valid[4, 2] = True
    ny, nx = ref.nearest_valid(valid)
    assert (ny[2, 2], nx[2, 2]) == (2, 0)  # four at distance 2: leftmost column wins
    valid[2, 0] = False
    ny, nx = ref.nearest_valid(valid)
    assert (ny[2, 2], nx[2, 2]) == (0, 2)  # (0, 2) and (4, 2) tie in column 2: upper row wins


def test_isolated_region_falls_back_to_nearest():
    # A bright square with no valid pixel, cut off by sigma: its pixels take the nearest valid pixel outside.
    h, w = 30, 40
    guide = np.zeros((h, w), np.float32)
    guide[8:20, 10:25] = 255
    valid = np.zeros((h, w), bool)
    valid[2, 3] = valid[27, 35] = valid[14, 0] = True
    vx = np.zeros((h, w), np.float32)
    vx[valid] = [1.0, 2.0, 3.0]
    vy = -vx
    kw = {"lam": 1000.0, "sigma": 0.5, "iterations": 3}
    low = ref.fill_confidence(valid, guide, **kw) < ref.MIN_WEIGHT
    np.testing.assert_array_equal(low[8:20, 10:25], True)
    assert low.sum() == 12 * 15
    got, want = vf.fill_flow(vx, vy, valid, guide, **kw), ref.fill_flow(vx, vy, valid, guide, **kw)
    assert_fill_close(got, want, vx, vy, valid, low)
    assert (got[0][8, 10], got[0][14, 10], got[0][19, 24]) == (1.0, 2.0, 3.0)  # raster order: (2, 3), (14, 0), (27, 35)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (12, 17)])
def test_no_valid_pixel_gives_zeros(shape):
    vx = np.full(shape, 5.0, np.float32)
    valid = np.zeros(shape, bool)
    for f in (vf.fill_flow, ref.fill_flow):
        out = f(vx, vx, valid, np.ones(shape + (3,)))
        np.testing.assert_array_equal(out[0], 0)
        np.testing.assert_array_equal(out[1], 0)


def test_empty_width():
    out = ref.fill_flow(np.zeros((3, 0)), np.zeros((3, 0)), np.zeros((3, 0), bool), np.zeros((3, 0, 3)))
    want = vf.fill_flow(np.zeros((3, 0)), np.zeros((3, 0)), np.zeros((3, 0), bool), np.zeros((3, 0, 3)))
    assert out[0].shape == want[0].shape == (3, 0) and out[0].dtype == np.float32


def test_reference_does_not_use_the_core(monkeypatch):
    class NoCore:
        def __getattr__(self, name):
            raise AssertionError(f"reference called _core.{name}")

    rng = np.random.default_rng(0)
    vx, vy, valid, guide = random_case(rng, 20, 30, 0.1, 3)
    want = vf.fill_flow(vx, vy, valid, guide)
    monkeypatch.setattr(vf, "_core", NoCore())
    assert_fill_close(ref.fill_flow(vx, vy, valid, guide), want, vx, vy, valid)


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"lam": -1.0}, "lam must be finite"),
        ({"lam": float("inf")}, "lam must be finite"),
        ({"sigma": 0.0}, "sigma must be finite"),
        ({"sigma": "x"}, "must be numbers"),
        ({"iterations": 0}, r"iterations must be in \[1, 100\]"),
        ({"iterations": 101}, r"iterations must be in \[1, 100\]"),
        ({"iterations": 2.0}, "iterations must be an int"),
        ({"iterations": True}, "iterations must be an int"),
        ({"vx": np.array([[np.nan, 0, 0], [0, 0, 0]])}, r"finite at valid pixels; pixel \(x, y\) = \(0, 0\)"),
        ({"valid": np.ones((2, 3))}, "bool or integer"),
        ({"valid": np.ones((3, 2), bool)}, "shape"),
        ({"vy": np.zeros((2, 2))}, "same shape"),
        ({"guide": np.full((2, 3, 3), np.inf)}, "guide contains NaN or infinite values"),
        ({"guide": np.zeros((3, 3))}, "guide must have shape"),
        ({"guide": np.array([["a"] * 3] * 2)}, "integer or float"),
    ],
)
def test_bad_input_same_errors(kwargs, msg):
    args = {"vx": np.zeros((2, 3)), "vy": np.zeros((2, 3)), "valid": np.ones((2, 3), bool),
            "guide": np.zeros((2, 3))}
    args.update(kwargs)
    params = {k: args.pop(k) for k in ("lam", "sigma", "iterations") if k in args}
    for f in (vf.fill_flow, ref.fill_flow):
        with pytest.raises(ValueError, match=msg):
            f(args["vx"], args["vy"], args["valid"], args["guide"], **params)


# ---------------------------------------------------------------------------
# real photos: a PF-WILLOW pair, LOM matches, the sparse field of match_field
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def willow_field(data_dir):
    from vsum.features import appearance, describe
    from vsum.io import read_image
    from vsum.proposals import selective_search

    root = data_dir / "keypoints" / "willow-dev"
    classes = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    require_data(bool(classes), f"class folders in {root}")
    paths = sorted(p for p in classes[0].iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})[:2]
    require_data(len(paths) == 2, f"two photos in {classes[0]}")
    img_a, img_b = (read_image(p).rgb for p in paths)
    boxes_a = selective_search(img_a, num=200)[0]
    boxes_b = selective_search(img_b, num=200)[0]
    app = appearance(describe(img_a, boxes_a), describe(img_b, boxes_b))
    conf = vf.match(boxes_a, boxes_b, app, "lom")
    vx, vy, valid, _ = vf.match_field(boxes_a, boxes_b, conf, img_a.shape[:2], img_b.shape[:2])
    return img_a, vx, vy, valid


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"smooth": False}, {"lam": 0.0}, {"lam": 30.0, "sigma": 5.0, "iterations": 1}, {"sigma": 0.2}],
    ids=["default", "keep-valid", "lam0-nearest", "light", "cut-off"],
)
def test_real_willow_pair(willow_field, kwargs):
    img_a, vx, vy, valid = willow_field
    assert 0.02 < valid.mean() < 0.98  # a genuinely sparse field
    params = {k: kwargs[k] for k in ("lam", "sigma", "iterations") if k in kwargs}
    low = ref.fill_confidence(valid, img_a, **params) < ref.MIN_WEIGHT
    if "lam" in kwargs and kwargs["lam"] == 0.0:
        np.testing.assert_array_equal(low, ~valid)
    got = vf.fill_flow(vx, vy, valid, img_a, **kwargs)
    want = ref.fill_flow(vx, vy, valid, img_a, **kwargs)
    assert_fill_close(got, want, vx, vy, valid, low)

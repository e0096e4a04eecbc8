"""Dense flow: match_field (compiled vs NumPy reference), FGS fill properties, dense_flow, warp, transfer_points."""

from __future__ import annotations

import json

import numpy as np
import pytest

import vsum.flow as vf
from vsum.reference import dense as ref

from helpers import random_boxes, require_data


def assert_field_equal(got, want):
    names = ("vx", "vy", "valid", "score")
    for g, w, name in zip(got, want, names):
        assert g.dtype == w.dtype and g.shape == w.shape, name
        np.testing.assert_array_equal(g, w, err_msg=name)


# ---------------------------------------------------------------------------
# match_field
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_match_field_parity_random(seed):
    rng = np.random.default_rng(seed)
    ha, wa, hb, wb = 37, 53, 29, 61
    a = random_boxes(rng, 40, ha, wa, outside=12)
    b = random_boxes(rng, 30, hb, wb, outside=12)
    conf = rng.random((40, 30)).astype(np.float32)
    conf[rng.random(conf.shape) < 0.4] = 0
    conf[:3] = 0  # skipped rows
    conf[5:9, 4] = 3.0  # equal scores: row order decides
    conf = np.round(conf * 8) / 8  # many ties inside rows and between rows
    got = vf.match_field(a, b, conf, (ha, wa), (hb, wb))
    want = ref.match_field(a, b, conf, (ha, wa), (hb, wb))
    assert_field_equal(got, want)
    vx, vy, valid, score = got
    assert valid.any()
    ys, xs = np.nonzero(score > 0)
    tx, ty = xs + vx[ys, xs], ys + vy[ys, xs]
    assert (tx >= 0).all() and (tx < wb).all() and (ty >= 0).all() and (ty < hb).all()
    assert not (vx[score == 0].any() or vy[score == 0].any() or valid[score == 0].any())


def test_match_field_semantics_by_hand():
    # Box a0 (score 0.9) covers x 0..3 of row 0..1 and maps onto B box (10..13, 5..6): identity + offset.
    # Box a1 (score 0.5) covers x 2..5 and maps everything onto one pixel (20, 8): only x = 4 (first free
    # pixel in raster order after a0) stays valid for each row... and only one of them overall.
    a = np.array([[0, 0, 3, 1], [2, 0, 5, 1]], np.int32)
    b = np.array([[10, 5, 13, 6], [20, 8, 20, 8]], np.int32)
    conf = np.array([[0.9, 0.1], [0.2, 0.5]], np.float32)
    vx, vy, valid, score = vf.match_field(a, b, conf, (3, 7), (10, 30))
    np.testing.assert_array_equal(vx[:2, :4], 10)
    np.testing.assert_array_equal(vy[:2, :4], 5)
    np.testing.assert_array_equal(vx[:2, 4:6], [[16, 15], [16, 15]])
    np.testing.assert_array_equal(vy[:2, 4:6], [[8, 8], [7, 7]])
    np.testing.assert_array_equal(score[:2], np.float32([[0.9] * 4 + [0.5] * 2 + [0]] * 2))
    expect = np.zeros((3, 7), bool)
    expect[:2, :4] = True
    expect[0, 4] = True  # the four pixels landing on (20, 8) tie at 0.5: smallest raster index wins
    np.testing.assert_array_equal(valid, expect)
    assert not score[2].any() and not vx[:, 6].any()


def test_match_field_degenerate_side_and_clamp():
    # A 1-pixel-wide box maps onto the centre of its match, rounded half up: (3 + 6) / 2 = 4.5 -> 5.
    # B box beyond the image is clamped onto B's last column/row.
    a = np.array([[2, 0, 2, 3], [0, 4, 4, 4]], np.int32)
    b = np.array([[3, 0, 6, 3], [8, 12, 40, 12]], np.int32)
    conf = np.array([[1, 0], [0, 1]], np.float32)
    vx, vy, valid, _ = vf.match_field(a, b, conf, (5, 5), (10, 10))
    np.testing.assert_array_equal(vx[:4, 2], 3)
    np.testing.assert_array_equal(vy[:4, 2], 0)
    np.testing.assert_array_equal(vx[4] + np.arange(5), [8, 9, 9, 9, 9])
    np.testing.assert_array_equal(vy[4] + 4, 9)
    np.testing.assert_array_equal(valid[4], [True, True, False, False, False])
    assert_field_equal((vx, vy, valid, _), ref.match_field(a, b, conf, (5, 5), (10, 10)))


def test_match_field_empty_and_outside():
    b = np.array([[0, 0, 4, 4]], np.int32)
    out = vf.match_field(np.zeros((0, 4), np.int32), b, np.zeros((0, 1)), (4, 6), (5, 5))
    assert [o.shape for o in out] == [(4, 6)] * 4 and not out[2].any()
    out = vf.match_field(b, np.zeros((0, 4), np.int32), np.zeros((1, 0)), (4, 6), (5, 5))
    assert not out[2].any()
    far = np.array([[100, 100, 120, 120], [-30, -30, -1, -1]], np.int32)
    out = vf.match_field(far, b, np.ones((2, 1)), (4, 6), (5, 5))
    assert not out[2].any() and not out[3].any()


def _small_pair(data_dir, side=96):
    from PIL import Image

    folder = data_dir / "keypoints" / "willow-dev" / "car_G"
    require_data(folder.is_dir(), str(folder))
    names = sorted(json.loads((folder / "keypoints.json").read_text()))[:2]
    images = []
    for n in names:
        im = Image.open(folder / n).convert("RGB")
        scale = side / max(im.size)
        im = im.resize((max(16, round(im.size[0] * scale)), max(16, round(im.size[1] * scale))), Image.BILINEAR)
        images.append(np.asarray(im))
    return images


def test_match_field_parity_real_lom(data_dir, restore_threads):
    from vsum.features import appearance, describe
    from vsum.proposals import selective_search

    img_a, img_b = _small_pair(data_dir)
    boxes_a = selective_search(img_a, num=150, mode="fast")[0]
    boxes_b = selective_search(img_b, num=150, mode="fast")[0]
    app = appearance(describe(img_a, boxes_a), describe(img_b, boxes_b))
    conf = vf.match(boxes_a, boxes_b, np.maximum(np.asarray(app), 0), "lom")
    want = ref.match_field(boxes_a, boxes_b, conf, img_a.shape, img_b.shape)
    for t in (1, 2, 3):
        restore_threads(t)
        assert_field_equal(vf.match_field(boxes_a, boxes_b, conf, img_a.shape, img_b.shape), want)
    assert want[2].mean() > 0.1


def test_match_field_threads_identical(restore_threads):
    rng = np.random.default_rng(7)
    a, b = random_boxes(rng, 120, 70, 90, outside=5), random_boxes(rng, 80, 60, 50)
    conf = rng.random((120, 80)).astype(np.float32)
    outs = []
    for t in (1, 2, 3, 5):
        restore_threads(t)
        outs.append(vf.match_field(a, b, conf, (70, 90), (60, 50)))
    for o in outs[1:]:
        assert_field_equal(o, outs[0])
    assert_field_equal(outs[0], ref.match_field(a, b, conf, (70, 90), (60, 50)))


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"conf": np.zeros((3, 5))}, "shape"),
        ({"conf": np.full((3, 4), np.nan)}, "finite"),
        ({"conf": -np.ones((3, 4))}, ">= 0"),
        ({"conf": np.array([["a"] * 4] * 3)}, "numeric"),
        ({"boxes_a": np.array([[5, 5, 4, 9]] * 3)}, "degenerate"),
        ({"boxes_b": np.zeros((4, 3))}, "boxes_b"),
        ({"boxes_a": np.full((3, 4), 0.5)}, "integer"),
        ({"shape_a": (0, 10)}, "positive"),
        ({"shape_b": (10, -1)}, "positive"),
        ({"shape_b": (10,)}, "shape_b"),
        ({"shape_a": "ab"}, "shape_a"),
    ],
)
def test_match_field_bad_input(kwargs, msg):
    rng = np.random.default_rng(0)
    args = {"boxes_a": random_boxes(rng, 3, 20, 20), "boxes_b": random_boxes(rng, 4, 20, 20),
            "conf": np.ones((3, 4)), "shape_a": (20, 20), "shape_b": (20, 20)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=msg):
        vf.match_field(**args)


def test_match_field_core_checks_directly():
    from vsum import _core

    a = np.array([[0, 0, 3, 3]], np.int32)
    with pytest.raises(ValueError, match="finite"):
        _core.flow_match_field(a, a, np.array([[np.inf]], np.float32), 4, 4, 4, 4)
    with pytest.raises(ValueError, match="positive"):
        _core.flow_match_field(a, a, np.ones((1, 1), np.float32), 4, 0, 4, 4)
    with pytest.raises(ValueError, match="degenerate"):
        _core.flow_match_field(np.array([[3, 0, 2, 3]], np.int32), a, np.ones((1, 1), np.float32), 4, 4, 4, 4)
    with pytest.raises(ValueError, match="conf"):
        _core.flow_match_field(a, a, np.ones((1, 1), np.float64), 4, 4, 4, 4)


# ---------------------------------------------------------------------------
# fill_flow (Fast Global Smoother): properties
# ---------------------------------------------------------------------------


def _guide(rng, h, w, channels=3):
    g = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    return g[:, :, 0] if channels == 1 else g


@pytest.mark.parametrize("smooth", [True, False])
@pytest.mark.parametrize("density", [1.0, 0.3, 0.01])
def test_fill_constant_field_exact(smooth, density):
    rng = np.random.default_rng(1)
    h, w = 41, 57
    valid = rng.random((h, w)) < density
    valid[3, 4] = True
    vx = np.where(valid, 3.25, np.nan).astype(np.float32)  # invalid values are never read
    vy = np.where(valid, -7.5, 99).astype(np.float32)
    for guide in (_guide(rng, h, w), _guide(rng, h, w, 1)):
        fx, fy = vf.fill_flow(vx, vy, valid, guide, smooth=smooth)
        assert fx.dtype == np.float32 and fx.shape == (h, w)
        np.testing.assert_allclose(fx, 3.25, atol=1e-5)
        np.testing.assert_allclose(fy, -7.5, atol=1e-5)


def test_fill_preserves_valid_and_fills_holes_in_range():
    rng = np.random.default_rng(2)
    h, w = 48, 64
    vx = rng.normal(0, 4, (h, w)).astype(np.float32)
    vy = rng.normal(2, 1, (h, w)).astype(np.float32)
    valid = rng.random((h, w)) < 0.2
    valid[10:40, 20:50] = False  # a big hole
    guide = _guide(rng, h, w)
    fx, fy = vf.fill_flow(vx, vy, valid, guide, smooth=False)
    np.testing.assert_array_equal(fx[valid], vx[valid])
    np.testing.assert_array_equal(fy[valid], vy[valid])
    for f, v, out in ((vx, vx[valid], fx), (vy, vy[valid], fy)):
        assert np.isfinite(out).all()
        assert out.min() >= v.min() - 1e-5 and out.max() <= v.max() + 1e-5
    sx, sy = vf.fill_flow(vx, vy, valid, guide, smooth=True)
    assert np.isfinite(sx).all() and np.isfinite(sy).all()
    assert sx.min() >= vx[valid].min() - 1e-5 and sx.max() <= vx[valid].max() + 1e-5
    assert np.abs(sx[valid] - vx[valid]).max() > 1e-3  # smoothing changes valid pixels


def test_fill_respects_edges():
    h, w = 40, 60
    guide = np.zeros((h, w, 3), np.uint8)
    guide[:, 30:] = 255  # strong vertical edge between x = 29 and 30
    vx = np.where(np.arange(w)[None, :] < 30, 5.0, -5.0) * np.ones((h, 1))
    valid = np.ones((h, w), bool)
    valid[10:30, 15:45] = False  # hole straddling the edge
    for smooth in (False, True):
        fx, fy = vf.fill_flow(vx, np.zeros_like(vx), valid, guide, smooth=smooth)
        np.testing.assert_allclose(fx[:, :30], 5.0, atol=0.05)
        np.testing.assert_allclose(fx[:, 30:], -5.0, atol=0.05)
        np.testing.assert_allclose(fy, 0.0, atol=1e-6)


def test_fill_unreachable_falls_back_to_nearest():
    h, w = 30, 200
    vx = np.zeros((h, w), np.float32)
    vx[:, :3] = 4.0
    vx[:, -3:] = -2.0
    valid = np.zeros((h, w), bool)
    valid[:, :3] = valid[:, -3:] = True
    guide = np.zeros((h, w), np.uint8)
    guide[:, 60::7] = 255  # many strong edges: U(c) underflows in the middle
    fx, _ = vf.fill_flow(vx, vx, valid, guide, lam=1.0, sigma=1.0, iterations=1)
    assert np.isfinite(fx).all()
    np.testing.assert_allclose(fx[:, :50], 4.0, atol=1e-5)
    np.testing.assert_allclose(fx[:, 160:], -2.0, atol=1e-5)
    assert set(np.unique(fx[:, 60:150])) <= {4.0, -2.0}
    # lam = 0: no propagation at all, holes take the nearest valid value
    fx, _ = vf.fill_flow(vx, vx, valid, guide, lam=0.0)
    np.testing.assert_array_equal(fx[:, :100], 4.0)
    np.testing.assert_array_equal(fx[:, 101:], -2.0)


def test_fill_no_valid_pixel_gives_zero():
    fx, fy = vf.fill_flow(np.ones((5, 6)), np.ones((5, 6)), np.zeros((5, 6), bool), np.zeros((5, 6)))
    np.testing.assert_array_equal(fx, 0)
    np.testing.assert_array_equal(fy, 0)


def test_fill_threads_identical(restore_threads):
    rng = np.random.default_rng(4)
    h, w = 67, 150  # several column blocks
    vx = rng.normal(0, 3, (h, w)).astype(np.float32)
    vy = rng.normal(0, 3, (h, w)).astype(np.float32)
    valid = rng.random((h, w)) < 0.1
    valid[20:60, 50:140] = False
    guide = _guide(rng, h, w)
    outs = []
    for t in (1, 2, 3, 7):
        restore_threads(t)
        outs.append(vf.fill_flow(vx, vy, valid, guide, lam=500.0, sigma=5.0, iterations=2, smooth=False))
    for o in outs[1:]:
        np.testing.assert_array_equal(o[0], outs[0][0])
        np.testing.assert_array_equal(o[1], outs[0][1])


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"vy": np.zeros((5, 7))}, "same shape"),
        ({"valid": np.ones((5, 7), bool)}, "valid"),
        ({"valid": np.ones((6, 7), float)}, "bool or integer"),
        ({"guide": np.zeros((5, 6, 3))}, "guide"),
        ({"guide": np.full((6, 7), np.nan)}, "finite"),
        ({"vx": np.full((6, 7), np.inf)}, "finite"),
        ({"lam": -1.0}, "lam"),
        ({"sigma": 0.0}, "sigma"),
        ({"iterations": 0}, "iterations"),
        ({"iterations": 2.5}, "iterations"),
    ],
)
def test_fill_bad_input(kwargs, msg):
    args = {"vx": np.zeros((6, 7)), "vy": np.zeros((6, 7)), "valid": np.ones((6, 7), bool),
            "guide": np.zeros((6, 7, 3), np.uint8)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=msg):
        vf.fill_flow(**args)


# ---------------------------------------------------------------------------
# dense_flow, warp, transfer_points
# ---------------------------------------------------------------------------


def test_dense_flow_translation():
    # A's whole image matches B's box shifted by (+4, +2): every fill gives that exact constant flow.
    rng = np.random.default_rng(5)
    img_a = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    img_b = np.zeros((40, 50, 3), np.uint8)
    boxes_a = np.array([[0, 0, 39, 29], [5, 5, 14, 14]], np.int32)
    boxes_b = np.array([[4, 2, 43, 31], [9, 7, 18, 16]], np.int32)
    conf = np.array([[1.0, 0], [0, 0.5]], np.float32)
    for fill in ("fgs", "nearest", lambda vx, vy, valid, guide: (vx, vy)):
        vx, vy = vf.dense_flow(img_a, img_b, boxes_a, boxes_b, conf, fill=fill)
        assert vx.dtype == np.float32 and vx.shape == (30, 40)
        np.testing.assert_allclose(vx, 4, atol=1e-5)
        np.testing.assert_allclose(vy, 2, atol=1e-5)


def test_dense_flow_nearest_and_callable():
    img_a = np.zeros((10, 12, 3), np.uint8)
    boxes_a = np.array([[0, 0, 3, 9], [8, 0, 11, 9]], np.int32)
    boxes_b = boxes_a + np.array([1, 0, 1, 0], np.int32)
    boxes_b[1] -= np.array([3, 0, 3, 0], np.int32)
    conf = np.eye(2, dtype=np.float32)
    vx, vy = vf.dense_flow(img_a, img_a, boxes_a, boxes_b, conf, fill="nearest")
    np.testing.assert_array_equal(vx[:, :6], 1)
    np.testing.assert_array_equal(vx[:, 6:], -2)
    np.testing.assert_array_equal(vy, 0)
    seen = {}

    def fill(vx, vy, valid, guide):
        seen["valid"] = valid.sum()
        return vx, vy

    vf.dense_flow(img_a, img_a, boxes_a, boxes_b, conf, fill=fill)
    assert seen["valid"] == 80
    with pytest.raises(ValueError, match="fill"):
        vf.dense_flow(img_a, img_a, boxes_a, boxes_b, conf, fill="bilateral")
    sx, sy = vf.dense_flow(img_a, img_a, boxes_a, boxes_b, conf, fill="sd")  # the SD filter of the original
    assert sx.shape == (10, 12) and np.isfinite(sx).all() and np.isfinite(sy).all()
    with pytest.raises(ValueError, match="fill callable"):
        vf.dense_flow(img_a, img_a, boxes_a, boxes_b, conf, fill=lambda *a: (np.zeros(3), np.zeros(3)))
    with pytest.raises(ValueError, match="img_a"):
        vf.dense_flow(np.zeros(5), img_a, boxes_a, boxes_b, conf)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, np.int32])
def test_warp_identity_and_shift(dtype):
    rng = np.random.default_rng(6)
    img = (rng.random((20, 30, 3)) * 200).astype(dtype)
    zero = np.zeros((20, 30), np.float32)
    out = vf.warp(img, zero, zero)
    assert out.dtype == img.dtype
    np.testing.assert_array_equal(out, img)
    out = vf.warp(img, zero + 3, zero - 2)
    ys = np.clip(np.arange(20) - 2, 0, 19)
    xs = np.clip(np.arange(30) + 3, 0, 29)
    np.testing.assert_array_equal(out, img[ys][:, xs])
    grey = img[:, :, 0]
    np.testing.assert_array_equal(vf.warp(grey, zero + 3, zero - 2), grey[ys][:, xs])
    many = np.repeat(img, 3, axis=2)  # 9 channels
    np.testing.assert_array_equal(vf.warp(many, zero + 3, zero - 2), many[ys][:, xs])


def test_warp_onto_other_size_and_half_pixel():
    img_b = np.arange(10, dtype=np.float32)[None, :].repeat(4, axis=0)
    vx = np.full((2, 3), 0.5, np.float32)
    out = vf.warp(img_b, vx, np.zeros((2, 3), np.float32))
    np.testing.assert_allclose(out, [[0.5, 1.5, 2.5]] * 2, atol=1e-3)
    with pytest.raises(ValueError, match="same shape"):
        vf.warp(img_b, vx, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        vf.warp(img_b, vx * np.nan, vx)
    with pytest.raises(ValueError, match="img_b"):
        vf.warp(np.zeros((0, 5)), vx, vx)


def test_transfer_points():
    h, w = 12, 16
    vx = np.full((h, w), 2.5, np.float32)
    vy = np.full((h, w), -1.0, np.float32)
    pts = np.array([[0, 0], [3.3, 7.7], [15, 11], [-4, 30]], float)
    out = vf.transfer_points(pts, vx, vy)
    assert out.shape == (4, 2) and out.dtype == np.float64
    np.testing.assert_array_equal(out, pts + [2.5, -1.0])
    # bilinear on a ramp: vx = x, vy = 2 y
    ramp_x = np.arange(w, dtype=np.float32)[None, :].repeat(h, axis=0)
    ramp_y = 2 * np.arange(h, dtype=np.float32)[:, None].repeat(w, axis=1)
    out = vf.transfer_points([[3.25, 4.5], [20, -3]], ramp_x, ramp_y)
    np.testing.assert_allclose(out, [[6.5, 13.5], [20 + 15, -3 + 0]])
    assert vf.transfer_points(np.zeros((0, 2)), vx, vy).shape == (0, 2)
    np.testing.assert_allclose(vf.transfer_points([[0.0, 0.0]], np.ones((1, 1)), np.ones((1, 1))), [[1.0, 1.0]])
    with pytest.raises(ValueError, match="points_xy"):
        vf.transfer_points(np.zeros((3, 3)), vx, vy)
    with pytest.raises(ValueError, match="finite"):
        vf.transfer_points([[np.nan, 0]], vx, vy)

"""Dense flow: match_field (compiled vs NumPy reference), FGS fill properties, dense_flow, warp, transfer_points."""

from __future__ import annotations

import json

import numpy as np
import pytest

import vsum.boxes
import vsum.flow as vf
from vsum.reference import dense as ref


def random_boxes(rng, n, height, width, outside=0, max_side=None):
    """Random (n, 4) int32 boxes, some reaching `outside` pixels beyond the image; widths/heights from 1."""
    ms = max_side or max(2, min(height, width) // 2)
    w = rng.integers(1, ms + 1, n)
    h = rng.integers(1, ms + 1, n)
    x1 = rng.integers(-outside, width - w + 1 + outside)
    y1 = rng.integers(-outside, height - h + 1 + outside)
    return np.stack([x1, y1, x1 + w - 1, y1 + h - 1], axis=1).astype(np.int32)


def assert_field_equal(got, want):
    names = ("vx", "vy", "valid", "score")
    for g, w, name in zip(got, want, names):
        assert g.dtype == w.dtype and g.shape == w.shape, name
        np.testing.assert_array_equal(g, w, err_msg=name)


@pytest.fixture
def threads():
    """Run the body under several thread counts: yields a setter, restores the count after."""
    old = vsum.boxes.get_num_threads()
    yield vsum.boxes.set_num_threads
    vsum.boxes.set_num_threads(old)


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
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    names = sorted(json.loads((folder / "keypoints.json").read_text()))[:2]
    images = []
    for n in names:
        im = Image.open(folder / n).convert("RGB")
        scale = side / max(im.size)
        im = im.resize((max(16, round(im.size[0] * scale)), max(16, round(im.size[1] * scale))), Image.BILINEAR)
        images.append(np.asarray(im))
    return images


def test_match_field_parity_real_lom(data_dir, threads):
    from vsum.features import appearance, describe
    from vsum.proposals import selective_search

    img_a, img_b = _small_pair(data_dir)
    boxes_a = selective_search(img_a, num=150, mode="fast")[0]
    boxes_b = selective_search(img_b, num=150, mode="fast")[0]
    app = appearance(describe(img_a, boxes_a), describe(img_b, boxes_b))
    conf = vf.match(boxes_a, boxes_b, np.maximum(np.asarray(app), 0), "lom")
    want = ref.match_field(boxes_a, boxes_b, conf, img_a.shape, img_b.shape)
    for t in (1, 2, 3):
        threads(t)
        assert_field_equal(vf.match_field(boxes_a, boxes_b, conf, img_a.shape, img_b.shape), want)
    assert want[2].mean() > 0.1


def test_match_field_threads_identical(threads):
    rng = np.random.default_rng(7)
    a, b = random_boxes(rng, 120, 70, 90, outside=5), random_boxes(rng, 80, 60, 50)
    conf = rng.random((120, 80)).astype(np.float32)
    outs = []
    for t in (1, 2, 3, 5):
        threads(t)
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

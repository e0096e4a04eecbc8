"""Proposal Flow matchers: compiled (vsum.flow.match) vs NumPy reference, bad input, threads."""

from __future__ import annotations

import numpy as np
import pytest

import vsum.boxes
import vsum.flow as vf
import vsum.threads
from vsum.reference import flow as ref

import helpers
from helpers import require_data

METHODS = ["nam", "phm", "lom"]


def random_boxes(rng, n, size=128, max_side=64):
    return helpers.random_boxes(rng, n, size, size, min_side=2, max_side=max_side)


def assert_parity(got, want):
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7 * max(1.0, float(np.abs(want).max(initial=0))))
    if got.size:
        np.testing.assert_array_equal(got.argmax(axis=1), want.argmax(axis=1))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", [0, 1])
def test_parity_random(method, seed):
    rng = np.random.default_rng(seed)
    a, b = random_boxes(rng, 60), random_boxes(rng, 70)
    s = rng.random((60, 70)).astype(np.float32)
    got = vf.match(a, b, s, method, image_shape=(128, 128))
    assert_parity(got, ref.match(a, b, s, method, image_shape=(128, 128)))
    assert (got >= 0).all()


@pytest.mark.parametrize("order", ["sequential", "parallel"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lom_orders_parity(order, seed):
    rng = np.random.default_rng(seed)
    a, b = random_boxes(rng, 90), random_boxes(rng, 80)
    s = rng.random((90, 80)).astype(np.float32)
    s[rng.random(s.shape) < 0.2] = 0
    assert_parity(vf.match(a, b, s, "lom", order=order), ref.match(a, b, s, "lom", order=order))


def test_lom_sequential_rows_see_updated_rows():
    # Row 0's update changes its best match; row 1 (its neighbour) then follows the new offset.
    rng = np.random.default_rng(7)
    a, b = random_boxes(rng, 40, 64, 40), random_boxes(rng, 40, 64, 40)
    s = rng.random((40, 40)).astype(np.float32)
    seq = vf.match(a, b, s, "lom", order="sequential")
    par = vf.match(a, b, s, "lom", order="parallel")
    np.testing.assert_array_equal(seq[0], par[0])  # the first row reads only the gated appearance either way
    assert not np.array_equal(seq, par)
    with pytest.raises(ValueError, match="order"):
        vf.match(a, b, s, "lom", order="random")


def test_nam_gate_exact():
    a = np.array([[0, 0, 9, 9]], np.int32)  # 10 x 10
    b = np.array([[0, 0, 19, 9], [0, 0, 18, 9], [0, 0, 9, 4], [0, 0, 9, 5]], np.int32)  # ratios 2, 1.9, 2, 1.67
    s = np.ones((1, 4), np.float32)
    np.testing.assert_array_equal(vf.match(a, b, s, "nam"), [[0, 1, 0, 1]])


def test_lom_prefers_consistent_offset():
    # Three nested proposals in A all best-matched with offset +50 in x; B has a same-size decoy at +0.
    a = np.array([[10, 10, 29, 29], [12, 12, 27, 27], [8, 8, 31, 31]], np.int32)
    b = np.vstack([a + [50, 0, 50, 0], a[:1]]).astype(np.int32)
    s = np.full((3, 4), 0.5, np.float32)
    s[0, 3] = 0.55  # decoy slightly better in appearance for a0
    s[0, 0] = 0.5
    s[1, 1] = s[2, 2] = 0.9
    conf = vf.match(a, b, s, "lom")
    assert conf[0].argmax() == 0
    assert_parity(conf, ref.match(a, b, s, "lom"))


@pytest.mark.parametrize("method", METHODS)
def test_threads_identical(method):
    rng = np.random.default_rng(3)
    a, b = random_boxes(rng, 80), random_boxes(rng, 50)
    s = rng.random((80, 50)).astype(np.float32)
    old = vsum.threads.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            vsum.threads.set_num_threads(t)
            outs.append(vf.match(a, b, s, method))
    finally:
        vsum.threads.set_num_threads(old)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


@pytest.mark.parametrize("method", METHODS)
def test_empty(method):
    rng = np.random.default_rng(0)
    b = random_boxes(rng, 5)
    assert vf.match(np.zeros((0, 4), np.int32), b, np.zeros((0, 5)), method).shape == (0, 5)
    assert vf.match(b, np.zeros((0, 4), np.int32), np.zeros((5, 0)), method).shape == (5, 0)
    assert vf.match([], [], np.zeros((0, 0)), method).shape == (0, 0)


def test_zero_appearance_no_nan():
    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 6), random_boxes(rng, 7)
    for m in METHODS:
        out = vf.match(a, b, np.zeros((6, 7)), m)
        np.testing.assert_array_equal(out, 0)


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"appearance": np.zeros((3, 5))}, "shape"),
        ({"appearance": np.full((3, 4), np.nan)}, "finite"),
        ({"appearance": -np.ones((3, 4))}, ">= 0"),
        ({"method": "xyz"}, "method"),
        ({"boxes_a": np.array([[5, 5, 4, 9]] * 3)}, "degenerate|boxes_a"),
        ({"boxes_b": np.zeros((4, 3))}, "boxes_b"),
        ({"image_shape": (0, 10)}, "positive"),
    ],
)
def test_bad_input(kwargs, msg):
    rng = np.random.default_rng(0)
    args = {"boxes_a": random_boxes(rng, 3), "boxes_b": random_boxes(rng, 4), "appearance": np.ones((3, 4)),
            "method": "phm"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=msg):
        vf.match(**args)


def test_core_rejects_nan_directly():
    from vsum import _core

    a = np.array([[0, 0, 3, 3]], np.int32)
    with pytest.raises(ValueError, match="finite"):
        _core.flow_match(a, a, np.array([[np.nan]], np.float32), "lom", 4, 4)
    with pytest.raises(ValueError, match="shape"):
        _core.flow_match(a, a, np.ones((2, 1), np.float32), "nam", 4, 4)


def test_parity_real_descriptors(data_dir):
    from vsum import features, io, proposals

    folder = data_dir / "paper-examples"
    paths = sorted(folder.glob("*.jpg"))[:2]
    require_data(len(paths) == 2, f"two photos in {folder}")
    imgs, boxes, descs = [], [], []
    for p in paths:
        img = np.asarray(io.read_image(p, max_side=128).rgb)
        bx = proposals.selective_search(img, num=100)[0]
        imgs.append(img)
        boxes.append(bx)
        descs.append(features.describe(img, bx))
    s = np.asarray(features.appearance(descs[0], descs[1]), np.float32)  # already >= 0
    shape = (max(i.shape[0] for i in imgs), max(i.shape[1] for i in imgs))
    for m in METHODS:
        assert_parity(vf.match(boxes[0], boxes[1], s, m, image_shape=shape),
                      ref.match(boxes[0], boxes[1], s, m, image_shape=shape))
    assert_parity(vf.match(boxes[0], boxes[1], s, "lom", order="parallel"),
                  ref.match(boxes[0], boxes[1], s, "lom", order="parallel"))


@pytest.mark.parametrize("n_a, n_b, size, max_side", [(150, 37, 96, 90), (90, 61, 400, 40), (1, 1, 16, 8), (9, 3, 64, 60)])
def test_lom_parity_neighbourhood_sizes(n_a, n_b, size, max_side):
    # Heavy overlap (every box a neighbour of almost every other) down to a few neighbours per box: the vector
    # kernels' full blocks and padded tails of 1..8 points and odd column counts.
    rng = np.random.default_rng(n_a + n_b)
    a, b = random_boxes(rng, n_a, size, max_side), random_boxes(rng, n_b, size, max_side)
    s = rng.random((n_a, n_b)).astype(np.float32)
    s[rng.random(s.shape) < 0.3] = 0  # zeros are skipped by the kernel
    for order in ("sequential", "parallel"):
        assert_parity(vf.match(a, b, s, "lom", order=order), ref.match(a, b, s, "lom", order=order))


@pytest.mark.parametrize("method", METHODS)
def test_parity_large_boxes(method):
    # Sides above 4096 px take the int64 aspect gate; offsets of 10^5 px make the LOM factor underflow to 0.
    rng = np.random.default_rng(5)
    a = random_boxes(rng, 30, size=300_000, max_side=20_000)
    b = random_boxes(rng, 25, size=300_000, max_side=20_000)
    s = rng.random((30, 25)).astype(np.float32) * 50
    shape = (300_000, 300_000)
    got = vf.match(a, b, s, method, image_shape=shape)
    assert np.isfinite(got).all()
    assert_parity(got, ref.match(a, b, s, method, image_shape=shape))


def test_core_reports_first_bad_value_any_threads():
    from vsum import _core

    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 64), random_boxes(rng, 5)
    s = np.ones((64, 5), np.float32)
    s[7, 3], s[50, 0] = np.nan, -1.0
    old = vsum.threads.get_num_threads()
    try:
        for t in (1, 2, 4):
            vsum.threads.set_num_threads(t)
            for m in METHODS:
                with pytest.raises(ValueError, match=r"finite and >= 0; got nan at \(7, 3\)"):
                    _core.flow_match(a, b, s, m, 128, 128)
    finally:
        vsum.threads.set_num_threads(old)

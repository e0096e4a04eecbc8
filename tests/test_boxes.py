"""Box geometry kernels: compiled (vsum.boxes) vs NumPy reference, exact cases,
properties, errors, empty and huge inputs, threads, real photo masks."""

from __future__ import annotations

import doctest
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import vsum
import vsum.boxes as vb
import vsum.threads
from vsum import _core
from vsum.reference import boxes as ref

from helpers import require_data

KERNELS = {
    "iou": (vb.iou, ref.iou),
    "overlap_min": (vb.overlap_min, ref.overlap_min),
}
FUNCS = [vb.iou, vb.overlap_min, ref.iou, ref.overlap_min]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def random_boxes(rng, n, lo=-20, hi=120, max_size=80):
    """n valid boxes with corners in [lo, hi) and sides 1..max_size (may leave the image)."""
    x1 = rng.integers(lo, hi, n)
    y1 = rng.integers(lo, hi, n)
    w = rng.integers(1, max_size + 1, n)
    h = rng.integers(1, max_size + 1, n)
    return np.stack([x1, y1, x1 + w - 1, y1 + h - 1], axis=1).astype(np.int32)


def special_boxes(rng, n):
    """Nested, identical, 1-pixel, touching and disjoint variants of random boxes."""
    base = random_boxes(rng, n, max_size=40)
    w = base[:, 2] - base[:, 0] + 1
    h = base[:, 3] - base[:, 1] + 1
    nested = base.copy()
    nested[:, 0] += rng.integers(0, w)  # x1 in [x1, x2]
    nested[:, 1] += rng.integers(0, h)
    nested[:, 2] = np.maximum(nested[:, 0], nested[:, 2] - rng.integers(0, w))
    nested[:, 3] = np.maximum(nested[:, 1], nested[:, 3] - rng.integers(0, h))
    pixel = base.copy()
    pixel[:, 2], pixel[:, 3] = pixel[:, 0], pixel[:, 1]
    touch_x = base.copy()  # starts one column right of base: shares an edge, no pixel
    touch_x[:, 0] = base[:, 2] + 1
    touch_x[:, 2] = touch_x[:, 0] + rng.integers(0, 10, n)
    touch_y = base.copy()
    touch_y[:, 1] = base[:, 3] + 1
    touch_y[:, 3] = touch_y[:, 1] + rng.integers(0, 10, n)
    disjoint = base + 1000
    outside = base - 500  # entirely outside any image at the origin
    return np.concatenate([base, base.copy(), nested, pixel, touch_x, touch_y, disjoint, outside]).astype(
        np.int32
    )


# ---------------------------------------------------------------------------
# parity with the NumPy reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("seed", range(25))
def test_pairwise_matches_reference_random(name, seed):
    compiled, reference = KERNELS[name]
    rng = np.random.default_rng(seed)
    a = random_boxes(rng, int(rng.integers(1, 60)))
    b = random_boxes(rng, int(rng.integers(1, 60)))
    got = compiled(a, b)
    assert got.dtype == np.float32 and got.shape == (len(a), len(b))
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(got, reference(a, b))


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("seed", range(10))
def test_pairwise_matches_reference_special(name, seed):
    compiled, reference = KERNELS[name]
    rng = np.random.default_rng(1000 + seed)
    a = special_boxes(rng, 12)
    b = np.concatenate([special_boxes(rng, 5), a[::3]])
    np.testing.assert_array_equal(compiled(a, b), reference(a, b))
    np.testing.assert_array_equal(compiled(a, a), reference(a, a))


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("seed", range(5))
def test_pairwise_matches_reference_wide_span(name, seed):
    # A far-away box makes the common bounding box wider than 2^26 pixels, so the
    # kernel takes its int64 path (not the exact-double fast path) for all pairs.
    compiled, reference = KERNELS[name]
    rng = np.random.default_rng(500 + seed)
    far = [[2**29, 2**29, 2**29 + 999, 2**29 + 9], [-(2**30), 0, -(2**30) + 2**27, 5]]
    a = np.concatenate([special_boxes(rng, 8), far])
    b = np.concatenate([random_boxes(rng, 50), far[::-1]])
    np.testing.assert_array_equal(compiled(a, b), reference(a, b))
    np.testing.assert_array_equal(compiled(a, a), reference(a, a))


@pytest.mark.parametrize("seed", range(25))
def test_coverage_matches_reference_random(seed):
    rng = np.random.default_rng(seed)
    H, W = (int(v) for v in rng.integers(1, 90, 2))
    mask = rng.random((H, W)) < rng.random()
    boxes = np.concatenate([random_boxes(rng, 80, lo=-30, hi=110), special_boxes(rng, 6)])
    got = vb.coverage(mask, boxes)
    assert got.dtype == np.float32 and got.shape == (len(boxes),)
    np.testing.assert_array_equal(got, ref.coverage(mask, boxes))


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.int8, np.int32, np.int64, np.uint16])
def test_coverage_mask_dtypes(dtype):
    rng = np.random.default_rng(7)
    values = rng.integers(0, 3, (37, 41))  # 0, 1, 2: nonzero counts as set
    mask = values.astype(dtype)
    boxes = random_boxes(rng, 50, lo=-10, hi=45, max_size=30)
    expected = ref.coverage(values != 0, boxes)
    np.testing.assert_array_equal(vb.coverage(mask, boxes), expected)
    np.testing.assert_array_equal(ref.coverage(mask, boxes), expected)


def test_coverage_noncontiguous_mask_and_boxes():
    rng = np.random.default_rng(3)
    big = rng.random((80, 90)) < 0.4
    mask = big[::2, 1::3]  # strided view
    boxes = np.asfortranarray(random_boxes(rng, 40, lo=-5, hi=35, max_size=20).astype(np.int64))
    np.testing.assert_array_equal(vb.coverage(mask, boxes), ref.coverage(np.ascontiguousarray(mask), boxes))


def test_results_do_not_depend_on_thread_count(restore_threads):
    rng = np.random.default_rng(11)
    a = random_boxes(rng, 700)
    b = random_boxes(rng, 300)
    mask = rng.random((1201, 257)) < 0.5  # tall: the integral image is built in up to 9 row blocks
    boxes = random_boxes(rng, 3000, lo=-20, hi=1220, max_size=400)
    results = []
    for n in (1, 2, 3, 8):
        vsum.threads.set_num_threads(n)
        assert vsum.threads.get_num_threads() == n
        results.append((vb.iou(a, b), vb.overlap_min(a, b), vb.coverage(mask, boxes)))
    for r in results[1:]:
        for x, y in zip(results[0], r):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(results[0][0], ref.iou(a, b))
    np.testing.assert_array_equal(results[0][2], ref.coverage(mask, boxes))


def test_concurrent_calls_from_python_threads():
    rng = np.random.default_rng(5)
    a = random_boxes(rng, 400)
    b = random_boxes(rng, 400)
    expected = ref.iou(a, b)
    with ThreadPoolExecutor(4) as pool:
        for got in pool.map(lambda _: vb.iou(a, b), range(8)):
            np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------------------
# exact hand-computed cases
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("iou_fn", [vb.iou, ref.iou])
def test_iou_exact_cases(iou_fn):
    a = [[0, 0, 9, 9]]  # 10 x 10 = 100 pixels
    b = [
        [5, 5, 14, 14],  # offset by 5: 5 x 5 = 25 shared, union 175
        [0, 0, 9, 9],  # identical
        [10, 0, 19, 9],  # touching along x: no shared pixel
        [0, 10, 9, 19],  # touching along y
        [9, 9, 9, 9],  # 1 pixel inside
        [2, 2, 6, 6],  # nested 5 x 5
        [100, 100, 101, 101],  # disjoint
        [0, 0, 4, 9],  # left half
    ]
    got = iou_fn(a, b)
    expected = np.array([[25 / 175, 1, 0, 0, 1 / 100, 25 / 100, 0, 0.5]]).astype(np.float32)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("fn", [vb.overlap_min, ref.overlap_min])
def test_overlap_min_exact_cases(fn):
    a = [[0, 0, 9, 9]]
    b = [[5, 5, 14, 14], [2, 2, 6, 6], [9, 9, 9, 9], [10, 0, 19, 9], [-5, 0, 4, 9]]
    expected = np.array([[25 / 100, 1, 1, 0, 50 / 100]], dtype=np.float32)
    np.testing.assert_array_equal(fn(a, b), expected)


@pytest.mark.parametrize("fn", [vb.coverage, ref.coverage])
def test_coverage_exact_cases(fn):
    mask = np.zeros((10, 20), dtype=np.uint8)
    mask[:, :10] = 1  # left half set
    mask[0, 15] = 255  # one more set pixel
    boxes = [
        [0, 0, 19, 9],  # whole image: 101 / 200
        [0, 0, 9, 9],  # left half: 1
        [10, 1, 19, 9],  # right half without row 0: 0
        [15, 0, 15, 0],  # the single pixel
        [-10, 0, 9, 9],  # half outside, rest set: 0.5
        [0, -10, 9, 19],  # 100 of 300
        [30, 30, 40, 40],  # fully outside
        [-100, -100, 119, 109],  # contains the image: 101 / (220 * 210)
    ]
    expected = np.array(
        [101 / 200, 1, 0, 1, 0.5, 100 / 300, 0, 101 / (220 * 210)], dtype=np.float64
    ).astype(np.float32)
    np.testing.assert_array_equal(fn(mask, boxes), expected)


def test_float_boxes_with_integer_values_are_accepted():
    a = np.array([[0.0, 0.0, 9.0, 9.0]])
    b = np.array([[5.0, 5.0, 14.0, 14.0]], dtype=np.float32)
    assert vb.iou(a, b)[0, 0] == np.float32(25 / 175)
    assert ref.iou(a, b)[0, 0] == np.float32(25 / 175)
    assert vb.coverage(np.ones((20, 20), bool), a)[0] == 1.0


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.int64, np.uint32, np.uint64])
def test_integer_box_dtypes_are_accepted(dtype):
    a = np.array([[0, 0, 9, 9]], dtype=dtype)
    b = np.array([[5, 5, 14, 14]], dtype=dtype)
    assert vb.iou(a, b)[0, 0] == np.float32(25 / 175)
    assert vb.iou(a.tolist(), b.tolist())[0, 0] == np.float32(25 / 175)


# ---------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_pairwise_properties(seed):
    rng = np.random.default_rng(2000 + seed)
    a = special_boxes(rng, 10)
    b = random_boxes(rng, 70)
    iou_ab = vb.iou(a, b)
    omin_ab = vb.overlap_min(a, b)
    np.testing.assert_array_equal(iou_ab, vb.iou(b, a).T)  # symmetric
    np.testing.assert_array_equal(omin_ab, vb.overlap_min(b, a).T)
    assert np.all(np.diag(vb.iou(a, a)) == 1)
    assert np.all(np.diag(vb.overlap_min(a, a)) == 1)
    for r in (iou_ab, omin_ab):
        assert np.all((r >= 0) & (r <= 1))
    assert np.all(omin_ab >= iou_ab)
    assert np.array_equal(iou_ab > 0, omin_ab > 0)  # both zero exactly when disjoint
    # touching boxes share no pixel
    touch = a.copy()
    touch[:, 0] = a[:, 2] + 1
    touch[:, 2] = touch[:, 0] + 3
    assert np.all(np.diag(vb.iou(a, touch)) == 0)


@pytest.mark.parametrize("seed", range(5))
def test_coverage_properties(seed):
    rng = np.random.default_rng(3000 + seed)
    mask = rng.random((50, 60)) < 0.3
    boxes = random_boxes(rng, 200, lo=-20, hi=70, max_size=40)
    cov = vb.coverage(mask, boxes)
    assert np.all((cov >= 0) & (cov <= 1))
    np.testing.assert_array_equal(vb.coverage(np.ones_like(mask), [[0, 0, 59, 49]]), [1])
    np.testing.assert_array_equal(vb.coverage(np.zeros_like(mask), boxes), np.zeros(len(boxes)))
    full = vb.coverage(mask, [[0, 0, 59, 49]])[0]
    assert full == np.float32(mask.mean())
    # complement: set + unset fractions add up to the in-image fraction
    inv = vb.coverage(~mask, boxes)
    inside = vb.coverage(np.ones_like(mask), boxes)
    np.testing.assert_allclose(cov + inv, inside, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------
# real photo
# ---------------------------------------------------------------------------


def _photos(data_dir, count=3):
    files = sorted(p for p in (data_dir / "paper-examples").glob("*") if p.suffix.lower() in {".jpeg", ".jpg", ".png"})
    require_data(bool(files), f"photos in {data_dir / 'paper-examples'}")
    return files[:count]


def test_coverage_on_real_photo(data_dir):
    from PIL import Image

    rng = np.random.default_rng(42)
    for path in _photos(data_dir):
        with Image.open(path) as im:
            grey = np.asarray(im.convert("L"))
        H, W = grey.shape
        mask = grey > grey.mean()  # thresholded grey values: a real, irregular binary image
        assert 0 < mask.mean() < 1
        boxes = np.concatenate(
            [
                random_boxes(rng, 400, lo=-50, hi=max(H, W) + 50, max_size=max(H, W) // 2),
                [[0, 0, W - 1, H - 1], [-W, -H, 2 * W - 1, 2 * H - 1], [W // 2, H // 2, W // 2, H // 2]],
            ]
        )
        got = vb.coverage(mask, boxes)
        np.testing.assert_array_equal(got, ref.coverage(mask, boxes))
        assert got[-3] == np.float32(mask.mean())
        assert got[-2] == np.float32(np.count_nonzero(mask) / (9 * H * W))
        assert got[-1] == float(mask[H // 2, W // 2])
        # uint8 grey values with nonzero semantics work too
        np.testing.assert_array_equal(vb.coverage(grey, boxes), ref.coverage(grey != 0, boxes))


# ---------------------------------------------------------------------------
# empty inputs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fn", FUNCS)
def test_pairwise_empty_inputs(fn):
    some = random_boxes(np.random.default_rng(0), 5)
    empty = np.zeros((0, 4), np.int32)
    for a, b, shape in [(empty, some, (0, 5)), (some, empty, (5, 0)), (empty, empty, (0, 0)), ([], some, (0, 5))]:
        r = fn(a, b)
        assert r.shape == shape and r.dtype == np.float32


@pytest.mark.parametrize("fn", [vb.coverage, ref.coverage])
def test_coverage_empty_inputs(fn):
    r = fn(np.ones((5, 5), bool), np.zeros((0, 4), np.int64))
    assert r.shape == (0,) and r.dtype == np.float32
    r = fn(np.ones((5, 5), bool), [])
    assert r.shape == (0,)
    # an empty image: every pixel of every box is outside it
    r = fn(np.zeros((0, 7), np.uint8), [[0, 0, 3, 3], [-1, -1, 1, 1]])
    np.testing.assert_array_equal(r, [0, 0])


# ---------------------------------------------------------------------------
# huge boxes: 64-bit counts, no overflow
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("iou_fn,omin_fn", [(vb.iou, vb.overlap_min), (ref.iou, ref.overlap_min)])
def test_huge_boxes_do_not_overflow(iou_fn, omin_fn):
    lo, hi = vb.BOX_COORD_MIN, vb.BOX_COORD_MAX
    full = [lo, lo, hi, hi]  # 2^31 x 2^31 = 2^62 pixels
    left = [lo, lo, -1, hi]  # exactly half of it
    big = [0, 0, 69_999, 69_999]  # 4.9e9 pixels > 2^32
    big_half = [0, 0, 34_999, 69_999]
    a = np.array([full, left, big], dtype=np.int64)
    b = np.array([full, left, big, big_half], dtype=np.int64)
    r = iou_fn(a, b)
    np.testing.assert_array_equal(r[0, :2], [1, 0.5])
    np.testing.assert_array_equal(r[1, :2], [0.5, 1])
    assert r[2, 2] == 1 and r[2, 3] == 0.5
    assert r[0, 2] == np.float32(70_000**2 / 2**62)
    assert np.all((r >= 0) & (r <= 1))
    o = omin_fn(a, b)
    np.testing.assert_array_equal(o[0], [1, 1, 1, 1])
    assert o[2, 3] == 1


@pytest.mark.parametrize("fn", [vb.coverage, ref.coverage])
def test_huge_box_coverage(fn):
    mask = np.ones((100, 100), bool)
    lo, hi = vb.BOX_COORD_MIN, vb.BOX_COORD_MAX
    r = fn(mask, [[0, 0, 99_999, 99_999], [lo, lo, hi, hi]])
    np.testing.assert_array_equal(r, np.array([1e4 / 1e10, 1e4 / 2**62], dtype=np.float32))
    assert np.all(r > 0)


def test_large_image_coverage_matches_reference():
    rng = np.random.default_rng(9)
    mask = rng.random((1500, 1300)) < 0.5
    boxes = random_boxes(rng, 60, lo=-100, hi=1500, max_size=1400)
    np.testing.assert_array_equal(vb.coverage(mask, boxes), ref.coverage(mask, boxes))


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fn", FUNCS)
def test_degenerate_box_names_first_bad_row(fn):
    good = [[0, 0, 9, 9]] * 3
    bad = [[0, 0, 9, 9], [1, 1, 5, 5], [5, 0, 4, 9], [0, 5, 9, 4]]
    with pytest.raises(ValueError, match=r"boxes_b: row 2 is degenerate"):
        fn(good, bad)
    with pytest.raises(ValueError, match=r"boxes_a: row 3 is degenerate.*\(0, 5, 9, 4\)"):
        fn(np.array(bad)[[0, 1, 0, 3]], good)


@pytest.mark.parametrize("fn", [vb.coverage, ref.coverage])
def test_coverage_degenerate_box(fn):
    with pytest.raises(ValueError, match=r"boxes: row 1 is degenerate"):
        fn(np.ones((4, 4), bool), [[0, 0, 1, 1], [3, 3, 2, 2]])


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize(
    "boxes,match",
    [
        (np.zeros((3,), np.int32), r"shape \(n, 4\).*got shape \(3,\)"),
        (np.zeros((2, 3), np.int32), r"shape \(n, 4\).*got shape \(2, 3\)"),
        (np.zeros((2, 4, 1), np.int32), r"shape \(n, 4\).*got shape \(2, 4, 1\)"),
        ([[0, 0, 1.5, 3]], r"integer pixel coordinates; row 0"),
        ([[0, 0, 1, 1], [0, 0, np.nan, 3]], r"row 1 .*non-finite"),
        (np.ones((1, 4), bool), r"integer array"),
        (np.array([["a", "b", "c", "d"]]), r"integer array"),
        ([[0, 0, 1, 1], [0, 0, 2**31, 3]], r"row 1 has coordinate 2147483648 outside"),
        ([[0, 0, 1, 1], [0, 0, 1, 2**30]], r"row 1 has coordinate 1073741824 outside"),
        ([[-(2**30) - 1, 0, 1, 1]], r"row 0 has coordinate -1073741825 outside"),
        ([[0, 0, 1], [1, 2, 3, 4]], r"array-like of shape \(n, 4\)|shape \(n, 4\)"),
    ],
)
def test_bad_boxes_raise_value_error(fn, boxes, match):
    good = [[0, 0, 9, 9]]
    with pytest.raises(ValueError, match=match):
        fn(good, boxes)


@pytest.mark.parametrize("fn", [vb.coverage, ref.coverage])
def test_bad_mask_raises_value_error(fn):
    boxes = [[0, 0, 1, 1]]
    with pytest.raises(ValueError, match=r"mask must be a 2-D \(H, W\) array; got shape \(4, 4, 3\)"):
        fn(np.ones((4, 4, 3), bool), boxes)
    with pytest.raises(ValueError, match=r"2-D"):
        fn(np.ones(4, bool), boxes)
    with pytest.raises(ValueError, match=r"Threshold a float mask first"):
        fn(np.ones((4, 4), np.float32), boxes)


def test_set_num_threads_rejects_bad_values(restore_threads):
    for bad in (0, -1, 5000, 2.5, True, "2"):
        with pytest.raises(ValueError):
            vsum.threads.set_num_threads(bad)
    with pytest.raises(ValueError, match=r"num_threads"):
        _core.set_num_threads(0)


def test_core_is_strict_about_dtype_and_layout():
    ok = np.zeros((1, 4), np.int32)
    with pytest.raises(ValueError, match=r"boxes_b must be a int32 array of shape \(n, 4\); got dtype int64"):
        _core.box_iou(ok, np.zeros((1, 4), np.int64))
    with pytest.raises(ValueError, match=r"C-contiguous"):
        _core.box_iou(ok, np.zeros((4, 4), np.int32).T)
    with pytest.raises(ValueError, match=r"must have shape \(n, 4\)"):
        _core.box_overlap_min(ok, np.zeros((2, 5), np.int32))
    with pytest.raises(ValueError, match=r"mask must be a uint8 or bool array"):
        _core.box_coverage(np.zeros((2, 2), np.float32), ok)
    with pytest.raises(ValueError, match=r"boxes: row 0 has coordinate"):
        _core.box_coverage(np.zeros((2, 2), np.uint8), np.array([[0, 0, 2**30, 1]], np.int32))


# ---------------------------------------------------------------------------
# module-level checks
# ---------------------------------------------------------------------------


def test_coordinate_limits_match_compiled_core():
    assert vb.BOX_COORD_MIN == _core.BOX_COORD_MIN == -(2**30)
    assert vb.BOX_COORD_MAX == _core.BOX_COORD_MAX == 2**30 - 1


def test_docstring_examples():
    result = doctest.testmod(vb, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_import_does_not_pull_in_torch():
    code = "import sys, vsum.boxes, vsum.reference.boxes; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("value,expected", [("3", 3), ("1", 1)])
def test_num_threads_from_environment(value, expected):
    env = dict(os.environ, VSUM_NUM_THREADS=value)
    out = subprocess.run(
        [sys.executable, "-c", "import vsum.threads as t; print(t.get_num_threads())"],
        env=env, check=True, capture_output=True, text=True,
    )
    assert int(out.stdout) == expected


@pytest.mark.parametrize("value", ["0", "-2", "abc", "2x", ""])
def test_invalid_thread_environment_falls_back(value):
    env = dict(os.environ, VSUM_NUM_THREADS=value)
    out = subprocess.run(
        [sys.executable, "-c", "import vsum.threads as t; print(t.get_num_threads())"],
        env=env, check=True, capture_output=True, text=True,
    )
    assert int(out.stdout) >= 1


def test_installed_package_is_used():
    # Tests run against the installed package, never the source tree.
    assert hasattr(vsum, "__version__")
    assert _core.__file__.endswith((".so", ".pyd"))

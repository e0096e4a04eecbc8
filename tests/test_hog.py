"""Felzenszwalb HOG and proposal descriptors: compiled (vsum.features) vs the NumPy
reference (vsum.reference.hog), shape rules, properties, degenerate input, threads."""

from __future__ import annotations

import numpy as np
import pytest

import vsum.threads
from vsum import features as vf
from vsum.reference import hog as ref

from helpers import require_data

RTOL = 1e-4


def assert_close(actual, expected):
    """Match to RTOL relative to the largest feature value (features lie in [0, 0.85])."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype == np.float32
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-6)
    err = float(np.abs(actual.astype(np.float64) - expected).max(initial=0.0))
    assert err <= RTOL * scale, f"max abs error {err:.3g} > {RTOL} x {scale:.3g}"


def random_boxes(rng, n, H, W, margin=30, max_side=120):
    x1 = rng.integers(-margin, W, n)
    y1 = rng.integers(-margin, H, n)
    w = rng.integers(1, max_side + 1, n)
    h = rng.integers(1, max_side + 1, n)
    return np.stack([x1, y1, x1 + w - 1, y1 + h - 1], axis=1).astype(np.int32)


def load_photo(path, max_side=None):
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        if max_side and max(img.size) > max_side:
            img.thumbnail((max_side, max_side))
        return np.asarray(img)


# ---------------------------------------------------------------------------
# FHOG
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("cell", [8, 4, 6])
def test_fhog_matches_reference_random(seed, cell):
    rng = np.random.default_rng(seed)
    H, W = rng.integers(20, 90, 2)
    image = rng.uniform(0, 255, (H, W, 3)).astype(np.float32)
    assert_close(vf.hog(image, cell), ref.fhog(image, cell))


def test_fhog_matches_reference_smooth_and_integer_images():
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:70, 0:90]
    smooth = np.stack([np.sin(xx / 7.0) * 100 + 120, np.cos(yy / 5.0) * 80 + 100, (xx + yy) % 255], -1)
    assert_close(vf.hog(smooth), ref.fhog(smooth))
    ints = rng.integers(0, 256, (64, 72, 3), dtype=np.uint8)  # many channel ties
    assert_close(vf.hog(ints), ref.fhog(ints))


def test_fhog_matches_reference_on_photos(data_dir):
    paths = sorted((data_dir / "paper-examples").glob("*.jpg"))[:3]
    require_data(bool(paths), f"photos in {data_dir / 'paper-examples'}")
    for path in paths:
        image = load_photo(path, max_side=256)
        assert_close(vf.hog(image), ref.fhog(image))


def channel_tie_image(rng, H, W):
    """Channels whose gradients have (nearly) equal magnitudes but opposite or
    mirrored directions at most pixels: G = 255 - R makes every pixel a near
    tie between R and G, so the compiled kernel's float32 channel choice must
    fall back to the reference's float64 one."""
    r = rng.uniform(0, 255, (H, W)).astype(np.float32)
    return np.stack([r, np.float32(255) - r, r[:, ::-1]], axis=-1)


def test_fhog_matches_reference_with_channel_ties():
    rng = np.random.default_rng(21)
    image = channel_tie_image(rng, 60, 70)
    assert_close(vf.hog(image), ref.fhog(image))
    ints = np.round(image)  # exact ties
    assert_close(vf.hog(ints), ref.fhog(ints))


@pytest.mark.parametrize(
    "shape,cell,expected",
    [
        ((224, 224), 8, (26, 26)),
        ((375, 500), 8, (45, 61)),
        ((80, 80), 8, (8, 8)),
        ((84, 83), 8, (9, 8)),  # 10.5 -> 11 blocks, 10.375 -> 10
        ((20, 19), 8, (1, 0)),  # 2.5 -> 3 blocks, 2.375 -> 2
        ((16, 200), 8, (0, 23)),
        ((5, 5), 8, (0, 0)),
        ((3, 3), 1, (1, 1)),
    ],
)
def test_shape_rule(shape, cell, expected):
    image = np.random.default_rng(0).uniform(0, 255, (*shape, 3))
    out = vf.hog(image, cell)
    assert out.shape == (*expected, 31) and out.dtype == np.float32
    assert vf.hog_shape(*shape, cell) == (*expected, 31)
    assert ref.fhog(image, cell).shape == out.shape


def test_constant_image_gives_zero_gradient_features():
    for value in (0, 17, 255):
        out = vf.hog(np.full((64, 48, 3), value, np.uint8))
        assert out.shape == (6, 4, 31)
        np.testing.assert_array_equal(out, 0)


def test_feature_ranges_and_structure():
    rng = np.random.default_rng(3)
    out = vf.hog(rng.uniform(0, 255, (96, 96, 3)))
    assert (out >= 0).all()
    assert out[..., :27].max() <= 0.4 + 1e-6  # 0.5 * 4 * 0.2
    assert out[..., 27:].max() <= 0.2357 * 18 * 0.2 + 1e-6


def test_grey_input_and_dtypes_agree():
    rng = np.random.default_rng(4)
    grey = rng.integers(0, 256, (40, 48)).astype(np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(vf.hog(grey), vf.hog(rgb))
    np.testing.assert_array_equal(vf.hog(rgb), vf.hog(rgb.astype(np.float64)))
    np.testing.assert_array_equal(vf.hog(rgb), vf.hog(np.asfortranarray(rgb)))


def test_vertical_edge_votes_horizontal_gradient():
    image = np.zeros((64, 64, 3), np.float32)
    image[:, 32:] = 255  # left-to-right step: gradient along +x, orientation bin 0
    out = vf.hog(image)
    col = out[:, 2:4]  # cells next to the edge
    assert col[..., 0].min() > 0.1
    assert np.abs(col[..., 1:18]).max() < 1e-6


@pytest.mark.parametrize(
    "image,cell,match",
    [
        (np.zeros((10, 10, 4)), 8, "alpha"),
        (np.zeros((10, 10, 3), bool), 8, "dtype"),
        (np.full((10, 10, 3), np.nan), 8, "NaN"),
        (np.zeros((10, 10, 3)), 0, "cell"),
        (np.zeros((10, 10, 3)), 2.5, "cell"),
        (np.zeros((2, 3, 4, 5)), 8, "shape"),
    ],
)
def test_fhog_rejects_bad_input(image, cell, match):
    with pytest.raises(ValueError, match=match):
        vf.hog(image, cell)
    with pytest.raises(ValueError, match=match):
        ref.fhog(image, cell)


def test_core_rejects_huge_or_non_finite_values():
    from vsum import _core

    image = np.zeros((40, 40, 3), np.float32)
    for value in (1e30, -1e19, np.nan, np.inf):
        image[3, 4, 1] = value
        with pytest.raises(ValueError, match="within"):
            _core.fhog(image, 8)
        with pytest.raises(ValueError, match="within"):
            _core.hog_describe(image, np.array([[0, 0, 9, 9]], np.int32))
    image[3, 4, 1] = 1e17  # accepted
    assert np.isfinite(_core.fhog(image, 8)).all()


def test_core_rejects_wrong_dtype_directly():
    from vsum import _core

    with pytest.raises(ValueError, match="float32"):
        _core.fhog(np.zeros((20, 20, 3)), 8)
    with pytest.raises(ValueError, match="cell"):
        _core.fhog(np.zeros((20, 20, 3), np.float32), 0)


def test_fhog_thread_count_invariant(restore_threads):
    image = np.random.default_rng(5).uniform(0, 255, (130, 170, 3)).astype(np.float32)
    vsum.threads.set_num_threads(1)
    one = vf.hog(image)
    vsum.threads.set_num_threads(2)
    two = vf.hog(image)
    vsum.threads.set_num_threads(3)
    three = vf.hog(image)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, three)


# ---------------------------------------------------------------------------
# descriptors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_describe_matches_reference_random(seed):
    rng = np.random.default_rng(seed)
    H, W = rng.integers(16, 120, 2)
    image = rng.uniform(0, 255, (H, W, 3)).astype(np.float32)
    boxes = random_boxes(rng, 12, H, W)
    out = vf.describe(image, boxes)
    assert out.shape == (12, 1984) and out.dtype == np.float32
    assert_close(out, ref.describe(image, boxes))


def test_describe_matches_reference_on_photos(data_dir):
    paths = sorted((data_dir / "paper-examples").glob("*.jpg"))[:2]
    require_data(bool(paths), f"photos in {data_dir / 'paper-examples'}")
    rng = np.random.default_rng(11)
    for path in paths:
        image = load_photo(path)
        boxes = random_boxes(rng, 10, *image.shape[:2], max_side=300)
        boxes = np.vstack([boxes, [[0, 0, image.shape[1] - 1, image.shape[0] - 1]]])
        assert_close(vf.describe(image, boxes), ref.describe(image, boxes))


def test_describe_is_fhog_of_the_crop():
    rng = np.random.default_rng(12)
    image = rng.uniform(0, 255, (50, 60, 3)).astype(np.float32)
    box = [5, 7, 44, 30]
    crop = ref.crop_box(image, box)
    assert crop.shape == (80, 80, 3)
    np.testing.assert_array_equal(vf.describe(image, [box])[0], vf.hog(crop).ravel())


def test_describe_matches_reference_with_channel_ties():
    rng = np.random.default_rng(22)
    image = channel_tie_image(rng, 50, 64)
    boxes = np.vstack([random_boxes(rng, 8, 50, 64), [[0, 0, 63, 49], [10, 3, 17, 9]]]).astype(np.int32)
    assert_close(vf.describe(image, boxes), ref.describe(image, boxes))


def test_describe_rows_are_fhog_of_their_crops():
    # The batched kernel (serial per box) and hog() (parallel over rows) share
    # every arithmetic step: results are bit-identical, boxes inside or not.
    rng = np.random.default_rng(16)
    image = rng.uniform(0, 255, (70, 90, 3)).astype(np.float32)
    boxes = np.vstack([random_boxes(rng, 6, 70, 90), [[-20, -5, 10, 100], [0, 0, 89, 69]]]).astype(np.int32)
    out = vf.describe(image, boxes)
    for row, box in zip(out, boxes):
        np.testing.assert_array_equal(row, vf.hog(ref.crop_box(image, box)).ravel())


def test_describe_crop_geometry():
    # A 64x64 box maps 1:1 onto the central 64x64 pixels of the crop (pad = 8 px).
    rng = np.random.default_rng(13)
    image = rng.uniform(0, 255, (100, 100, 3)).astype(np.float32)
    crop = ref.crop_box(image, [20, 10, 83, 73])
    np.testing.assert_array_equal(crop, image[2:82, 12:92])
    # Outside the image: edge replication.
    crop = ref.crop_box(image, [-200, -200, -137, -137])
    np.testing.assert_array_equal(crop, np.broadcast_to(image[0, 0], crop.shape))


def test_describe_boxes_outside_and_touching_border():
    rng = np.random.default_rng(14)
    image = rng.uniform(0, 255, (40, 50, 3)).astype(np.float32)
    boxes = np.array(
        [[0, 0, 49, 39], [-10, -10, 5, 5], [45, 35, 60, 50], [100, 100, 130, 120], [0, 0, 0, 0], [49, 39, 49, 39]],
        np.int32,
    )
    out = vf.describe(image, boxes)
    assert np.isfinite(out).all()
    assert_close(out, ref.describe(image, boxes))
    np.testing.assert_array_equal(out[3], 0)  # wholly outside: a constant crop


def test_describe_constant_image_is_zero():
    out = vf.describe(np.full((32, 32, 3), 99, np.uint8), [[0, 0, 31, 31], [3, 4, 10, 20]])
    np.testing.assert_array_equal(out, 0)


def test_describe_zero_boxes():
    image = np.zeros((20, 20, 3), np.uint8)
    for boxes in (np.zeros((0, 4), np.int32), [], np.zeros((0, 4))):
        out = vf.describe(image, boxes)
        assert out.shape == (0, 1984) and out.dtype == np.float32
    assert ref.describe(image, []).shape == (0, 1984)


def test_describe_rejects_small_image():
    for shape in [(15, 40, 3), (40, 15, 3), (0, 0, 3)]:
        with pytest.raises(ValueError, match="at least 16 x 16"):
            vf.describe(np.zeros(shape, np.float32), [[0, 0, 1, 1]])
        with pytest.raises(ValueError, match="at least 16 x 16"):
            ref.describe(np.zeros(shape, np.float32), [[0, 0, 1, 1]])


def test_describe_rejects_degenerate_box_naming_the_row():
    image = np.zeros((20, 20, 3), np.uint8)
    boxes = [[0, 0, 5, 5], [1, 1, 2, 2], [6, 0, 5, 5]]
    for fn in (vf.describe, ref.describe):
        with pytest.raises(ValueError, match="row 2 is degenerate"):
            fn(image, boxes)
    from vsum import _core

    with pytest.raises(ValueError, match="row 2 is degenerate"):
        _core.hog_describe(image.astype(np.float32), np.asarray(boxes, np.int32))
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        vf.describe(image, [[0, 0, 5]])


def test_describe_identical_across_runs_and_threads(restore_threads):
    rng = np.random.default_rng(15)
    image = rng.uniform(0, 255, (120, 90, 3)).astype(np.float32)
    boxes = random_boxes(rng, 37, 120, 90)
    vsum.threads.set_num_threads(1)
    one = vf.describe(image, boxes)
    np.testing.assert_array_equal(one, vf.describe(image, boxes))
    vsum.threads.set_num_threads(2)
    np.testing.assert_array_equal(one, vf.describe(image, boxes))
    vsum.threads.set_num_threads(5)
    np.testing.assert_array_equal(one, vf.describe(image, boxes))

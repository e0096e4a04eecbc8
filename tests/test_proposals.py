"""Stage 2: graph segmentation (compiled vs NumPy reference) and selective search
(determinism, filters, limits, degenerate inputs, real photos)."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from PIL import Image

import vsum.proposals as vp
import vsum.threads
from vsum.reference import segmentation as ref

from helpers import require_data

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two label images describe the same partition (up to label names)."""
    if a.shape != b.shape:
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()], axis=1), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


def photo(path, side: int) -> np.ndarray:
    """RGB uint8 photo resized (whole, aspect not kept) to side x side."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((side, side), Image.BILINEAR))


def some_photos(data_dir, count: int):
    folders = ["albatross", "paper-examples", "imagenette"]
    paths = []
    for folder in folders:
        root = data_dir / folder
        if root.is_dir():
            files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            paths += files[:1]
    require_data(bool(paths), f"photos in {', '.join(str(data_dir / f) for f in folders)}")
    return paths[:count]


@pytest.fixture(scope="module")
def small_photo():
    """A synthetic 'photo': smooth gradients, blobs and noise, 96 x 112."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:96, 0:112]
    img = np.stack([x * 2, y * 2, (x + y)], axis=-1).astype(np.float64)
    for _ in range(8):
        cy, cx, r = rng.integers(10, 86), rng.integers(10, 102), rng.integers(6, 20)
        img[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.integers(0, 256, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------
# segmentation: parity with the reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_segment_matches_reference_random(seed):
    rng = np.random.default_rng(seed)
    H, W = rng.integers(1, 40, 2)
    C = [1, 3, 2][seed % 3]
    kind = seed % 4
    if kind == 0:  # noise
        img = rng.integers(0, 256, (H, W, C)).astype(np.uint8)
    elif kind == 1:  # few levels: many equal weights, ties decide
        img = (rng.integers(0, 3, (H, W, C)) * 60).astype(np.uint8)
    elif kind == 2:  # float image
        img = rng.normal(0, 20, (H, W, C))
    else:  # blocks plus noise
        img = np.kron(rng.integers(0, 256, (4, 4, C)), np.ones((10, 10, 1)))[:H, :W] + rng.normal(0, 3, (H, W, C))
        H, W = img.shape[:2]
    sigma = [0.8, 0.0, 0.5, 1.7][seed % 4]
    k = float(rng.choice([0, 10, 100, 500]))
    min_size = int(rng.choice([0, 1, 5, 50]))
    got = vp.segment(img, sigma=sigma, k=k, min_size=min_size)
    want = ref.segment(img, sigma=sigma, k=k, min_size=min_size)
    assert got.dtype == np.int32 and got.shape == (H, W)
    assert same_partition(got, want)
    np.testing.assert_array_equal(got, want)  # both number segments in raster order


def test_segment_matches_reference_on_photos(data_dir):
    for path in some_photos(data_dir, 3):
        img = photo(path, 128)
        for k, min_size in ((100, 100), (300, 300)):
            got = vp.segment(img, sigma=0.8, k=k, min_size=min_size)
            want = ref.segment(img, sigma=0.8, k=k, min_size=min_size)
            assert same_partition(got, want), (path.name, k)
            assert got.max() >= 3  # a real photo has several segments


def test_segment_properties(small_photo):
    labels = vp.segment(small_photo, sigma=0.8, k=100, min_size=60)
    n = labels.max() + 1
    counts = np.bincount(labels.ravel(), minlength=n)
    assert (counts > 0).all()  # labels are 0..n-1 without gaps
    assert counts.min() >= 60  # min_size holds when the image is large enough
    first = [np.flatnonzero(labels.ravel() == i)[0] for i in range(n)]
    assert first == sorted(first)  # raster order of first pixels
    # larger k: fewer segments
    assert vp.segment(small_photo, k=1000, min_size=60).max() < labels.max()


def test_segment_degenerate_inputs():
    assert vp.segment(np.zeros((1, 1))).tolist() == [[0]]
    assert (vp.segment(np.full((5, 7, 3), 9, np.uint8)) == 0).all()
    assert vp.segment(np.arange(6).reshape(1, 6), k=0, min_size=0, sigma=0).tolist() == [[0, 1, 2, 3, 4, 5]]
    for bad, match in [
        (np.zeros((0, 4)), "empty"),
        (np.zeros(5), "shape"),
        (np.array([[np.nan, 1.0]]), "finite"),
        (np.array([["a"]]), "real numbers"),
    ]:
        with pytest.raises(ValueError, match=match):
            vp.segment(bad)
    img = np.zeros((4, 4))
    for kwargs in ({"sigma": -1}, {"k": -1}, {"min_size": -2}, {"min_size": 1.5}, {"k": np.inf}):
        with pytest.raises(ValueError):
            vp.segment(img, **kwargs)


# ---------------------------------------------------------------------------
# selective search
# ---------------------------------------------------------------------------


def check_filters(boxes, H, W, min_side=20, border=0.01):
    assert boxes.dtype == np.int32 and boxes.ndim == 2 and boxes.shape[1] == 4
    x1, y1, x2, y2 = boxes.T
    assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 < W).all() and (y2 < H).all()
    assert ((x2 - x1 + 1) >= min_side).all() and ((y2 - y1 + 1) >= min_side).all()
    assert len(np.unique(boxes, axis=0)) == len(boxes)
    whole = (x1 == 0) & (y1 == 0) & (x2 == W - 1) & (y2 == H - 1)
    touching = (x1 < border * W) | (y1 < border * H) | (W - 1 - x2 < border * W) | (H - 1 - y2 < border * H)
    assert not (touching & ~whole).any()


def test_selective_search_outputs_and_filters(small_photo):
    H, W = small_photo.shape[:2]
    boxes, prio = vp.selective_search(small_photo, num=100, seed=3)
    assert 0 < len(boxes) <= 100 and prio.shape == (len(boxes),) and prio.dtype == np.float64
    assert (np.diff(prio) >= 0).all() and (prio >= 0).all()
    check_filters(boxes, H, W)
    everything, _ = vp.selective_search(small_photo, num=None, seed=3)
    assert len(everything) >= len(boxes)
    np.testing.assert_array_equal(everything[: len(boxes)], boxes)  # num only cuts the ranking
    check_filters(everything, H, W)
    assert len(vp.selective_search(small_photo, num=0)[0]) == 0
    custom, _ = vp.selective_search(small_photo, num=None, min_side=40, border=0.1)
    check_filters(custom, H, W, min_side=40, border=0.1)


def test_selective_search_deterministic_across_seeds_and_threads(small_photo, restore_threads):
    vsum.threads.set_num_threads(1)
    one, p1 = vp.selective_search(small_photo, seed=11)
    again, _ = vp.selective_search(small_photo, seed=11)
    np.testing.assert_array_equal(one, again)
    for threads in (2, 3, 7):
        vsum.threads.set_num_threads(threads)
        boxes, prio = vp.selective_search(small_photo, seed=11)
        np.testing.assert_array_equal(boxes, one)
        np.testing.assert_array_equal(prio, p1)
    other, _ = vp.selective_search(small_photo, seed=12)
    assert not np.array_equal(other, one)  # the seed changes the ranking...
    pool_a, _ = vp.selective_search(small_photo, num=None, seed=11)
    pool_b, _ = vp.selective_search(small_photo, num=None, seed=12)
    assert {tuple(b) for b in pool_a} == {tuple(b) for b in pool_b}  # ...of the same boxes


def test_selective_search_modes(small_photo):
    fast, _ = vp.selective_search(small_photo, num=None, mode="fast")
    quality, _ = vp.selective_search(small_photo, num=None, mode="quality")
    assert 0 < len(fast) < len(quality)
    one, _ = vp.selective_search(
        small_photo, num=None, colour_spaces=["lab"], ks=[100], strategies=[("size", "fill")]
    )
    assert 0 < len(one) < len(fast)


def test_selective_search_finds_an_object():
    img = np.full((80, 96, 3), 40, np.uint8)
    img[20:60, 30:70] = (220, 180, 20)
    boxes, _ = vp.selective_search(img, num=None)
    assert [30, 20, 69, 59] in boxes.tolist()


def test_selective_search_degenerate_inputs():
    flat = np.full((40, 50, 3), 128, np.uint8)
    boxes, prio = vp.selective_search(flat)
    assert boxes.tolist() == [[0, 0, 49, 39]] and len(prio) == 1  # only the whole image remains
    tiny, _ = vp.selective_search(np.zeros((16, 16, 3), np.uint8))
    assert tiny.shape == (0, 4)  # every box is narrower than 20 px
    noise = np.random.default_rng(0).integers(0, 256, (24, 30, 3)).astype(np.uint8)
    check_filters(vp.selective_search(noise)[0], 24, 30)
    for bad, match in [
        (np.zeros((15, 40, 3), np.uint8), "at least 16"),
        (np.zeros((40, 40), np.uint8), "shape"),
        (np.zeros((40, 40, 4), np.uint8), "shape"),
        (np.zeros((40, 40, 3), np.float32), "uint8"),
    ]:
        with pytest.raises(ValueError, match=match):
            vp.selective_search(bad)
    img = np.zeros((32, 32, 3), np.uint8)
    for kwargs in (
        {"mode": "best"},
        {"num": -1},
        {"seed": -1},
        {"seed": 2**32},
        {"colour_spaces": ["xyz"]},
        {"strategies": ["colour+shape"]},
        {"ks": []},
        {"sigma": -0.5},
    ):
        with pytest.raises(ValueError):
            vp.selective_search(img, **kwargs)


def test_selective_search_real_photo_gives_hundreds_of_boxes(data_dir):
    path = some_photos(data_dir, 1)[0]
    img = photo(path, 224)
    boxes, _ = vp.selective_search(img, num=500)
    assert 200 <= len(boxes) <= 500
    check_filters(boxes, 224, 224)


def test_docstring_examples():
    failures, _ = doctest.testmod(vp, extraglobs={"np": np})
    assert failures == 0

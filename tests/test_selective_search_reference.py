"""Selective search: compiled (vsum.proposals) vs the NumPy reference
(vsum.reference.selective_search), bit for bit, on random images and a real
photo; the pieces reachable through the public function (random numbers, bin
edges, single colour spaces and similarity terms) and the documented colour
spaces.

Exact equality relies on the compiled core doing the same float32 / float64
operations as the reference, without fused multiply-adds: true for the x86-64
builds (no FMA in the baseline instruction set).  A build for a target with
FMA (aarch64, ``-march=native``) may contract ``ss_features_cpu.cpp`` and
``selective_search_cpu.cpp``, which, unlike ``segmentation_cpu.cpp``, do not
disable contraction.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import platform

import numpy as np
import pytest
from PIL import Image

import vsum.proposals as vp
from vsum.reference import selective_search as ref

from helpers import require_data

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def blobs(seed: int, H: int, W: int) -> np.ndarray:
    """(H, W, 3) uint8: a random colour gradient with a dozen flat discs, plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    img = np.stack([x * rng.uniform(-3, 3), y * rng.uniform(-3, 3), (x + y) * rng.uniform(-2, 2)], axis=-1)
    img += rng.integers(0, 256, 3)
    for _ in range(12):
        cy, cx, r = rng.integers(0, H), rng.integers(0, W), rng.integers(3, 12)
        img[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.integers(0, 256, 3)
    img += rng.normal(0, 10, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def levels(seed: int, H: int, W: int) -> np.ndarray:
    """(H, W, 3) uint8 of 4 x 4 blocks with channel values in {0, 85, 170, 255}: many exact ties."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 4, (H // 4 + 1, W // 4 + 1, 3)) * 85
    return np.kron(blocks, np.ones((4, 4, 1)))[:H, :W].astype(np.uint8)


def noise(seed: int, H: int, W: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3)).astype(np.uint8)


def assert_same(image: np.ndarray, **kwargs):
    """Compiled and reference selective search give identical boxes and priorities."""
    boxes, prio = vp.selective_search(image, **kwargs)
    want_boxes, want_prio = ref.selective_search(image, **kwargs)
    assert want_boxes.dtype == np.int32 and want_boxes.shape == (len(want_prio), 4)
    assert want_prio.dtype == np.float64
    np.testing.assert_array_equal(boxes, want_boxes)
    np.testing.assert_array_equal(prio, want_prio)
    return boxes, prio


# ---------------------------------------------------------------------------
# (a) random images, the two modes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["fast", "quality"])
@pytest.mark.parametrize("seed", range(4))
def test_matches_reference_random(seed, mode):
    rng = np.random.default_rng(100 + seed)
    H, W = int(rng.integers(24, 49)), int(rng.integers(32, 65))
    img = blobs(seed, H, W)
    for num in (None, 50):
        for ranking_seed in (seed, 2**32 - 1 - seed):
            assert_same(img, num=num, seed=ranking_seed, mode=mode)
    # without the size and border filters: (nearly) every box of the pool
    boxes, _ = assert_same(img, num=None, seed=seed, mode=mode, min_side=0, border=0.0)
    assert len(boxes) >= 20


@pytest.mark.parametrize("space", ["hsv", "lab", "rgi", "h", "i"])
@pytest.mark.parametrize("kind", [blobs, levels, noise], ids=["blobs", "levels", "noise"])
def test_matches_reference_one_space_one_term(space, kind):
    """One hierarchy at a time, small k (many regions), each similarity term alone and combined."""
    img = kind(7, 24, 32)
    strategies = [("colour",), ("texture",), ("size",), ("fill",), ("colour", "size"), "colour+texture+size+fill"]
    for i, strategy in enumerate(strategies):
        k, sigma = [(0.0, 0.0), (3.0, 0.8), (2.5, 0.5), (10.0, 0.8), (30.0, 0.0), (1.0, 0.8)][i]
        boxes, _ = assert_same(
            img, num=None, seed=i, colour_spaces=[space], ks=[k], strategies=[strategy], sigma=sigma,
            min_side=0, border=0.0,
        )
        assert len(boxes) >= 3


# ---------------------------------------------------------------------------
# (b) a real photo
# ---------------------------------------------------------------------------


def test_matches_reference_on_photo(data_dir):
    folder = data_dir / "paper-examples"
    paths = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    require_data(bool(paths), f"photos in {folder}")
    with Image.open(paths[0]) as im:
        im = im.convert("RGB")
        im.thumbnail((64, 64), Image.BILINEAR)
        img = np.asarray(im)
    assert max(img.shape[:2]) == 64
    for mode in ("quality", "fast"):
        for num, seed in ((None, 0), (50, 7)):
            boxes, _ = assert_same(img, num=num, seed=seed, mode=mode)
            assert len(boxes) >= 1
        everything, _ = assert_same(img, num=None, seed=3, mode=mode, min_side=0, border=0.0)
        assert len(everything) >= (200 if mode == "quality" else 40)


# ---------------------------------------------------------------------------
# (c) pieces
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 5489, 2**31, 2**32 - 1])
def test_random_numbers_match_std_mt19937(seed):
    """A flat image has one region per hierarchy: its priority is the first u of the C++ stream."""
    flat = np.full((20, 24, 3), 90, np.uint8)
    boxes, prio = vp.selective_search(flat, num=None, seed=seed, colour_spaces=["i"], ks=[50], strategies=["size"])
    assert boxes.tolist() == [[0, 0, 23, 19]]
    assert prio.tolist() == [np.random.RandomState(seed).random_sample()]
    assert_same(flat, num=None, seed=seed, colour_spaces=["i"], ks=[50], strategies=["size"])


def test_reference_uniforms_are_uniform53_of_raw_mt19937():
    """RandomState.random_sample = ((a >> 5) * 2^26 + (b >> 6)) / 2^53 of the raw 32-bit MT19937 draws."""
    raw = np.random.MT19937()
    raw.state = np.random.RandomState(5489).get_state(legacy=False)
    draws = raw.random_raw(10000)
    assert draws[-1] == 4123659995  # the C++ standard's check value of std::mt19937 (default seed 5489)
    raw.state = np.random.RandomState(12345).get_state(legacy=False)
    a, b = raw.random_raw(2000).reshape(-1, 2).T
    u = ((a >> 5).astype(np.float64) * 67108864.0 + (b >> 6).astype(np.float64)) / 9007199254740992.0
    np.testing.assert_array_equal(u, np.random.RandomState(12345).random_sample(1000))


def test_gaussian_taps_equal_c_expf():
    """The reference rounds math.exp to float32; the C++ calls expf: equal for the five taps used."""
    name = ctypes.util.find_library("m")
    if name is None or platform.system() != "Linux":
        pytest.skip("the C math library is not reachable through ctypes here")
    expf = ctypes.CDLL(name).expf
    expf.restype, expf.argtypes = ctypes.c_float, [ctypes.c_float]
    for i in range(5):
        assert np.float32(math.exp(-0.5 * i * i)) == np.float32(expf(-0.5 * i * i))
    g, d = ref.gaussian_derivative_kernels()
    assert g.dtype == d.dtype == np.float32 and g.shape == d.shape == (9,)
    assert abs(float(g.sum()) - 1) < 1e-6 and abs(float((-np.arange(-4, 5) * d).sum()) - 1) < 1e-6


@pytest.mark.parametrize("space", ["hsv", "lab", "rgi", "h", "i"])
@pytest.mark.parametrize("strategy", ["colour", "texture"])
def test_bin_edges_match(space, strategy):
    """Every 8-bit grey level and a sweep of hues as flat columns (k = 0, sigma = 0: one region per
    distinct value): the histograms and so the merge order depend on the bin of every value."""
    x = np.arange(256)
    grey = np.repeat(x[None, :, None], 3, axis=2)
    hue = np.stack([x, (x * 7) % 256, 255 - x], axis=-1)[None]
    img = np.concatenate([np.repeat(grey, 8, axis=0), np.repeat(hue, 8, axis=0)]).astype(np.uint8)
    boxes, _ = assert_same(
        img, num=None, colour_spaces=[space], ks=[0], strategies=[(strategy,)], sigma=0.0, min_side=0, border=0.0
    )
    assert len(boxes) >= 256


def test_colour_spaces_follow_their_definitions():
    """The reference colour spaces against scikit-image (documented scaling to [0, 255])."""
    import skimage.color as skcolor

    rgb = noise(3, 16, 64)
    corners = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [7, 7, 7], [255, 0, 1], [1, 0, 255]]
    rgb[0, : len(corners)] = corners
    hsv = skcolor.rgb2hsv(rgb) * 255.0  # hue in [0, 1) -> degrees * 255/360
    np.testing.assert_allclose(ref.colour_image(rgb, "hsv"), hsv, atol=2e-3 * 255)
    np.testing.assert_allclose(ref.colour_image(rgb, "h")[..., 0], hsv[..., 0], atol=2e-3 * 255)
    lab = skcolor.rgb2lab(rgb)
    want = np.clip(np.stack([lab[..., 0] * 2.55, lab[..., 1] + 128, lab[..., 2] + 128], axis=-1), 0, 255)
    np.testing.assert_allclose(ref.colour_image(rgb, "lab"), want, atol=0.05)
    f = rgb.astype(np.float64)
    s = f.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rg = np.where(s[..., None] > 0, 255 * f[..., :2] / s[..., None], 85.0)
    np.testing.assert_allclose(ref.colour_image(rgb, "rgi"), np.dstack([rg, s / 3]), rtol=1e-6, atol=1e-4)
    intensity = f @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(ref.colour_image(rgb, "i")[..., 0], intensity, rtol=1e-6, atol=1e-4)
    for space in ref.COLOUR_SPACES:
        img = ref.colour_image(rgb, space)
        assert img.dtype == np.float32 and img.shape == (16, 64, ref.COLOUR_SPACES[space])
        assert img.min() >= 0 and img.max() <= 255


def test_region_features_are_normalised():
    img = blobs(5, 30, 40)
    pixels = ref.colour_image(img, "lab")
    labels = np.arange(30 * 40).reshape(30, 40) // 97  # bands, not a segmentation: any labelling works
    f = ref.region_features(pixels, labels)
    assert f.n == labels.max() + 1 and f.size.sum() == 30 * 40
    assert f.colour.shape == (f.n, 75) and f.texture.shape == (f.n, 240)
    np.testing.assert_allclose(f.colour.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(f.texture.sum(axis=1), 1, rtol=1e-5)
    assert f.neighbours == sorted(set(f.neighbours)) and all(a < b for a, b in f.neighbours)
    assert (0, 1) in f.neighbours and (0, 2) not in f.neighbours


def test_reference_rejects_bad_input():
    for bad in (np.zeros((15, 40, 3), np.uint8), np.zeros((40, 40), np.uint8), np.zeros((40, 40, 3), np.float32)):
        with pytest.raises(ValueError):
            ref.selective_search(bad)
    img = np.zeros((32, 32, 3), np.uint8)
    for kwargs in ({"mode": "best"}, {"colour_spaces": ["xyz"]}, {"strategies": ["colour+shape"]}, {"ks": []}):
        with pytest.raises(ValueError):
            ref.selective_search(img, **kwargs)

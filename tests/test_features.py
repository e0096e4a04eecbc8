"""Whitening statistics and the whitened appearance score (vsum.features)."""

from __future__ import annotations

import numpy as np
import pytest

from vsum import features as vf

from helpers import require_data

K = 7


@pytest.fixture(scope="module")
def stats():
    return vf.load_stats()


@pytest.fixture(scope="module")
def model():
    return vf.whitening_model()


def random_desc(rng, n):
    """Plausible descriptors: non-negative, HOG-like magnitudes."""
    return (rng.random((n, vf.DESC_LENGTH)) * 0.2).astype(np.float32)


def test_shipped_stats_are_installed_with_the_package(stats):
    import vsum

    assert vf.STATS_PATH.is_file()
    assert vf.STATS_PATH.parent.parent == vf.STATS_PATH.parents[1]
    assert vf.STATS_PATH.resolve().is_relative_to(vsum.__file__.rsplit("/", 1)[0])
    assert stats["mu"].shape == (31,) and stats["gamma"].shape == (15, 15, 31, 31)
    assert stats["max_offset"] == K
    assert len(stats["images"]) >= 1000 and stats["scales"].size >= 1 and str(stats["created"])
    assert (stats["mu"] > 0).all()


def test_stats_are_stationary_and_positive(stats):
    g = stats["gamma"]
    # gamma(-d) = gamma(d)^T
    np.testing.assert_allclose(g[::-1, ::-1], g.transpose(0, 1, 3, 2), atol=1e-7)
    assert np.linalg.eigvalsh(g[K, K]).min() > -1e-6
    # correlation decays with distance
    assert np.trace(g[K, K]) > np.abs(np.trace(g[K, K + 7]))


def test_model_sigma_layout(stats, model):
    n = vf.DESC_LENGTH
    assert model.sigma.shape == (n, n) and model.chol.shape == (n, n) and model.mu.shape == (n,)
    np.testing.assert_array_equal(model.sigma, model.sigma.T)
    # block (cell (0,0), cell (1,2)) = gamma(dy=1, dx=2) (symmetrised)
    p, q = 0, 1 * 8 + 2
    block = model.sigma[p * 31 : (p + 1) * 31, q * 31 : (q + 1) * 31]
    g = stats["gamma"] * (stats["counts"] / stats["counts"][K, K])[:, :, None, None]  # biased estimate
    np.testing.assert_allclose(block, 0.5 * (g[K + 1, K + 2] + g[K - 1, K - 2].T), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(model.mu[:31], stats["mu"])
    np.testing.assert_array_equal(model.mu[31 * 5 : 31 * 6], stats["mu"])
    assert model.ridge == pytest.approx(0.01 * np.mean(np.diag(model.sigma - model.ridge * np.eye(n))))


def test_whiten_solves_the_system(model):
    rng = np.random.default_rng(0)
    h = random_desc(rng, 5)
    w, bias = vf.whiten(h)
    assert w.shape == (5, vf.DESC_LENGTH) and w.dtype == np.float32
    assert bias.shape == (5,) and bias.dtype == np.float32
    lhs = model.sigma @ w.astype(np.float64).T
    rhs = (h.astype(np.float64) - model.mu).T
    assert np.abs(lhs - rhs).max() <= 1e-4 * np.abs(rhs).max()
    np.testing.assert_allclose(bias, -(w.astype(np.float64) @ model.mu), rtol=1e-4, atol=1e-3)


def test_appearance_matches_direct_formula(model):
    rng = np.random.default_rng(1)
    a = random_desc(rng, 7)
    # h_b = 2 mu - h_a gives w_a . (h_b - mu) = -w_a . (h_a - mu) < 0: clipped to 0.
    b = np.vstack([random_desc(rng, 6), (2 * model.mu - a[:3]).astype(np.float32)])
    w, bias = vf.whiten(a)
    direct = np.empty((7, 9))
    for i in range(7):
        for j in range(9):
            direct[i, j] = max(0.0, float(np.dot(w[i].astype(np.float64), b[j].astype(np.float64))) + float(bias[i]))
    s = vf.appearance(a, b)
    assert s.shape == (7, 9) and s.dtype == np.float32
    assert (s >= 0).all()
    scale = np.abs(direct).max()
    assert np.abs(s - direct).max() <= 1e-4 * scale
    assert (direct > 0).any() and (direct == 0).any()  # both branches of the max exercised


def test_appearance_empty_inputs():
    d = random_desc(np.random.default_rng(2), 3)
    empty = np.zeros((0, vf.DESC_LENGTH), np.float32)
    assert vf.appearance(empty, d).shape == (0, 3)
    assert vf.appearance(d, empty).shape == (3, 0)
    assert vf.appearance(empty, empty).shape == (0, 0)
    w, bias = vf.whiten(empty)
    assert w.shape == (0, vf.DESC_LENGTH) and bias.shape == (0,)


def test_bad_descriptors_and_ridge_are_rejected():
    d = random_desc(np.random.default_rng(3), 2)
    with pytest.raises(ValueError, match="1984"):
        vf.appearance(d[:, :100], d)
    with pytest.raises(ValueError, match="1984"):
        vf.whiten(d[0])
    bad = d.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        vf.appearance(d, bad)
    with pytest.raises(ValueError, match="ridge"):
        vf.whiten(d, ridge=0)
    with pytest.raises(FileNotFoundError):
        vf.whiten(d, stats_path="/nonexistent/hog_stats.npz")


def test_ridge_parameter_changes_the_model():
    d = random_desc(np.random.default_rng(4), 2)
    s1 = vf.appearance(d, d)
    s2 = vf.appearance(d, d, ridge=0.1)
    assert not np.allclose(s1, s2)
    assert vf.whitening_model(0.1).relative_ridge == 0.1
    assert vf.whitening_model() is vf.whitening_model()  # cached


def test_appearance_torch_matches_numpy():
    import torch

    rng = np.random.default_rng(5)
    a, b = random_desc(rng, 6), random_desc(rng, 4)
    expected = vf.appearance(a, b)
    got = vf.appearance(torch.from_numpy(a), torch.from_numpy(b))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32 and tuple(got.shape) == (6, 4)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))
    mixed = vf.appearance(a, torch.from_numpy(b))  # one tensor is enough
    assert isinstance(mixed, torch.Tensor)
    assert tuple(vf.appearance(torch.zeros(0, vf.DESC_LENGTH), torch.from_numpy(b)).shape) == (0, 4)
    if torch.cuda.is_available():
        on_gpu = vf.appearance(torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda())
        assert on_gpu.is_cuda
        np.testing.assert_allclose(on_gpu.cpu().numpy(), expected, rtol=1e-3, atol=1e-3 * float(np.abs(expected).max()))


def test_descriptor_scores_itself_highest_on_photos(data_dir):
    from PIL import Image

    paths = sorted((data_dir / "paper-examples").glob("*.jpg"))[:2]
    require_data(bool(paths), f"photos in {data_dir / 'paper-examples'}")
    rng = np.random.default_rng(6)
    for path in paths:
        with Image.open(path) as img:
            image = np.asarray(img.convert("RGB"))
        H, W = image.shape[:2]
        x1, y1 = rng.integers(0, W - 40, 30), rng.integers(0, H - 40, 30)
        side = rng.integers(32, 160, (30, 2))
        boxes = np.stack([x1, y1, np.minimum(x1 + side[:, 0], W - 1), np.minimum(y1 + side[:, 1], H - 1)], 1)
        desc = vf.describe(image, boxes)
        s = vf.appearance(desc, desc)
        diag = np.diag(s)
        off = s[~np.eye(len(s), dtype=bool)].reshape(len(s), -1)
        assert (diag > 0).all()
        assert np.mean(diag > off.max(axis=1)) >= 0.9
        assert np.median(diag) > 5 * np.median(off.max(axis=1))

"""SD filter reference (vsum.sd_filter): hand-checked cases, invariants, edge preservation, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from vsum.sd_filter import sd_fill, sd_filter


def step_scene(h=16, w=20, edge=10):
    """Guide with a strong vertical edge at column ``edge``; field +5 left / -5 right of it."""
    guide = np.zeros((h, w), np.uint8)
    guide[:, edge:] = 255
    f = np.where(np.arange(w)[None, :] < edge, 5.0, -5.0) * np.ones((h, 1))
    return guide, f


def test_one_by_three_hole_gets_mean_of_neighbours():
    # Uniform guide, one step from a constant u^0: all edge weights equal (w = (1 + 1e-5)^2), so the
    # hole's equation is lam * w * (2 u1 - u0 - u2) = 0 and, by symmetry, u1 = 2 and
    # u0 = (1 + 2 lam w) / (1 + lam w) (each unordered neighbour pair counted once).
    lam = 20.0
    u = sd_filter(np.array([[1.0, np.nan, 3.0]]), np.zeros((1, 3)), np.array([[1.0, 0.0, 1.0]]), lam=lam, iterations=1)
    assert u.dtype == np.float32 and u.shape == (1, 3)
    lw = lam * (1 + 1e-5) ** 2
    np.testing.assert_allclose(u[0], [(1 + 2 * lw) / (1 + lw), 2.0, (3 + 2 * lw) / (1 + lw)], rtol=1e-6)
    assert u[0, 1] == pytest.approx(0.5 * (u[0, 0] + u[0, 2]), abs=1e-6)


def test_range_scale_normalises_squared_differences_over_edges():
    # Guide 0, 10, 30: squared differences 100 and 400, min-max normalised to 0 and 1, so the two edge
    # weights are (1 + 1e-5) and (exp(-sigma_g) + 1e-5) (times (1 + 1e-5) from the constant u^0).
    lam, sg = 2.0, 3.0
    f, c = np.array([1.0, 4.0, -2.0]), np.array([1.0, 0.5, 2.0])
    w01, w12 = [(x + 1e-5) * (1 + 1e-5) * lam for x in (1.0, np.exp(-sg))]
    A = np.diag(c) + np.array([[w01, -w01, 0], [-w01, w01 + w12, -w12], [0, -w12, w12]])
    want = np.linalg.solve(A, c * f)
    got = sd_filter(f[None], np.array([[0.0, 10.0, 30.0]]), c[None], lam=lam, sigma_g=sg, iterations=1)
    np.testing.assert_allclose(got[0], want, rtol=1e-6)
    # Units of the guide do not matter in this mode.
    np.testing.assert_array_equal(got, sd_filter(f[None], np.array([[0.0, 1.0, 3.0]]), c[None], lam=lam, sigma_g=sg, iterations=1))


@pytest.mark.parametrize("scale", ["range", "absolute"])
def test_constant_field_stays_constant(scale):
    rng = np.random.default_rng(0)
    guide = rng.integers(0, 256, (12, 15, 3)).astype(np.uint8)
    for trial in range(3):
        weight = (rng.random((12, 15)) < 0.3 * (trial + 1)) * rng.uniform(0.1, 2.0, (12, 15))
        weight[0, 0] = 1.0
        f = np.full((12, 15, 2), [3.25, -7.5])
        u = sd_filter(f, guide, weight, scale=scale, iterations=3)
        np.testing.assert_allclose(u, f, atol=1e-5)


def test_holes_are_filled_with_finite_values():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(14, 18))
    weight = (rng.random((14, 18)) > 0.6).astype(float)
    f[weight == 0] = np.nan
    f[2:12, 3:15] = np.nan
    weight[2:12, 3:15] = 0
    u = sd_filter(f, rng.integers(0, 256, (14, 18)), weight)
    assert np.isfinite(u).all()
    assert u.min() >= np.nanmin(f) - 1e-4 and u.max() <= np.nanmax(f) + 1e-4  # a weighted average


@pytest.mark.parametrize("scale", ["range", "absolute"])
@pytest.mark.parametrize("colour", [False, True])
def test_edge_preservation(scale, colour):
    guide, f = step_scene()
    if colour:
        guide = np.dstack([guide, guide // 2, 255 - guide])
    weight = np.ones(f.shape)
    weight[4:12, 5:15] = 0  # hole straddling the edge
    hole_f = f.copy()
    hole_f[weight == 0] = np.nan
    u = sd_filter(hole_f, guide, weight, scale=scale)
    left, right = u[4:12, 5:10], u[4:12, 10:15]
    assert left.min() > 4.9 and right.max() < -4.9
    # Without static guidance the hole is blurred across the edge.
    blurred = sd_filter(hole_f, np.zeros(f.shape), weight, sigma_u=0.0)
    assert blurred[4:12, 9].max() < 4.0


def test_tiny_lambda_reproduces_weighted_pixels():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(10, 12, 2))
    weight = (rng.random((10, 12)) > 0.4) * rng.uniform(0.5, 1.5, (10, 12))
    u = sd_filter(f, rng.integers(0, 256, (10, 12, 3)), weight, lam=1e-9)
    on = weight > 0
    np.testing.assert_allclose(u[on], f[on], atol=1e-5)
    assert np.isfinite(u).all()


def test_channels_share_one_matrix_of_joint_weights():
    # Both channels are filtered by one system: a channel that is a scaled copy stays a scaled copy.
    rng = np.random.default_rng(3)
    a = rng.normal(size=(9, 11))
    weight = (rng.random((9, 11)) > 0.5).astype(float)
    guide = rng.integers(0, 256, (9, 11))
    u = sd_filter(np.dstack([a, -2.0 * a]), guide, weight)
    np.testing.assert_allclose(u[:, :, 1], -2.0 * u[:, :, 0], rtol=1e-5, atol=1e-6)


def sd_energy(u, f, c, guide, lam, sigma_g, sigma_u):
    """The SD energy with absolute Gaussians and the code's 1e-5 floor (psi concave in x^2)."""
    mu, nu = 1 / (2 * sigma_g**2), 1 / (2 * sigma_u**2)
    e = np.sum(c[..., None] * (u - f) ** 2)
    for axis in (0, 1):
        dg = np.sum(np.diff(guide, axis=axis) ** 2, axis=2)
        du = np.sum(np.diff(u, axis=axis) ** 2, axis=2)
        psi = (1 - np.exp(-nu * du)) / nu + 1e-5 * du
        e += lam * np.sum((np.exp(-mu * dg) + 1e-5) * psi)
    return e


def test_majorize_minimize_never_increases_the_energy():
    rng = np.random.default_rng(4)
    guide, f = step_scene(10, 12, 6)
    guide = guide[..., None].astype(float)
    f = (f + rng.normal(scale=1.0, size=f.shape))[..., None]
    c = (rng.random(f.shape[:2]) > 0.3).astype(float)
    kw = dict(lam=5.0, sigma_g=30.0, sigma_u=2.0, scale="absolute")
    energies = [
        sd_energy(sd_filter(f, guide, c, iterations=k, **kw).astype(np.float64), f, c, guide, 5.0, 30.0, 2.0)
        for k in (1, 2, 3, 5)
    ]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(energies, energies[1:]))


def test_init_input_and_all_zero_weight():
    guide, f = step_scene(6, 8, 4)
    u = sd_filter(f, guide, np.ones(f.shape), init="input")
    assert np.isfinite(u).all()
    np.testing.assert_array_equal(sd_filter(f, guide, np.zeros(f.shape)), np.zeros(f.shape, np.float32))
    vx, vy = sd_fill(f, f, np.zeros(f.shape, bool), guide)
    assert not vx.any() and not vy.any()


def test_sd_fill_matches_stacked_filter():
    rng = np.random.default_rng(5)
    vx, vy = rng.normal(size=(2, 8, 9))
    valid = rng.random((8, 9)) > 0.5
    guide = rng.integers(0, 256, (8, 9, 3)).astype(np.uint8)
    gx, gy = sd_fill(vx, vy, valid, guide, iterations=1)
    assert gx.dtype == gy.dtype == np.float32 and gx.shape == gy.shape == (8, 9)
    u = sd_filter(np.dstack([vx, vy]), guide, valid.astype(float), iterations=1)
    np.testing.assert_array_equal(gx, u[:, :, 0])
    np.testing.assert_array_equal(gy, u[:, :, 1])


def test_single_pixel():
    np.testing.assert_allclose(sd_filter(np.array([[2.5]]), np.zeros((1, 1)), np.ones((1, 1))), [[2.5]])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(f=np.zeros(5)), "f must have shape"),
        (dict(f=np.zeros((0, 4))), "must not be empty"),
        (dict(f=np.array([["a"]])), "numeric"),
        (dict(weight=np.ones((4, 6))), "weight must have shape"),
        (dict(weight=-np.ones((4, 5))), ">= 0"),
        (dict(weight=np.full((4, 5), np.nan)), "weight must be finite"),
        (dict(guide=np.zeros((5, 4))), "guide must have shape"),
        (dict(guide=np.full((4, 5), np.inf)), "guide must be finite"),
        (dict(f=np.full((4, 5), np.nan)), "f must be finite wherever weight > 0"),
        (dict(lam=0.0), "lam must be finite and > 0"),
        (dict(lam=np.nan), "lam must be finite"),
        (dict(sigma_g=-1.0), "sigma_g"),
        (dict(sigma_u=0.0, scale="absolute"), "sigma_u"),
        (dict(iterations=0), "iterations"),
        (dict(iterations=1.5), "iterations"),
        (dict(scale="log"), "scale must be one of"),
        (dict(init="random"), "init must be one of"),
    ],
)
def test_bad_input(kwargs, match):
    args = dict(f=np.zeros((4, 5)), guide=np.zeros((4, 5)), weight=np.ones((4, 5)))
    params = {k: kwargs.pop(k) for k in list(kwargs) if k not in args}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sd_filter(args["f"], args["guide"], args["weight"], **params)


def test_sd_fill_bad_input():
    with pytest.raises(ValueError, match="vx and vy"):
        sd_fill(np.zeros((3, 4)), np.zeros((4, 3)), np.ones((3, 4), bool), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="valid must have shape"):
        sd_fill(np.zeros((3, 4)), np.zeros((3, 4)), np.ones((3, 5), bool), np.zeros((3, 4)))

"""Keypoint PCK evaluator (vsum.evaluate, `vsum eval-flow`): by-hand values, synthetic pairs, dataset errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vsum import VsumError
from vsum import evaluate as ev
from vsum.cli import main
from vsum.flow import transfer_points


@pytest.fixture(scope="module")
def photo(data_dir):
    import cv2

    from vsum.io import read_image

    rgb = read_image(data_dir / "keypoints" / "willow-dev" / "car_G" / "Cars_006a.png").rgb
    return np.ascontiguousarray(cv2.resize(rgb, (160, 108), interpolation=cv2.INTER_AREA))


def test_pair_pck_by_hand():
    target = np.array([[0, 0], [100, 0], [100, 50], [0, 50]], float)  # bbox 100 x 50 -> size 100
    pred = target + [[4, 0], [0, 9], [-15, 0], [0, 30]]  # errors 4, 9, 15, 30
    pck, n = ev.pair_pck(pred, target, (0.05, 0.1, 0.2))
    assert n == 4
    np.testing.assert_allclose(pck, [1 / 4, 2 / 4, 3 / 4])
    pck, _ = ev.pair_pck(target + [[5, 0], [0, 0], [0, 0], [0, 0]], target, (0.05,))
    assert pck[0] == 1.0  # within means <= the threshold


def test_pair_pck_skips_invisible_points():
    target = np.array([[0, 0], [100, 0], [np.nan, np.nan], [50, 50]], float)
    pred = np.array([[0, 0], [np.nan, np.nan], [10, 10], [90, 90]], float)
    pck, n = ev.pair_pck(pred, target, (0.1,))
    assert n == 2  # point 1 not visible in A, point 2 not in B
    assert pck[0] == 0.5
    pck, n = ev.pair_pck(np.full((2, 2), np.nan), np.zeros((2, 2)), (0.1,))
    assert n == 0 and np.isnan(pck).all()
    with pytest.raises(ValueError, match="same shape"):
        ev.pair_pck(np.zeros((3, 2)), np.zeros((2, 2)))


@pytest.mark.parametrize("scale, shift", [(0.8, (12.0, 6.0)), (1.2, (-30.0, -10.0)), (1.0, (7.0, -3.0))])
def test_synthetic_pair_perfect_flow_gives_pck_one(photo, scale, shift):
    pair = ev.synthetic_pair(photo, scale, shift, num_points=12, seed=3)
    np.testing.assert_allclose(pair.points_b, pair.points_a * scale + shift)
    h, w = photo.shape[:2]
    assert (pair.points_b >= 0).all() and (pair.points_b <= [w - 1, h - 1]).all()
    moved = transfer_points(pair.points_a, pair.vx, pair.vy)
    np.testing.assert_allclose(moved, pair.points_b, atol=1e-3)
    pck, n = ev.pair_pck(moved, pair.points_b)
    assert n == 12 and (pck == 1.0).all()
    # B really is A moved: the pixel at a keypoint of A is (about) the pixel at its image in B
    ia = photo[np.rint(pair.points_a[:, 1]).astype(int), np.rint(pair.points_a[:, 0]).astype(int)].astype(float)
    ib = pair.image_b[np.rint(pair.points_b[:, 1]).astype(int), np.rint(pair.points_b[:, 0]).astype(int)].astype(float)
    assert np.median(np.abs(ia - ib)) < 40


def test_synthetic_pair_identity_flow_by_hand(photo):
    points = np.array([[20, 20], [120, 20], [70, 60], [20, 60]], float)  # B's bbox: 100 x 40 -> size 100
    pair = ev.synthetic_pair(photo, 1.0, (8.0, 0.0), points_a=points)
    zero = np.zeros(photo.shape[:2], np.float32)
    moved = transfer_points(pair.points_a, zero, zero)  # identity flow: every error is exactly 8 px
    pck, n = ev.pair_pck(moved, pair.points_b, (0.05, 0.1, 0.2))
    assert n == 4
    np.testing.assert_array_equal(pck, [0.0, 1.0, 1.0])  # 8 > 5, 8 <= 10, 8 <= 20
    pair = ev.synthetic_pair(photo, 0.5, (0.0, 0.0), points_a=points)  # errors 0.5 * |p|
    pck, _ = ev.pair_pck(transfer_points(points, zero, zero), pair.points_b, (0.2,))
    size = 50.0  # B's keypoints span 10..60 in x, 10..30 in y
    want = np.mean(0.5 * np.hypot(*points.T) <= 0.2 * size)
    assert pck[0] == want == 0.0


def _exact_flow_fn(transforms):
    """flow_fn giving the exact flow between images of a synthetic class (identified by their pixels)."""
    def flow(a, b, method):
        ta, tb = transforms[a.rgb.tobytes()], transforms[b.rgb.tobytes()]
        (sa, (txa, tya)), (sb, (txb, tyb)) = ta, tb
        h, w = a.rgb.shape[:2]
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
        # p_b = sb * p_orig + tb, p_a = sa * p_orig + ta
        return ((sb / sa * (xs - txa) + txb - xs).astype(np.float32),
                (sb / sa * (ys - tya) + tyb - ys).astype(np.float32))
    return flow


def test_evaluate_flow_on_synthetic_dataset(photo, tmp_path):
    transforms = ((0.85, (10.0, 5.0)), (1.0, (-12.0, 3.0)))
    root = ev.write_synthetic_dataset(tmp_path / "syn", photo, transforms, num_points=8)
    classes = ev.load_keypoint_dataset(root)
    assert [c.name for c in classes] == ["synthetic"] and classes[0].points.shape == (3, 8, 2)
    from vsum.io import read_image

    table = {read_image(p).rgb.tobytes(): t for p, t in zip(classes[0].paths, [(1.0, (0.0, 0.0)), *transforms])}
    config = ev.FlowEvalConfig(methods=("lom",), num_proposals=50)
    result = ev.evaluate_flow(root, config, flow_fn=_exact_flow_fn(table))
    entry = result["classes"][0]
    assert entry["pairs"] == 6 and entry["methods"]["lom"]["keypoints_counted"] == 48
    assert all(v == pytest.approx(1.0) for v in result["mean"]["lom"].values())
    zero = lambda a, b, m: (np.zeros(a.rgb.shape[:2], np.float32),) * 2  # noqa: E731
    result = ev.evaluate_flow(root, config, flow_fn=zero)
    assert result["mean"]["lom"]["0.05"] < 0.5  # shifts of 10-20 px vs a threshold of about 7 px


def test_cli_eval_flow_end_to_end(photo, tmp_path, capsys):
    root = ev.write_synthetic_dataset(tmp_path / "syn", photo, ((1.0, (-10.0, 4.0)),), num_points=10)
    out = tmp_path / "flow.json"
    assert main(["eval-flow", str(root), "--method", "lom,nam", "--proposals", "200", "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "| synthetic | LOM |" in printed and "Mean PCK@0.1" in printed
    result = json.loads(out.read_text())
    assert set(result["mean"]) == {"lom", "nam"}
    for method in ("lom", "nam"):
        values = result["mean"][method]
        assert 0.0 <= values["0.05"] <= values["0.1"] <= values["0.2"] <= 1.0
    # a pure 10-pixel shift of the same photo: proposals and descriptors match almost exactly
    assert result["mean"]["lom"]["0.2"] >= 0.8


def _write_class(folder, table, images=("a.png", "b.png")):
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for name in images:
        cv2.imwrite(str(folder / name), np.full((40, 40, 3), 128, np.uint8))
    if isinstance(table, bytes):
        (folder / "keypoints.json").write_bytes(table)
    else:
        (folder / "keypoints.json").write_text(table if isinstance(table, str) else json.dumps(table))


@pytest.mark.parametrize("table, message", [
    ("{not json", "not valid JSON"),
    ({}, "non-empty mapping"),
    ({"a.png": [[1, 2]], "b.png": [[1, 2], [3, 4]]}, "same number of keypoints"),
    ({"a.png": [[1, 2]], "missing.png": [[1, 2]]}, "not found"),
    ({"a.png": [[1, "x"]], "b.png": [[1, 2]]}, "must be numbers"),
    ({"a.png": [[1, 2, 3]], "b.png": [[1, 2]]}, r"\[x, y\] or null"),
    ({"a.png": [[1, float("nan")]], "b.png": [[1, 2]]}, "finite"),
    (b'{"a.png": [[1, 2]], "b.png": [[1, 2]], "caf\xe9": null}', "not UTF-8 text"),  # Latin-1, not UTF-8
])
def test_bad_datasets_give_clear_errors(tmp_path, table, message, capsys):
    _write_class(tmp_path / "ds" / "cls", table)
    with pytest.raises(VsumError, match=message):
        ev.load_keypoint_dataset(tmp_path / "ds")
    assert main(["eval-flow", str(tmp_path / "ds"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vsum: error:") and err.count("\n") == 1


def test_dataset_layout_errors(tmp_path):
    with pytest.raises(VsumError, match="not found"):
        ev.load_keypoint_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VsumError, match="no class folder"):
        ev.load_keypoint_dataset(tmp_path / "empty")
    _write_class(tmp_path / "one", {"a.png": [[1, 2], None], "b.png": [None, [3, 4]]})
    (cls,) = ev.load_keypoint_dataset(tmp_path / "one")  # a class folder itself is accepted
    assert np.isnan(cls.points[0, 1]).all() and np.isnan(cls.points[1, 0]).all()


def test_config_validation():
    with pytest.raises(VsumError, match="methods"):
        ev.FlowEvalConfig(methods=("sift",))
    with pytest.raises(VsumError, match="alphas"):
        ev.FlowEvalConfig(alphas=(0.0,))
    assert ev.FlowEvalConfig(methods=("LOM", "nam", "lom")).methods == ("lom", "nam")


def _strict_json(text: str):
    """json.loads that rejects NaN and Infinity (they are not JSON; other parsers refuse them)."""
    def refuse(token):
        raise ValueError(f"{token} in JSON output")
    return json.loads(text, parse_constant=refuse)


def test_eval_flow_json_never_holds_nan(tmp_path, capsys):
    """A class with no countable pair had PCK NaN, written as a bare NaN token: now null, and n/a in the table."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "ds" / "cls"
    folder.mkdir(parents=True)
    import cv2

    for name in ("a.png", "b.png"):
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    (folder / "keypoints.json").write_text(json.dumps({"a.png": [[5, 5], None], "b.png": [None, [9, 9]]}))
    out = tmp_path / "r.json"
    assert main(["eval-flow", str(tmp_path / "ds"), "--proposals", "20", "--out", str(out), "-q"]) == 0
    result = _strict_json(out.read_text())
    assert result["classes"][0]["methods"]["lom"]["pck"] == {"0.05": None, "0.1": None, "0.2": None}
    assert result["mean"]["lom"] == {"0.05": None, "0.1": None, "0.2": None}
    assert "n/a" in capsys.readouterr().out


def test_max_side_has_a_default_that_leaves_small_images_alone(tmp_path, capsys):
    assert ev.FlowEvalConfig().max_side == ev.DEFAULT_MAX_SIDE == 1024
    assert ev.FlowEvalConfig(max_side=None).max_side is None
    from vsum.cli import build_parser

    assert build_parser().parse_args(["eval-flow", "ds"]).max_side == 1024
    assert build_parser().parse_args(["eval-flow", "ds", "--max-side", "0"]).max_side == 0  # 0: full resolution
    import cv2

    folder = tmp_path / "ds" / "cls"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    cv2.imwrite(str(folder / "a.png"), rng.integers(0, 256, (60, 1100, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "b.png"), rng.integers(0, 256, (60, 300, 3), dtype=np.uint8))
    (folder / "keypoints.json").write_text(json.dumps({"a.png": [[1000, 10]], "b.png": [[100, 10]]}))
    seen = {}

    def flow_fn(a, b, method):
        seen[a.rgb.shape] = a.scale
        return (np.zeros(a.rgb.shape[:2], np.float32),) * 2

    ev.evaluate_flow(tmp_path / "ds", ev.FlowEvalConfig(num_proposals=10), flow_fn=flow_fn)
    assert seen == {(56, 1024, 3): pytest.approx(1024 / 1100), (60, 300, 3): 1.0}

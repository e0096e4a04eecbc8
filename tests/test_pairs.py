"""All-pairs driver (vsum.pairs.all_pairs) vs the naive per-pair loop; top-k merge; bad input."""

from __future__ import annotations

import numpy as np
import pytest

import vsum.boxes
import vsum.features as ft
import vsum.flow as vf
import vsum.threads
from vsum._compiled import _core
from vsum.pairs import AllPairsResult, PairsConfig, all_pairs, match_class, valid_rows

from helpers import random_boxes, require_data


def random_inputs(seed, sizes):
    rng = np.random.default_rng(seed)
    boxes = [random_boxes(rng, n, 128, 128, min_side=8, max_side=64) for n in sizes]
    descs = [(rng.random((n, ft.DESC_LENGTH)) * 0.3).astype(np.float32) for n in sizes]
    return boxes, descs


def naive(boxes, descs, method="lom", image_shapes=None):
    out = {}
    for i in range(len(boxes)):
        for j in range(i, len(boxes)):
            shape = None
            if image_shapes is not None:
                shape = tuple(max(a, b) for a, b in zip(image_shapes[i], image_shapes[j]))
            out[(i, j)] = vf.match(boxes[i], boxes[j], ft.appearance(descs[i], descs[j]), method, image_shape=shape)
    return out


def expected_topk(full, sizes, i, rows, k):
    """Top-k of the concatenated rows against every other image, by a stable full sort."""
    parts, images, index = [], [], []
    for j in range(len(sizes)):
        if j == i:
            continue
        m = full[(i, j)] if i < j else full[(j, i)].T
        parts.append(m[rows])
        images.append(np.full(sizes[j], j))
        index.append(np.arange(sizes[j]))
    if not parts:
        return np.zeros((len(rows), 0), np.float32), np.zeros((len(rows), 0), int), np.zeros((len(rows), 0), int)
    s = np.concatenate(parts, axis=1)
    im, ix = np.concatenate(images), np.concatenate(index)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, order, 1), im[order], ix[order]


def assert_matches_naive(res, full, sizes, k):
    for key, conf in full.items():
        i, j = key
        np.testing.assert_array_equal(res.blocks[key], conf[np.ix_(res.rows[i], res.rows[j])])
        assert res.blocks[key].dtype == np.float32
    for i in range(len(sizes)):
        s, im, ix = expected_topk(full, sizes, i, res.rows[i], k)
        m = s.shape[1]
        assert res.topk_scores[i].shape == (len(res.rows[i]), k)
        assert res.topk_scores[i].dtype == np.float32 and res.topk_index[i].dtype == np.int32
        np.testing.assert_array_equal(res.topk_scores[i][:, :m], s)
        np.testing.assert_array_equal(res.topk_image[i][:, :m], im)
        np.testing.assert_array_equal(res.topk_index[i][:, :m], ix)
        assert (res.topk_scores[i][:, m:] == 0).all()
        assert (res.topk_image[i][:, m:] == -1).all() and (res.topk_index[i][:, m:] == -1).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_random_matches_naive_loop(seed):
    sizes = [40, 0, 55, 30, 47]
    boxes, descs = random_inputs(seed, sizes)
    rng = np.random.default_rng(seed + 10)
    rows = [np.sort(rng.choice(n, n // 2, replace=False)) for n in sizes]
    rows[3] = np.ones(30, bool)  # a boolean mask selects all
    res = all_pairs(boxes, descs, rows=rows, topk=30)
    assert res.pairs == 15 and res.n_images == 5 and res.method == "lom"
    assert res.seconds > 0 and set(res.timings) >= {"whiten", "appearance", "match", "topk"}
    assert_matches_naive(res, naive(boxes, descs), sizes, 30)


def test_topk_larger_than_candidates_is_padded():
    sizes = [12, 9, 7]
    boxes, descs = random_inputs(2, sizes)
    res = all_pairs(boxes, descs, topk=25)  # image 0 has 16 candidates, 1 has 19, 2 has 21
    assert_matches_naive(res, naive(boxes, descs), sizes, 25)
    assert (res.topk_index[0][:, 16:] == -1).all() and (res.topk_index[0][:, :16] >= 0).all()


@pytest.mark.parametrize("method", ["nam", "phm"])
def test_other_methods_and_image_shapes(method):
    sizes = [20, 25, 18]
    boxes, descs = random_inputs(3, sizes)
    shapes = [(128, 140), (150, 128), (128, 128)]
    res = all_pairs(boxes, descs, method=method, image_shapes=shapes, topk=10)
    assert_matches_naive(res, naive(boxes, descs, method, shapes), sizes, 10)


def test_real_photos_match_naive_loop(data_dir):
    import cv2

    from vsum.proposals import selective_search

    paths = sorted((data_dir / "albatross").glob("*.jpg"))[:3]
    require_data(len(paths) == 3, f"3 photos in {data_dir / 'albatross'}")
    boxes, descs = [], []
    for path in paths:
        bgr = cv2.imread(str(path))
        s = 112 / max(bgr.shape[:2])
        rgb = np.ascontiguousarray(cv2.resize(bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)[:, :, ::-1])
        b, _ = selective_search(rgb, num=80, mode="fast")
        boxes.append(b)
        descs.append(ft.describe(rgb, b))
    sizes = [len(b) for b in boxes]
    rows = [np.arange(0, n, 3) for n in sizes]
    res = all_pairs(boxes, descs, rows=rows, topk=50)
    assert_matches_naive(res, naive(boxes, descs), sizes, 50)
    assert (res.topk_scores[0][:, 0] > 0).any()


def test_similarity_on_pair_and_diagonal():
    sizes = [10, 14, 8]
    boxes, descs = random_inputs(4, sizes)
    rows = [np.array([1, 3, 5]), np.arange(14), np.array([7, 0])]
    seen = []
    res = all_pairs(boxes, descs, rows=rows, topk=5, on_pair=lambda i, j, c: seen.append((i, j, c)))
    full = naive(boxes, descs)
    assert [(i, j) for i, j, _ in seen] == [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    for i, j, c in seen:
        np.testing.assert_array_equal(c, full[(i, j)])
    s = res.similarity()
    off = res.offsets()
    assert s.shape == (19, 19) and off.tolist() == [0, 3, 17, 19]
    for i in range(3):
        for j in range(3):
            want = full[(i, j)][np.ix_(rows[i], rows[j])] if i <= j else full[(j, i)][np.ix_(rows[j], rows[i])].T
            np.testing.assert_array_equal(s[off[i] : off[i + 1], off[j] : off[j + 1]], want)

    off_diag = all_pairs(boxes, descs, rows=rows, topk=5, diagonal=False)
    assert off_diag.pairs == 3 and sorted(off_diag.blocks) == [(0, 1), (0, 2), (1, 2)]
    for i in range(3):
        np.testing.assert_array_equal(off_diag.topk_scores[i], res.topk_scores[i])
        np.testing.assert_array_equal(off_diag.topk_index[i], res.topk_index[i])
    assert (off_diag.similarity()[:3, :3] == 0).all()

    no_blocks = all_pairs(boxes, descs, topk=5, blocks=False)
    assert no_blocks.blocks is None
    with pytest.raises(ValueError, match="blocks=True"):
        no_blocks.similarity()


def test_threads_identical():
    sizes = [30, 25, 35]
    boxes, descs = random_inputs(5, sizes)
    old = vsum.threads.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            vsum.threads.set_num_threads(t)
            outs.append(all_pairs(boxes, descs, topk=7))
    finally:
        vsum.threads.set_num_threads(old)
    for o in outs[1:]:
        for key in o.blocks:
            np.testing.assert_array_equal(o.blocks[key], outs[0].blocks[key])
        for i in range(3):
            np.testing.assert_array_equal(o.topk_scores[i], outs[0].topk_scores[i])
            np.testing.assert_array_equal(o.topk_index[i], outs[0].topk_index[i])


@pytest.mark.parametrize("order", ["sequential", "parallel"])
def test_orders_identical_for_every_thread_count(order, restore_threads):
    boxes, descs = random_inputs(6, [30, 25, 35, 20, 0, 12])
    outs = []
    for t in (1, 2, 3, 7):
        restore_threads(t)
        outs.append(all_pairs(boxes, descs, topk=5, order=order))
    for o in outs[1:]:
        assert sorted(o.blocks) == sorted(outs[0].blocks)
        for key in outs[0].blocks:
            np.testing.assert_array_equal(o.blocks[key], outs[0].blocks[key])
        for i in range(len(boxes)):
            np.testing.assert_array_equal(o.topk_scores[i], outs[0].topk_scores[i])
            np.testing.assert_array_equal(o.topk_image[i], outs[0].topk_image[i])
            np.testing.assert_array_equal(o.topk_index[i], outs[0].topk_index[i])
    assert outs[0].order == order and outs[0].method == "lom"
    with pytest.raises(ValueError, match="order"):
        all_pairs(boxes, descs, order="any")


def test_save_load_round_trip_and_mismatch(tmp_path):
    boxes, descs = random_inputs(7, [12, 9, 15])
    rows = [np.arange(0, 12, 2), np.array([1, 3], np.int64), np.arange(15)]
    res = all_pairs(boxes, descs, rows=rows, topk=6, order="parallel")
    res.save(tmp_path / "pairs.npz")
    assert not list(tmp_path.glob("*.vsum-tmp"))
    back = AllPairsResult.load(tmp_path / "pairs.npz")
    for name in ("method", "order", "topk", "diagonal", "ridge", "stats", "pairs"):
        assert getattr(back, name) == getattr(res, name), name
    np.testing.assert_array_equal(back.sizes, res.sizes)
    assert sorted(back.blocks) == sorted(res.blocks)
    for key in res.blocks:
        np.testing.assert_array_equal(back.blocks[key], res.blocks[key])
    for i in range(3):
        for field in ("rows", "topk_scores", "topk_image", "topk_index"):
            np.testing.assert_array_equal(getattr(back, field)[i], getattr(res, field)[i])
    same = dict(method="lom", order="parallel", topk=6, ridge=0.01, rows=rows)
    assert back.mismatch(**same) is None
    assert back.mismatch(**{**same, "order": "sequential"}) == "it was made with order 'parallel', not 'sequential'"
    assert "method" in back.mismatch(**{**same, "method": "phm"})
    assert "rows of image 0" in back.mismatch(**{**same, "rows": [np.arange(12), rows[1], rows[2]]})
    assert "3 images, not 2" in back.mismatch(**{**same, "rows": rows[:2]})
    masks = [np.zeros(12, bool), np.zeros(9, bool), np.ones(15, bool)]
    masks[0][rows[0]] = True
    masks[1][rows[1]] = True
    assert back.mismatch(**{**same, "rows": masks}) is None  # boolean masks work as rows too
    no_blocks = all_pairs(boxes, descs, topk=6, blocks=False)
    no_blocks.save(tmp_path / "nb.npz")
    assert AllPairsResult.load(tmp_path / "nb.npz").blocks is None
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="not a stored all-pairs result"):
        AllPairsResult.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="format"):
        AllPairsResult.load(tmp_path / "other.npz")


def test_valid_rows_is_strictly_more_than():
    mask = np.zeros((10, 20), bool)
    mask[:, :15] = True
    # 4 x 10 box with 3 of 4 columns set: exactly 0.75 -> not valid; 15/19 > 0.75 -> valid.
    boxes = [[12, 0, 15, 9], [0, 0, 19, 9], [0, 0, 14, 9], [0, 0, 18, 0], [-5, 0, 4, 9]]
    (v,) = valid_rows([mask], [boxes])
    assert v.dtype == bool and v.tolist() == [False, False, True, True, False]
    assert valid_rows([mask], [boxes], 0.74)[0].tolist() == [True, True, True, True, False]
    assert valid_rows([mask], [np.zeros((0, 4), int)])[0].shape == (0,)
    with pytest.raises(ValueError):
        valid_rows([mask.astype(float)], [boxes])
    with pytest.raises(ValueError, match="one entry per image"):
        valid_rows([mask], [boxes, boxes])


def test_match_class_is_all_pairs_over_the_valid_rows():
    boxes, descs = random_inputs(8, [20, 25, 18])
    rng = np.random.default_rng(8)
    masks = [rng.random((128, 128)) < 0.9 for _ in range(3)]
    cfg = PairsConfig(topk=7, order="parallel", valid_coverage=0.8)
    res = match_class(masks, boxes, descs, cfg)
    rows = valid_rows(masks, boxes, 0.8)
    direct = all_pairs(boxes, descs, rows=rows, topk=7, order="parallel")
    assert res.mismatch(method="lom", order="parallel", topk=7, ridge=0.01, rows=rows) is None
    for key in direct.blocks:
        np.testing.assert_array_equal(res.blocks[key], direct.blocks[key])
    # nothing stage 5 could use: nothing is matched, the rows are recorded
    empty = match_class([np.zeros((128, 128), bool)] * 3, boxes, descs, cfg)
    assert empty.pairs == 0 and empty.blocks == {} and [len(r) for r in empty.rows] == [0, 0, 0]
    assert [s.shape for s in empty.topk_scores] == [(0, 7)] * 3
    one = match_class(masks[:1], boxes[:1], descs[:1], cfg)
    assert one.pairs == 0 and len(one.rows[0]) == int(rows[0].sum())
    assert one.mismatch(method="lom", order="parallel", topk=7, ridge=0.01, rows=rows[:1]) is None
    with pytest.raises(ValueError, match="PairsConfig"):
        PairsConfig(order="random")
    with pytest.raises(ValueError, match="PairsConfig"):
        PairsConfig(valid_coverage=2)
    with pytest.raises(ValueError, match="PairsConfig"):
        match_class(masks, boxes, descs, {"topk": 5})


def test_zero_and_one_image():
    empty = all_pairs([], [])
    assert empty.pairs == 0 and empty.similarity().shape == (0, 0) and empty.topk_scores == []
    boxes, descs = random_inputs(6, [9])
    one = all_pairs(boxes, descs, topk=4, progress=True)
    assert one.pairs == 1 and list(one.blocks) == [(0, 0)]
    np.testing.assert_array_equal(one.blocks[(0, 0)], naive(boxes, descs)[(0, 0)])
    assert one.topk_scores[0].shape == (9, 4) and (one.topk_scores[0] == 0).all()
    assert (one.topk_index[0] == -1).all() and (one.topk_image[0] == -1).all()


def test_topk_merge_order_independent():
    rng = np.random.default_rng(7)
    mats = [np.round(rng.random((6, n)), 1).astype(np.float32) for n in (5, 8, 4)]  # many ties
    sel = np.arange(6, dtype=np.int64)

    def merged(order):
        s, im, ix = np.zeros((6, 9), np.float32), np.full((6, 9), -1, np.int32), np.full((6, 9), -1, np.int32)
        for j in order:
            _core.pairs_topk_merge(mats[j], sel, False, j, s, im, ix)
        return s, im, ix

    first = merged([0, 1, 2])
    for order in ([2, 1, 0], [1, 2, 0]):
        for a, b in zip(merged(order), first):
            np.testing.assert_array_equal(a, b)
    s = np.concatenate(mats, axis=1)
    order = np.argsort(-s, axis=1, kind="stable")[:, :9]
    np.testing.assert_array_equal(first[0], np.take_along_axis(s, order, 1))
    # transposed: the lists get columns
    t = [np.zeros((5, 2), np.float32), np.full((5, 2), -1, np.int32), np.full((5, 2), -1, np.int32)]
    _core.pairs_topk_merge(np.ascontiguousarray(mats[0].T), np.arange(5, dtype=np.int64), True, 0, *t)
    np.testing.assert_array_equal(t[0], -np.sort(-mats[0][:5], axis=1)[:, :2])
    with pytest.raises(ValueError, match="out of range"):
        _core.pairs_topk_merge(mats[0], np.array([6], np.int64), False, 0, *[a[:1] for a in merged([])])


def test_bad_input():
    boxes, descs = random_inputs(8, [6, 5])
    with pytest.raises(ValueError, match="one entry per image"):
        all_pairs(boxes, descs[:1])
    with pytest.raises(ValueError, match="list"):
        all_pairs(np.stack([boxes[0], boxes[0]]), descs)
    with pytest.raises(ValueError, match=r"descriptors\[1\] must have shape"):
        all_pairs(boxes, [descs[0], descs[1][:, :100]])
    nan = descs[1].copy()
    nan[2, 3] = np.nan
    with pytest.raises(ValueError, match=r"descriptors\[1\] contains NaN"):
        all_pairs(boxes, [descs[0], nan])
    with pytest.raises(ValueError, match=r"descriptors\[0\] has 5 rows but boxes\[0\] has 6"):
        all_pairs(boxes, [descs[0][:5], descs[1]])
    bad = boxes[1].copy()
    bad[0, 2] = bad[0, 0] - 1
    with pytest.raises(ValueError, match=r"boxes\[1\]: row 0 is degenerate"):
        all_pairs([boxes[0], bad], descs)
    with pytest.raises(ValueError, match=r"boxes\[0\] must have shape"):
        all_pairs([boxes[0][:, :3], boxes[1]], descs)
    with pytest.raises(ValueError, match=r"rows\[1\] holds index 5"):
        all_pairs(boxes, descs, rows=[[0], [5]])
    with pytest.raises(ValueError, match=r"rows\[0\] holds index -1"):
        all_pairs(boxes, descs, rows=[[-1], [0]])
    with pytest.raises(ValueError, match="one entry per image"):
        all_pairs(boxes, descs, rows=[[0]])
    with pytest.raises(ValueError, match=r"rows\[0\] as a boolean mask"):
        all_pairs(boxes, descs, rows=[np.ones(3, bool), [0]])
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="topk"):
            all_pairs(boxes, descs, topk=k)
    with pytest.raises(ValueError, match="method"):
        all_pairs(boxes, descs, method="sift")
    with pytest.raises(ValueError, match="image_shapes"):
        all_pairs(boxes, descs, method="phm", image_shapes=[(10, 10)])

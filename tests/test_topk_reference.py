"""Running top-k merge: compiled vsum._core.pairs_topk_merge vs the NumPy reference (vsum.reference.pairs).

The merge is called the way vsum.pairs.all_pairs calls it (rows of conf_ij
for image i, columns for image j, images offered in any order), on random
matrices with many ties (quantised scores, zeros, -0.0), k larger than the
candidates (padding) and empty selections; then whole all_pairs runs on
random and real inputs against the plain sort of vsum.reference.pairs.topk_lists.
Equality is exact: the merge only orders float32 scores.
"""

from __future__ import annotations

import numpy as np
import pytest

import vsum.features as ft
from vsum._compiled import _core
from vsum.pairs import all_pairs
from vsum.reference import pairs as ref

from helpers import random_boxes, require_data


def empty_lists(r, k):
    """Fresh running lists, as all_pairs allocates them."""
    return np.zeros((r, k), np.float32), np.full((r, k), -1, np.int32), np.full((r, k), -1, np.int32)


def assert_lists_equal(got, want):
    for g, w, name in zip(got, want, ("scores", "images", "indices")):
        assert g.dtype == w.dtype and g.shape == w.shape, name
        if g.dtype == np.float32:  # bit patterns: -0.0 and 0.0 kept apart
            np.testing.assert_array_equal(g.view(np.uint32), w.view(np.uint32), err_msg=name)
        else:
            np.testing.assert_array_equal(g, w, err_msg=name)


def tied_conf(rng, na, nb):
    """float32 (na, nb) with many ties: scores in quarters, ~40 % zeros, a few -0.0 and a constant row."""
    c = np.round(rng.random((na, nb)) * 4) / 4
    c[rng.random((na, nb)) < 0.4] = 0
    c = c.astype(np.float32)
    c[rng.random((na, nb)) < 0.05] = -0.0
    if na > 2:
        c[1] = 0.5
    return c


@pytest.mark.parametrize("k", [1, 3, 8, 40, 200])
@pytest.mark.parametrize("seed", range(5))
def test_merge_parity_random(seed, k):
    rng = np.random.default_rng(seed * 1000 + k)
    n_img = 5
    sizes = [int(v) for v in rng.integers(0, 30, n_img)]
    sizes[int(rng.integers(n_img))] = 0  # an image without proposals
    i = int(rng.integers(n_img))
    sel = np.sort(rng.choice(max(sizes[i], 1), min(sizes[i], int(rng.integers(0, 12))), replace=False))
    sel = sel.astype(np.int64)
    if len(sel) > 2:
        sel[-1] = sel[0]  # a repeated row gets the same list twice
    got, want = empty_lists(len(sel), k), empty_lists(len(sel), k)
    others = [j for j in range(n_img) if j != i]
    rng.shuffle(others)  # candidates arrive in any image order
    for j in others:
        # all_pairs keeps conf_ij with i < j: image i reads rows (i < j) or columns (i > j) of it
        transposed = j < i
        conf = tied_conf(rng, sizes[j], sizes[i]) if transposed else tied_conf(rng, sizes[i], sizes[j])
        _core.pairs_topk_merge(conf, sel, transposed, j, *got)
        ref.topk_merge(conf, sel, transposed, j, *want)
        assert_lists_equal(got, want)
    # every list: filled prefix, then padding 0 / -1 / -1
    s, im, ix = want
    filled = ix >= 0
    assert (np.diff(filled.astype(int), axis=1) <= 0).all()
    assert (s[~filled] == 0).all() and (im[~filled] == -1).all()


def test_merge_empty_selection_and_no_candidates():
    rng = np.random.default_rng(3)
    conf = tied_conf(rng, 6, 4)
    for transposed in (False, True):
        got, want = empty_lists(0, 5), empty_lists(0, 5)
        _core.pairs_topk_merge(conf, np.zeros(0, np.int64), transposed, 2, *got)
        ref.topk_merge(conf, np.zeros(0, np.int64), transposed, 2, *want)
        assert_lists_equal(got, want)
    # conf with no candidates: the lists are left as they are
    sel = np.array([0, 2], np.int64)
    got, want = empty_lists(2, 3), empty_lists(2, 3)
    _core.pairs_topk_merge(conf, sel, False, 1, *got)
    ref.topk_merge(conf, sel, False, 1, *want)
    before = [a.copy() for a in want]
    _core.pairs_topk_merge(np.zeros((3, 0), np.float32), sel, False, 4, *got)
    ref.topk_merge(np.zeros((3, 0), np.float32), sel, False, 4, *want)
    _core.pairs_topk_merge(np.zeros((0, 3), np.float32), sel, True, 4, *got)
    ref.topk_merge(np.zeros((0, 3), np.float32), sel, True, 4, *want)
    assert_lists_equal(got, want)
    assert_lists_equal(want, before)


def test_merge_by_hand():
    # image 3 offers (0.5, 0.5, 0.0); image 1 offers (0.5, 0.75): ties go to the lower image, then index.
    for merge in (ref.topk_merge, _core.pairs_topk_merge):
        s, im, ix = empty_lists(1, 4)
        merge(np.float32([[0.5, 0.5, 0.0]]), np.array([0], np.int64), False, 3, s, im, ix)
        merge(np.float32([[0.5], [0.75]]), np.array([0], np.int64), True, 1, s, im, ix)
        np.testing.assert_array_equal(s, [[0.75, 0.5, 0.5, 0.5]])
        np.testing.assert_array_equal(im, [[1, 1, 3, 3]])
        np.testing.assert_array_equal(ix, [[1, 0, 0, 1]])
        s, im, ix = empty_lists(1, 6)
        merge(np.float32([[0.25, 0.0]]), np.array([0], np.int64), False, 0, s, im, ix)
        np.testing.assert_array_equal(s, [[0.25, 0, 0, 0, 0, 0]])
        np.testing.assert_array_equal(im, [[0, 0, -1, -1, -1, -1]])
        np.testing.assert_array_equal(ix, [[0, 1, -1, -1, -1, -1]])


def test_merge_thread_counts(restore_threads):
    rng = np.random.default_rng(11)
    conf = tied_conf(rng, 300, 400)
    sel = np.arange(0, 300, 2, dtype=np.int64)
    want = empty_lists(len(sel), 25)
    ref.topk_merge(conf, sel, False, 1, *want)
    ref.topk_merge(conf[:, :350].T.copy(), sel, True, 2, *want)
    for t in (1, 2, 3):
        restore_threads(t)
        got = empty_lists(len(sel), 25)
        _core.pairs_topk_merge(conf, sel, False, 1, *got)
        _core.pairs_topk_merge(conf[:, :350].T.copy(), sel, True, 2, *got)
        assert_lists_equal(got, want)


# ---------------------------------------------------------------------------
# whole all_pairs runs vs topk_lists
# ---------------------------------------------------------------------------


def run_and_collect(boxes, descs, **kwargs):
    confs = {}

    def collect(i, j, conf):
        confs[(i, j)] = conf

    res = all_pairs(boxes, descs, on_pair=collect, **kwargs)
    return res, confs


def assert_all_pairs_matches_reference(res, confs, k):
    want = ref.topk_lists(confs, res.rows, k)
    for i in range(res.n_images):
        assert_lists_equal((res.topk_scores[i], res.topk_image[i], res.topk_index[i]),
                           (want[0][i], want[1][i], want[2][i]))


@pytest.mark.parametrize(
    "sizes, k, kwargs",
    [
        ([20, 0, 25, 14, 18], 10, {}),
        ([12, 9, 7], 25, {}),  # k larger than the candidates of every image: padding
        ([15, 22, 10, 8], 6, {"diagonal": False}),
        ([16], 4, {}),  # one image: all padding
        ([10, 12], 30, {"method": "nam"}),
    ],
)
def test_all_pairs_random_matches_reference(sizes, k, kwargs):
    rng = np.random.default_rng(sum(sizes) + k)
    boxes = [random_boxes(rng, n, 96, 96, min_side=6, max_side=48) for n in sizes]
    descs = [(rng.random((n, ft.DESC_LENGTH)) * 0.3).astype(np.float32) for n in sizes]
    rows = [np.sort(rng.choice(n, n // 2 + 1, replace=False)) if n else np.zeros(0, np.int64) for n in sizes]
    res, confs = run_and_collect(boxes, descs, rows=rows, topk=k, **kwargs)
    assert res.topk == k
    assert_all_pairs_matches_reference(res, confs, k)


def test_all_pairs_quantised_ties():
    # Identical descriptors in every image and repeated boxes: many exactly equal confidences.
    rng = np.random.default_rng(5)
    base = random_boxes(rng, 6, 64, 64, min_side=8, max_side=32)
    boxes = [np.concatenate([base, base[::-1]]) for _ in range(3)]
    d = (rng.random((6, ft.DESC_LENGTH)) * 0.3).astype(np.float32)
    descs = [np.concatenate([d, d[::-1]]) for _ in range(3)]
    res, confs = run_and_collect(boxes, descs, topk=15, method="nam")
    scores = np.concatenate([c.ravel() for (i, j), c in confs.items() if i != j])
    assert len(np.unique(scores)) < len(scores) // 2  # ties everywhere
    assert_all_pairs_matches_reference(res, confs, 15)


def test_all_pairs_real_albatross(data_dir):
    from vsum.io import downscale_longest_side, read_image
    from vsum.proposals import selective_search

    paths = sorted((data_dir / "albatross").glob("*.jpg"))[:3]
    require_data(len(paths) == 3, f"3 photos in {data_dir / 'albatross'}")
    boxes, descs = [], []
    for path in paths:
        rgb = downscale_longest_side(read_image(path).rgb, 128)
        b, _ = selective_search(rgb, num=60)
        boxes.append(b)
        descs.append(ft.describe(rgb, b))
    sizes = [len(b) for b in boxes]
    assert min(sizes) > 10
    for k, rows in [(20, None), (150, [np.arange(0, n, 2) for n in sizes])]:
        res, confs = run_and_collect(boxes, descs, rows=rows, topk=k)
        assert_all_pairs_matches_reference(res, confs, k)
        assert (res.topk_scores[0][:, 0] > 0).any()

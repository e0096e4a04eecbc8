"""Stage 5 (vsum.summarize): each step on hand-made inputs, one small end-to-end run on real photos."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vsum.pairs import AllPairsResult
from vsum.summarize import (
    SummaryConfig,
    cluster,
    cluster_members,
    cluster_quality,
    cluster_score,
    member_ssim,
    prune_redundant,
    pruning_scores,
    select_summaries,
    similarity_matrix,
    summarize_class,
    to_grey,
    valid_proposals,
)


# --------------------------------------------------------------------------- config


def test_config_defaults_are_published():
    c = SummaryConfig()
    assert (c.valid_coverage, c.redundancy_overlap, c.redundancy_area_ratio, c.redundancy_topk) == (0.75, 0.5, 2.0, 100)
    assert (c.preference_factor, c.damping, c.max_iter, c.convergence_iter, c.random_state) == (1.3, 0.9, 1000, 100, 0)
    assert (c.max_members, c.cluster_keep_factor, c.member_ssim_fraction) == (10, 0.9, 0.6)
    assert json.loads(json.dumps(c.to_dict()))["preference_factor"] == 1.3


@pytest.mark.parametrize("kw", [{"valid_coverage": 1.5}, {"damping": 1.0}, {"max_members": 0}, {"ssim_win_size": 4},
                                {"lom_order": "any"}, {"redundancy_topk": True}, {"flow_fill": "x"}])
def test_config_rejects_bad_values(kw):
    with pytest.raises(ValueError, match="SummaryConfig"):
        SummaryConfig(**kw)


# --------------------------------------------------------------------------- step 1


def test_valid_proposals_is_strictly_more_than():
    mask = np.zeros((10, 20), bool)
    mask[:, :15] = True
    # 4 x 10 box with 3 of 4 columns set: exactly 0.75 -> not valid; 15/19 > 0.75 -> valid.
    boxes = [[12, 0, 15, 9], [0, 0, 19, 9], [0, 0, 14, 9], [0, 0, 18, 0], [-5, 0, 4, 9]]
    v = valid_proposals(mask, boxes)
    assert v.dtype == bool and v.tolist() == [False, False, True, True, False]
    assert valid_proposals(mask, boxes, threshold=0.74).tolist() == [True, True, True, True, False]
    assert valid_proposals(mask, np.zeros((0, 4), int)).shape == (0,)
    with pytest.raises(ValueError):
        valid_proposals(mask.astype(float), boxes)


# --------------------------------------------------------------------------- step 2


def test_pruning_scores_ignores_padding():
    s = np.array([[4.0, 2.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    img = np.array([[1, 2, 1], [1, -1, -1], [-1, -1, -1]])
    assert pruning_scores(s, img).tolist() == [2.0, 3.0, 0.0]
    assert np.allclose(pruning_scores(s), [2.0, 1.0, 0.0])


def test_prune_redundant_greedy_with_known_overlaps():
    boxes = np.array([
        [0, 0, 9, 9],      # 0: 100 px, score 5
        [0, 5, 9, 14],     # 1: overlap_min with 0 = 0.5, same area -> redundant with 0, pruned
        [2, 2, 5, 5],      # 2: inside 0 but area 16 (ratio >= 2) -> not redundant, kept
        [0, 10, 9, 19],    # 3: overlaps 1 (pruned) only -> kept although 1 scored higher
        [30, 30, 39, 39],  # 4: far away but invalid -> never kept
        [30, 30, 39, 38],  # 5: same as 4 minus a row, valid, kept
        [40, 40, 49, 49],  # 6: ties with 7 (identical box): the smaller index wins
        [40, 40, 49, 49],  # 7
        [0, 0, 13, 13],    # 8: 196 px contains 0 (ratio 1.96 < 2) -> redundant with 0 (better score)
    ])
    valid = np.array([True, True, True, True, False, True, True, True, True])
    scores = np.array([5.0, 4.0, 1.0, 0.5, 99.0, 0.1, 2.0, 2.0, 3.0])
    kept = prune_redundant(boxes, valid, scores)
    assert kept.dtype == np.int64 and kept.tolist() == [0, 2, 3, 5, 6]
    # Raising the bar on overlap keeps 1 (0.5 < 0.6) and it then prunes 3 (overlap 0.5 < 0.6: not redundant).
    assert prune_redundant(boxes, valid, scores, overlap=0.6).tolist() == [0, 1, 2, 3, 5, 6]
    # A wider area ratio makes the nested box 2 (ratio 6.25) redundant with 0.
    assert 2 not in prune_redundant(boxes, valid, scores, area_ratio=7.0)
    assert prune_redundant(boxes, np.zeros(9, bool), scores).tolist() == []
    with pytest.raises(ValueError, match="valid"):
        prune_redundant(boxes, valid[:3], scores)
    with pytest.raises(ValueError, match="NaN"):
        prune_redundant(boxes, valid, np.full(9, np.nan))


# --------------------------------------------------------------------------- step 3


def _fake_pairs(sizes, rows, seed=0):
    rng = np.random.default_rng(seed)
    full = {(i, j): rng.random((sizes[i], sizes[j])).astype(np.float32)
            for i in range(len(sizes)) for j in range(i, len(sizes))}
    blocks = {k: v[np.ix_(rows[k[0]], rows[k[1]])] for k, v in full.items()}
    res = AllPairsResult("lom", np.array(sizes, np.int64), [np.asarray(r, np.int64) for r in rows], blocks, 1,
                         [], [], [])
    return res, full


def test_similarity_matrix_restricts_and_transposes():
    pairs, full = _fake_pairs([5, 4, 6], [[0, 2, 3, 4], [1, 3], [0, 1, 5]])
    kept = [np.array([2, 4]), np.array([], np.int64), np.array([1, 5])]
    s, image, index = similarity_matrix(pairs, kept)
    assert s.shape == (4, 4) and s.dtype == np.float32
    assert image.tolist() == [0, 0, 2, 2] and index.tolist() == [2, 4, 1, 5]
    for p in range(4):
        for q in range(4):
            i, a, j, b = image[p], index[p], image[q], index[q]
            want = full[(i, j)][a, b] if i <= j else full[(j, i)][b, a]
            assert s[p, q] == want
    everything = similarity_matrix(pairs, pairs.rows)[0]
    assert np.array_equal(everything, pairs.similarity())
    with pytest.raises(ValueError, match="not among"):
        similarity_matrix(pairs, [np.array([1]), np.array([], np.int64), np.array([], np.int64)])
    with pytest.raises(ValueError, match="one entry per image"):
        similarity_matrix(pairs, kept[:2])


# --------------------------------------------------------------------------- step 4


def _block_matrix(groups, seed=0, noise=0.05, diag=1000.0):
    rng = np.random.default_rng(seed)
    lab = np.repeat(np.arange(len(groups)), groups)
    s = np.where(lab[:, None] == lab[None, :], 10.0, 1.0) + noise * rng.random((len(lab), len(lab)))
    np.fill_diagonal(s, diag)  # a self-match, far above any cross score
    return s, lab


def test_cluster_finds_obvious_blocks():
    s, truth = _block_matrix([4, 6, 5])
    res = cluster(s)
    assert res.n_clusters == 3 and res.converged and res.note is None
    assert res.labels.dtype == np.int64
    for k in range(3):
        assert len(set(res.labels[truth == k])) == 1
    assert np.array_equal(res.labels[res.exemplars], np.arange(3))
    assert res.offset == pytest.approx(s[~np.eye(len(s), dtype=bool)].max())
    off = s[~np.eye(len(s), dtype=bool)] - res.offset
    assert res.preference == pytest.approx(1.3 * np.median(off))
    # The diagonal plays no part: any value gives the same clustering.
    again = cluster(np.where(np.eye(len(s), dtype=bool), -5.0, s))
    assert np.array_equal(again.labels, res.labels) and np.array_equal(again.exemplars, res.exemplars)


def test_cluster_degenerate_cases():
    one = cluster(np.array([[3.0]]))
    assert one.n_clusters == 1 and one.labels.tolist() == [0] and "single" in one.note
    flat = cluster(np.full((4, 4), 2.0))
    assert flat.n_clusters == 1 and flat.labels.tolist() == [0, 0, 0, 0] and "equal" in flat.note
    s, _ = _block_matrix([3, 3])
    stuck = cluster(s, SummaryConfig(max_iter=3, convergence_iter=2))
    assert stuck.n_clusters == 0 and not stuck.converged and "did not converge" in stuck.note
    assert (stuck.labels == -1).all()
    for bad in (np.zeros((0, 0)), np.zeros((2, 3)), np.array([[0.0, np.nan], [1.0, 0.0]])):
        with pytest.raises(ValueError):
            cluster(bad)


# --------------------------------------------------------------------------- step 5


def test_cluster_members_rule():
    image = np.array([0, 0, 1, 1, 2, 3, 3, 4])
    labels = np.array([0, 0, 0, 0, 0, 1, 0, 0])
    s = np.zeros((8, 8))
    s[:, 0] = [9.0, 8.0, 2.0, 3.0, 3.0, 7.0, 1.0, 0.5]  # similarity of each proposal to exemplar 0
    members, sim = cluster_members(s, labels, image, exemplar=0)
    # 1 (exemplar's image) dropped, 2 loses to 3 in image 1, 5 is in another cluster; 3 and 4 tie -> smaller row.
    assert members.tolist() == [0, 3, 4, 6, 7] and sim.tolist() == [9.0, 3.0, 3.0, 1.0, 0.5]
    assert cluster_members(s, labels, image, 0, max_members=2)[0].tolist() == [0, 3]
    assert cluster_members(s, labels, image, 5)[0].tolist() == [5]
    with pytest.raises(ValueError):
        cluster_members(s, labels, image, 8)


# --------------------------------------------------------------------------- step 6


def _texture(seed, shape=(40, 50, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_member_ssim_identical_is_one():
    img = _texture(0)
    box = [5, 6, 30, 35]
    s = member_ssim([img, img.copy(), img], box)
    assert s.shape == (3, 3) and s.dtype == np.float64 and np.allclose(s, 1.0)
    other = member_ssim([img, _texture(1)], box)
    assert np.allclose(other, other.T) and other[0, 1] < 0.2
    # only the crop matters
    changed = img.copy()
    changed[0:3] = 0
    assert member_ssim([img, changed], box)[0, 1] == pytest.approx(1.0)
    # thin and tiny crops, Gaussian window
    assert member_ssim([img, img], [3, 3, 4, 20])[0, 1] == pytest.approx(1.0)
    assert member_ssim([img, img], [3, 3, 3, 3])[0, 1] == pytest.approx(1.0)
    assert member_ssim([img, _texture(1)], box, gaussian_weights=True)[0, 1] < 0.2
    assert member_ssim([img, img], [0, 0, 8, 8], gaussian_weights=True)[0, 1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="exemplar image"):
        member_ssim([img, img[:-1]], box)
    with pytest.raises(ValueError, match="outside"):
        member_ssim([img], [60, 0, 70, 5])


def test_to_grey_weights():
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    assert np.allclose(to_grey(px), [[0.2989 * 255, 0.5870 * 255, 0.1140 * 255]])


def test_cluster_quality_uses_the_warp_callback():
    imgs = [_texture(k) for k in range(3)]
    boxes = [np.array([[1, 1, 20, 20], [5, 5, 30, 30]])] * 3
    image, index = np.array([0, 0, 1, 2]), np.array([0, 1, 0, 1])
    calls = []

    def identity_warp(e, m):  # every member "looks like" the exemplar image
        calls.append((e, m))
        return imgs[e]

    s = cluster_quality(imgs, [1, 2, 3], image, index, boxes, identity_warp)
    assert calls == [(0, 1), (0, 2)] and np.allclose(s, 1.0) and cluster_score(s) == pytest.approx(1.0)
    s = cluster_quality(imgs, [1, 2, 3], image, index, boxes, lambda e, m: imgs[m])
    assert s[0, 1] < 0.2
    with pytest.raises(ValueError, match="exemplar image"):
        cluster_quality(imgs, [1, 2], image, index, boxes, lambda e, m: imgs[m][:10])


def test_cluster_score_is_off_diagonal_median():
    s = np.array([[1.0, 0.2, 0.4], [0.2, 1.0, 0.9], [0.4, 0.9, 1.0]])
    assert cluster_score(s) == pytest.approx(0.4)
    assert np.isnan(cluster_score(np.ones((1, 1))))


def _ssim_matrix(off):
    m = len(off)
    s = np.array(off, float)
    s[np.arange(m), np.arange(m)] = 1.0
    return s


def test_select_summaries_rules():
    # scores 0.5, 0.45, 0.44, 0.3, NaN -> reference = median(0.5, 0.45, 0.44, 0.3) = 0.445
    scores = [0.5, 0.45, 0.44, 0.3, np.nan]
    big = np.full((6, 6), 0.9)
    for p, q in [(5, 0), (5, 1), (5, 2), (4, 3), (4, 0)]:  # SSIMs under the reference
        big[p, q] = big[q, p] = 0.1
    # under-reference counts of 5: [2, 1, 1, 1, 2, 3]; member 5 has 3 of 5 = 60%, not "fewer than 60%"
    ssims = [_ssim_matrix(big), np.eye(2), np.eye(2), np.eye(2), np.eye(1)]
    reference, kept, members = select_summaries(scores, ssims)
    assert reference == pytest.approx(0.445)
    # 0.9 * 0.445 = 0.4005: 0.44 kept, 0.3 not, NaN never
    assert kept.tolist() == [True, True, True, False, False]
    assert members[0].tolist() == [True, True, True, True, True, False]
    assert members[1].tolist() == [False, False]  # its one SSIM (0) is under the reference: 100 %
    assert members[3].tolist() == [False, False] and members[4].tolist() == [False]
    # the edge of the cluster rule: score exactly 0.9 x reference is kept
    ref, kept, _ = select_summaries([0.9, 1.0, 1.1], [np.eye(2)] * 3, SummaryConfig(cluster_keep_factor=0.9))
    assert ref == 1.0 and kept.tolist() == [True, True, True]
    ref, kept, _ = select_summaries([np.nan], [np.eye(1)])
    assert np.isnan(ref) and kept.tolist() == [False]
    with pytest.raises(ValueError, match="one SSIM matrix per cluster"):
        select_summaries([0.5], [])


# --------------------------------------------------------------------------- driver


def _photos(data_dir, count=5, side=128):
    from PIL import Image

    files = sorted((data_dir / "albatross").glob("*.jpg"))[:count]
    if len(files) < count:
        pytest.skip("albatross photos not found")
    imgs, masks = [], []
    for f in files:
        im = Image.open(f).convert("RGB")
        im.thumbnail((side, side))
        a = np.asarray(im)
        h, w = a.shape[:2]
        yy, xx = np.mgrid[:h, :w]
        imgs.append(a)
        masks.append(((yy - h / 2) / (0.4 * h)) ** 2 + ((xx - w / 2) / (0.4 * w)) ** 2 < 1)  # centre blob
    return imgs, masks


@pytest.fixture(scope="module")
def small_class(data_dir):
    from vsum.features import describe
    from vsum.proposals import selective_search

    imgs, masks = _photos(data_dir)
    boxes = [selective_search(a, num=60)[0] for a in imgs]
    descs = [describe(a, b) for a, b in zip(imgs, boxes)]
    return imgs, masks, boxes, descs


def test_summarize_class_end_to_end(small_class):
    from vsum.boxes import overlap_min

    imgs, masks, boxes, descs = small_class
    cfg = SummaryConfig()
    res = summarize_class(imgs, masks, boxes, descs, cfg)
    c = res.counts
    assert c["images"] == 5 and c["proposals"] == sum(len(b) for b in boxes)
    assert c["proposals"] >= c["valid"] >= c["kept"] >= c["clusters"] >= c["clusters_kept"] >= c["summaries"] >= 1
    assert res.reason is None and res.ap_converged and np.isfinite(res.reference)
    assert set(res.timings) >= {"valid", "pairs", "prune", "cluster", "quality"}
    for i in range(5):
        kept = res.kept[i]
        assert res.valid[i].tolist() == valid_proposals(masks[i], boxes[i]).tolist()
        assert res.valid[i][kept].all() and np.all(np.diff(kept) > 0)
        assert np.isnan(res.scores[i][~res.valid[i]]).all() and np.isfinite(res.scores[i][res.valid[i]]).all()
        b = boxes[i][kept].astype(np.int64)
        area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
        ov = overlap_min(b, b)
        ratio = np.maximum(area[:, None], area[None, :]) / np.minimum(area[:, None], area[None, :])
        redundant = (ov >= 0.5) & (ratio < 2)
        np.fill_diagonal(redundant, False)
        assert not redundant.any()
    assert len(res.clusters) == c["clusters"]
    for cl in res.clusters:
        m = len(cl.images)
        assert 1 <= m <= cfg.max_members and len(set(cl.images.tolist())) == m
        assert (cl.images[0], cl.indices[0]) == (cl.exemplar_image, cl.exemplar_index)
        assert np.all(np.diff(cl.similarity[1:]) <= 0)
        for i, x, b in zip(cl.images, cl.indices, cl.boxes):
            assert x in res.kept[i] and b.tolist() == boxes[i][x].tolist()
        assert cl.ssim.shape == (m, m) and np.allclose(cl.ssim, cl.ssim.T) and np.allclose(np.diag(cl.ssim), 1)
        assert cl.member_kept.shape == (m,) and (cl.kept or not cl.member_kept.any())
        assert cl.kept == bool(cl.score >= cfg.cluster_keep_factor * res.reference)
    assert all(s.kept and s.member_kept.any() for s in res.summaries)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["counts"] == c and len(d["clusters"]) == c["clusters"] and len(d["summaries"]) == c["summaries"]

    # identity warps: every member crop equals the exemplar's -> every SSIM 1, every scored cluster kept
    flat = summarize_class(imgs, masks, boxes, descs, cfg, warp_member=lambda e, m: imgs[e])
    assert [cl.exemplar_index for cl in flat.clusters] == [cl.exemplar_index for cl in res.clusters]
    assert flat.reference == pytest.approx(1.0)
    assert all(cl.kept == (len(cl.images) > 1) for cl in flat.clusters)


def test_summarize_class_reports_why_nothing(small_class):
    imgs, masks, boxes, descs = small_class
    one = summarize_class(imgs[:1], masks[:1], boxes[:1], descs[:1])
    assert "at least 2 images" in one.reason and one.summaries == [] and one.counts["images"] == 1
    empty = [np.zeros_like(m) for m in masks[:3]]
    none = summarize_class(imgs[:3], empty, boxes[:3], descs[:3])
    assert "no valid proposal" in none.reason and none.counts["valid"] == 0
    json.dumps(none.to_dict())
    only_first = [masks[0]] + [np.zeros_like(m) for m in masks[1:3]]
    lonely = summarize_class(imgs[:3], only_first, [b[:20] for b in boxes[:3]], [d[:20] for d in descs[:3]])
    assert "only one image" in lonely.reason and lonely.counts["valid"] > 0
    no_boxes = summarize_class(imgs[:3], masks[:3], [boxes[0][:20], boxes[1][:20], boxes[2][:0]],
                               [descs[0][:20], descs[1][:20], descs[2][:0]])
    assert no_boxes.counts["proposals"] == 40 and no_boxes.kept[2].size == 0
    assert all(2 not in cl.images for cl in no_boxes.clusters)
    stuck = summarize_class(imgs[:2], masks[:2], [b[:20] for b in boxes[:2]], [d[:20] for d in descs[:2]],
                            SummaryConfig(max_iter=2, convergence_iter=1))
    assert "did not converge" in stuck.reason and stuck.ap_converged is False and stuck.clusters == []


def test_summarize_class_bad_input(small_class):
    imgs, masks, boxes, descs = small_class
    with pytest.raises(ValueError, match="one entry per image"):
        summarize_class(imgs, masks[:2], boxes, descs)
    with pytest.raises(ValueError, match="image's resolution"):
        summarize_class(imgs[:2], [masks[1], masks[0]] if masks[0].shape != masks[1].shape else
                        [masks[0][:-1], masks[1]], boxes[:2], descs[:2])
    with pytest.raises(ValueError, match="descriptors"):
        summarize_class(imgs[:2], masks[:2], boxes[:2], [descs[0][:3], descs[1]])
    with pytest.raises(ValueError, match="SummaryConfig"):
        summarize_class(imgs[:2], masks[:2], boxes[:2], descs[:2], config={"damping": 0.9})


def test_default_warps_do_not_depend_on_workers(small_class):
    from vsum.flow import dense_flow, match, warp
    from vsum.features import appearance
    from vsum.summarize import _Warper

    imgs, masks, boxes, descs = small_class
    one, two = (_Warper(imgs, boxes, descs, SummaryConfig(), workers=w) for w in (1, 2))
    one.prefetch(0, [1, 2, 3])
    two.prefetch(0, [3, 1, 2, 1])
    assert sorted(one.cache) == sorted(two.cache) == [(0, 1), (0, 2), (0, 3)]
    for key in one.cache:
        assert np.array_equal(one.cache[key], two.cache[key])
    # the flow runs from the exemplar image (A) to the member image (B)
    conf = match(boxes[0], boxes[2], appearance(descs[0], descs[2]), "lom")
    assert np.array_equal(one(0, 2), warp(imgs[2], *dense_flow(imgs[0], imgs[2], boxes[0], boxes[2], conf)))
    assert one(1, 0).shape == imgs[1].shape and list(one.cache) == [(1, 0)]  # a new exemplar image resets the cache

"""Stage 5 (vsum.clusters): each step on hand-made inputs, the driver on a synthetic class and on real photos."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vsum.clusters import (
    ClusterConfig,
    affinity_clusters,
    cluster_members,
    cluster_score,
    find_summaries,
    member_ssim,
    prune_redundant,
    pruning_scores,
    select_summaries,
    similarity_matrix,
    to_grey,
)
from vsum.features import describe
from vsum.pairs import AllPairsResult, PairsConfig, match_class
from vsum.proposals import selective_search

from helpers import albatross_thumbnails, require_data
from synthetic import synthetic_class

# --------------------------------------------------------------------------- config


def test_config_defaults_are_published():
    c = ClusterConfig()
    assert (c.redundancy_overlap, c.redundancy_area_ratio) == (0.5, 2.0)
    assert (c.preference_factor, c.damping, c.max_iter, c.convergence_iter, c.random_state) == (1.3, 0.9, 1000, 100, 0)
    assert (c.max_members, c.cluster_keep_factor, c.member_ssim_fraction) == (10, 0.9, 0.6)
    assert json.loads(json.dumps(c.to_dict()))["preference_factor"] == 1.3
    p = PairsConfig()
    assert (p.valid_coverage, p.topk, p.method, p.order) == (0.75, 100, "lom", "sequential")


@pytest.mark.parametrize("kw", [{"redundancy_overlap": 1.5}, {"damping": 1.0}, {"max_members": 0},
                                {"ssim_win_size": 4}, {"max_iter": True}, {"flow_fill": "x"},
                                {"ssim_gaussian_weights": 1}])
def test_config_rejects_bad_values(kw):
    with pytest.raises(ValueError, match="ClusterConfig"):
        ClusterConfig(**kw)


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


def test_affinity_clusters_finds_obvious_blocks():
    s, truth = _block_matrix([4, 6, 5])
    res = affinity_clusters(s)
    assert res.n_clusters == 3 and res.converged and res.note is None
    assert res.labels.dtype == np.int64
    for k in range(3):
        assert len(set(res.labels[truth == k])) == 1
    assert np.array_equal(res.labels[res.exemplars], np.arange(3))
    assert res.offset == pytest.approx(s[~np.eye(len(s), dtype=bool)].max())
    off = s[~np.eye(len(s), dtype=bool)] - res.offset
    assert res.preference == pytest.approx(1.3 * np.median(off))
    # The diagonal plays no part: any value gives the same clustering.
    again = affinity_clusters(np.where(np.eye(len(s), dtype=bool), -5.0, s))
    assert np.array_equal(again.labels, res.labels) and np.array_equal(again.exemplars, res.exemplars)


def test_affinity_clusters_degenerate_cases():
    one = affinity_clusters(np.array([[3.0]]))
    assert one.n_clusters == 1 and one.labels.tolist() == [0] and "single" in one.note
    flat = affinity_clusters(np.full((4, 4), 2.0))
    assert flat.n_clusters == 1 and flat.labels.tolist() == [0, 0, 0, 0] and "equal" in flat.note
    s, _ = _block_matrix([3, 3])
    stuck = affinity_clusters(s, ClusterConfig(max_iter=3, convergence_iter=2))
    assert stuck.n_clusters == 0 and not stuck.converged and "did not converge" in stuck.note
    assert (stuck.labels == -1).all()
    for bad in (np.zeros((0, 0)), np.zeros((2, 3)), np.array([[0.0, np.nan], [1.0, 0.0]])):
        with pytest.raises(ValueError):
            affinity_clusters(bad)


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


def _crop(img, box):
    x1, y1, x2, y2 = box
    return img[y1:y2 + 1, x1:x2 + 1]


def test_member_ssim_identical_is_one():
    img = _texture(0)
    box = [5, 6, 30, 35]
    crop = _crop(img, box)
    s = member_ssim([crop, crop.copy(), crop])
    assert s.shape == (3, 3) and s.dtype == np.float64 and np.allclose(s, 1.0)
    other = member_ssim([crop, _crop(_texture(1), box)])
    assert np.allclose(other, other.T) and other[0, 1] < 0.2
    # thin and tiny crops, Gaussian window
    assert member_ssim([_crop(img, [3, 3, 4, 20])] * 2)[0, 1] == pytest.approx(1.0)
    assert member_ssim([_crop(img, [3, 3, 3, 3])] * 2)[0, 1] == pytest.approx(1.0)
    assert member_ssim([crop, _crop(_texture(1), box)], gaussian_weights=True)[0, 1] < 0.2
    assert member_ssim([_crop(img, [0, 0, 8, 8])] * 2, gaussian_weights=True)[0, 1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="exemplar crop"):
        member_ssim([crop, crop[:-1]])
    with pytest.raises(ValueError, match="at least one"):
        member_ssim([])


def test_to_grey_weights():
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    assert np.allclose(to_grey(px), [[0.2989 * 255, 0.5870 * 255, 0.1140 * 255]])
    with pytest.raises(ValueError, match="shape"):
        to_grey(np.zeros((2, 2, 4)))


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
    ref, kept, _ = select_summaries([0.9, 1.0, 1.1], [np.eye(2)] * 3, ClusterConfig(cluster_keep_factor=0.9))
    assert ref == 1.0 and kept.tolist() == [True, True, True]
    ref, kept, _ = select_summaries([np.nan], [np.eye(1)])
    assert np.isnan(ref) and kept.tolist() == [False]
    with pytest.raises(ValueError, match="one SSIM matrix per cluster"):
        select_summaries([0.5], [])


# --------------------------------------------------------------------------- driver


def _stage4(images, masks, num=100, config=None):
    boxes = [selective_search(a, num=num)[0] for a in images]
    descs = [describe(a, b) for a, b in zip(images, boxes)]
    return boxes, descs, match_class(masks, boxes, descs, config)


@pytest.fixture(scope="module")
def synthetic():
    """A synthetic bird class (no shared data), its stage 2-4 results and the stage-5 result."""
    birds = synthetic_class(6, 128, seed=0)
    boxes, descs, pairs = _stage4(birds.images, birds.masks)
    return birds, boxes, descs, pairs, find_summaries(birds.images, boxes, descs, pairs)


def check_result(res, images, boxes, pairs, cfg):
    from vsum.boxes import overlap_min

    n = len(images)
    c = res.counts
    assert c["images"] == n and c["proposals"] == sum(len(b) for b in boxes)
    assert c["proposals"] >= c["valid"] >= c["kept"] >= c["clusters"] >= c["clusters_kept"] >= c["summaries"] >= 1
    assert res.reason is None and res.ap_converged and np.isfinite(res.reference)
    assert set(res.timings) >= {"valid", "pairs", "prune", "cluster", "quality"}
    for i in range(n):
        kept = res.kept[i]
        assert np.flatnonzero(res.valid[i]).tolist() == pairs.rows[i].tolist()
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
        x1, y1, x2, y2 = cl.boxes[0]
        assert len(cl.crops) == m and all(cr.shape == (y2 - y1 + 1, x2 - x1 + 1, 3) for cr in cl.crops)
        assert cl.ssim.shape == (m, m) and np.allclose(cl.ssim, cl.ssim.T) and np.allclose(np.diag(cl.ssim), 1)
        assert cl.member_kept.shape == (m,) and (cl.kept or not cl.member_kept.any())
        assert cl.kept == bool(cl.score >= cfg.cluster_keep_factor * res.reference)
        assert cl.is_summary == (cl.kept and cl.member_kept.any())
    assert res.summaries == [cl for cl in res.clusters if cl.is_summary]
    d = json.loads(json.dumps(res.to_dict()))
    assert d["counts"] == c and len(d["clusters"]) == c["clusters"] and len(d["summaries"]) == c["summaries"]


def test_find_summaries_on_a_synthetic_class(synthetic):
    birds, boxes, descs, pairs, res = synthetic
    check_result(res, birds.images, boxes, pairs, ClusterConfig())
    # the exemplar crop is the exemplar image's box; members are warped onto the exemplar image
    cl = res.summaries[0]
    x1, y1, x2, y2 = cl.boxes[0]
    assert np.array_equal(cl.crops[0], birds.images[cl.exemplar_image][y1:y2 + 1, x1:x2 + 1])


def test_find_summaries_members_show_one_part(synthetic):
    """Each summary groups one part of the bird: most kept members' boxes show the exemplar's part."""
    birds, _, _, _, res = synthetic
    agree, shown = [], set()
    for cl in res.summaries:
        part = birds.part_of_box(cl.exemplar_image, cl.boxes[0])
        assert part != 0, "an exemplar shows the background"
        parts = [birds.part_of_box(int(i), b) for i, b, k in zip(cl.images, cl.boxes, cl.member_kept) if k]
        agree.append(np.mean([p == part for p in parts]))
        shown.add(part)
    assert np.mean(agree) >= 0.8, agree
    assert len(shown) >= 2, "the summaries show only one part of the bird"


def test_find_summaries_uses_the_warp_callback(synthetic):
    birds, boxes, descs, pairs, res = synthetic
    calls = []

    def identity(e, m):  # every member "looks like" the exemplar image: every SSIM is 1
        calls.append((e, m))
        return birds.images[e]

    flat = find_summaries(birds.images, boxes, descs, pairs, warp_member=identity)
    assert [c.exemplar_index for c in flat.clusters] == [c.exemplar_index for c in res.clusters]
    assert len(calls) == sum(len(c.images) - 1 for c in flat.clusters)
    assert flat.reference == pytest.approx(1.0)
    assert all(c.kept == (len(c.images) > 1) for c in flat.clusters)
    with pytest.raises(ValueError, match="exemplar image"):
        find_summaries(birds.images, boxes, descs, pairs, warp_member=lambda e, m: birds.images[m][:10])


def test_find_summaries_reports_why_nothing(synthetic):
    birds, boxes, descs, _, _ = synthetic
    imgs, masks = birds.images, birds.masks

    def run(k, masks_k, boxes_k=None, descs_k=None, config=None):
        b = boxes[:k] if boxes_k is None else boxes_k
        d = descs[:k] if descs_k is None else descs_k
        return find_summaries(imgs[:k], b, d, match_class(masks_k, b, d), config)

    one = run(1, masks[:1])
    assert "at least 2 images" in one.reason and one.summaries == [] and one.counts["images"] == 1
    none = run(3, [np.zeros_like(m) for m in masks[:3]])
    assert "no valid proposal" in none.reason and none.counts["valid"] == 0
    json.dumps(none.to_dict())
    lonely = run(3, [masks[0]] + [np.zeros_like(m) for m in masks[1:3]])
    assert "only one image" in lonely.reason and lonely.counts["valid"] > 0
    no_boxes = run(3, masks[:3], [boxes[0][:20], boxes[1][:20], boxes[2][:0]],
                   [descs[0][:20], descs[1][:20], descs[2][:0]])
    assert no_boxes.counts["proposals"] == 40 and no_boxes.kept[2].size == 0
    assert all(2 not in cl.images for cl in no_boxes.clusters)
    stuck = run(2, masks[:2], [b[:20] for b in boxes[:2]], [d[:20] for d in descs[:2]],
                ClusterConfig(max_iter=2, convergence_iter=1))
    assert "did not converge" in stuck.reason and stuck.ap_converged is False and stuck.clusters == []


def test_find_summaries_bad_input(synthetic):
    birds, boxes, descs, pairs, _ = synthetic
    imgs = birds.images
    with pytest.raises(ValueError, match="one entry per image"):
        find_summaries(imgs, boxes[:2], descs, pairs)
    with pytest.raises(ValueError, match="uint8"):
        find_summaries([im.astype(np.float32) for im in imgs], boxes, descs, pairs)
    with pytest.raises(ValueError, match="descriptors"):
        find_summaries(imgs, boxes, [descs[0][:3]] + descs[1:], pairs)
    with pytest.raises(ValueError, match="stage-4 result of these images"):
        find_summaries(imgs[:3], boxes[:3], descs[:3], pairs)
    no_blocks = AllPairsResult(pairs.method, pairs.sizes, pairs.rows, None, pairs.topk, pairs.topk_scores,
                               pairs.topk_image, pairs.topk_index)
    with pytest.raises(ValueError, match="blocks"):
        find_summaries(imgs, boxes, descs, no_blocks)
    with pytest.raises(ValueError, match="ClusterConfig"):
        find_summaries(imgs, boxes, descs, pairs, config={"damping": 0.9})


def test_find_summaries_on_real_photos(data_dir):
    imgs, masks = albatross_thumbnails(data_dir, 5)
    boxes, descs, pairs = _stage4(imgs, masks)
    check_result(find_summaries(imgs, boxes, descs, pairs), imgs, boxes, pairs, ClusterConfig())

"""Stages 4-5 in bounded memory: blocks streamed to the stored file, float32 statistics, no float64 copies.

The stored (streamed) stage-4 result must answer exactly like the in-memory
construction it replaces, and affinity propagation like the float64 version
it replaces (kept here verbatim as ``old_affinity_clusters``).
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile

import numpy as np
import pytest

from vsum.clusters import ClusterConfig, affinity_clusters, cluster_members, find_summaries, similarity_matrix
from vsum.clusters.steps import AffinityResult
from vsum.features import DESC_LENGTH, describe
from vsum.pairs import AllPairsResult, all_pairs, match_class
from vsum.pairs_file import StoredBlocks
from vsum.proposals import selective_search

from helpers import albatross_thumbnails, random_boxes, require_data
from synthetic import synthetic_class


def random_inputs(seed, sizes):
    """Boxes and descriptors of len(sizes) images of 128 x 128 px with the given proposal counts."""
    rng = np.random.default_rng(seed)
    boxes = [random_boxes(rng, n, 128, 128, min_side=8, max_side=64) for n in sizes]
    descs = [(rng.random((n, DESC_LENGTH)) * 0.3).astype(np.float32) for n in sizes]
    return boxes, descs


def old_affinity_clusters(S, config=None) -> AffinityResult:
    """Step 4 as it was before the float32 statistics (float64 copies of S; the reference)."""
    from sklearn.cluster import AffinityPropagation
    from sklearn.exceptions import ConvergenceWarning

    cfg = config or ClusterConfig()
    s = np.asarray(S, dtype=np.float64)
    r = len(s)
    if r == 1:
        return AffinityResult(np.zeros(1, np.int64), np.zeros(1, np.int64), 0.0, float(s[0, 0]), True, 0, "one")
    off = s[~np.eye(len(s), dtype=bool)]
    m = float(off.max())
    shifted = s - m
    pref = float(cfg.preference_factor * np.median(off - m))
    if off.min() == off.max():
        return AffinityResult(np.zeros(r, np.int64), np.zeros(1, np.int64), pref, m, True, 0, "equal")
    np.fill_diagonal(shifted, pref)
    ap = AffinityPropagation(affinity="precomputed", damping=float(cfg.damping), max_iter=int(cfg.max_iter),
                             convergence_iter=int(cfg.convergence_iter), preference=pref,
                             random_state=int(cfg.random_state))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ap.fit(shifted)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return AffinityResult(np.asarray(ap.labels_, np.int64), np.asarray(ap.cluster_centers_indices_, np.int64),
                          pref, m, converged, int(ap.n_iter_))


def assert_same_affinity(new: AffinityResult, old: AffinityResult):
    np.testing.assert_array_equal(new.labels, old.labels)
    np.testing.assert_array_equal(new.exemplars, old.exemplars)
    assert (new.preference, new.offset, new.n_iter, new.converged) == (old.preference, old.offset, old.n_iter,
                                                                       old.converged)


def assert_same_pairs(a: AllPairsResult, b: AllPairsResult):
    assert list(a.blocks) == list(b.blocks)
    for key in a.blocks:
        np.testing.assert_array_equal(a.blocks[key], b.blocks[key])
        assert b.blocks[key].dtype == np.float32
    for i in range(a.n_images):
        for name in ("rows", "topk_scores", "topk_image", "topk_index"):
            np.testing.assert_array_equal(getattr(a, name)[i], getattr(b, name)[i])
    assert (a.method, a.order, a.topk, a.diagonal, a.ridge, a.pairs) == (b.method, b.order, b.topk, b.diagonal,
                                                                         b.ridge, b.pairs)


# --------------------------------------------------------------------------- stage 4: the stored blocks


@pytest.mark.parametrize("diagonal", [True, False])
def test_streamed_blocks_equal_the_in_memory_ones(tmp_path, diagonal):
    boxes, descs = random_inputs(11, [12, 9, 15, 0, 7])
    rows = [np.arange(0, 12, 2), np.array([1, 3], np.int64), np.arange(15), np.zeros(0, np.int64), np.arange(7)]
    memory = all_pairs(boxes, descs, rows=rows, topk=6, diagonal=diagonal)
    stored = all_pairs(boxes, descs, rows=rows, topk=6, diagonal=diagonal, store=tmp_path / "s.npz")
    assert isinstance(stored.blocks, StoredBlocks) and isinstance(memory.blocks, dict)
    assert_same_pairs(memory, stored)
    np.testing.assert_array_equal(memory.similarity(), stored.similarity())
    assert os.listdir(tmp_path) == ["s.npz"]  # the temporary file was renamed into place
    with zipfile.ZipFile(tmp_path / "s.npz") as zf:  # stored, not deflated: blocks are read at an offset
        assert zf.infolist()[0].filename == "blocks.npy"
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    block = stored.blocks[(0, 2)]
    block[:] = -1  # a fresh array per lookup: the stored block is untouched
    np.testing.assert_array_equal(stored.blocks[(0, 2)], memory.blocks[(0, 2)])
    assert (1, 0) not in stored.blocks and (0, 1) in stored.blocks and len(stored.blocks) == len(memory.blocks)


def test_stored_result_survives_save_load_and_mismatch(tmp_path):
    boxes, descs = random_inputs(12, [10, 14, 8])
    rows = [np.arange(0, 10, 3), np.arange(14), np.array([2, 5, 7], np.int64)]
    path = tmp_path / "similarity.npz"
    memory = all_pairs(boxes, descs, rows=rows, topk=5, order="parallel")
    stored = all_pairs(boxes, descs, rows=rows, topk=5, order="parallel", store=path)
    back = AllPairsResult.load(path)
    assert isinstance(back.blocks, StoredBlocks)
    assert_same_pairs(memory, back)
    assert back.seconds == stored.seconds and back.stats is None
    same = {"method": "lom", "order": "parallel", "topk": 5, "ridge": 0.01, "rows": rows}
    assert back.mismatch(**same) is None
    assert back.mismatch(**{**same, "order": "sequential"}) == "it was made with order 'parallel', not 'sequential'"
    assert "rows of image 2" in back.mismatch(**{**same, "rows": [rows[0], rows[1], np.arange(8)]})
    assert "topk" in back.mismatch(**{**same, "topk": 6})
    # saving onto its own file is a no-op; elsewhere it copies block by block
    before = path.stat().st_mtime_ns
    back.save(path)
    assert path.stat().st_mtime_ns == before
    back.save(tmp_path / "copy.npz")
    assert_same_pairs(memory, AllPairsResult.load(tmp_path / "copy.npz"))
    # the in-memory result saves to the same bytes as the streamed one, but for its timing
    memory.seconds = stored.seconds
    memory.save(tmp_path / "memory.npz")
    assert (tmp_path / "memory.npz").read_bytes() == path.read_bytes()
    # a result replaced on disk still reads its own blocks (the open handle keeps the old file)
    all_pairs(boxes, descs, rows=[rows[0], rows[1], np.arange(8)], topk=5, order="parallel", store=path)
    np.testing.assert_array_equal(back.blocks[(2, 2)], memory.blocks[(2, 2)])
    assert AllPairsResult.load(path).blocks[(2, 2)].shape == (8, 8)


def test_stored_file_is_atomic_and_checked(tmp_path):
    boxes, descs = random_inputs(13, [9, 11, 6])
    path = tmp_path / "similarity.npz"
    all_pairs(boxes, descs, topk=4, store=path)
    good = path.read_bytes()

    def fail(i, j, conf):
        if (i, j) == (1, 1):
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        all_pairs(boxes, descs, topk=4, store=path, on_pair=fail)
    assert os.listdir(tmp_path) == ["similarity.npz"] and path.read_bytes() == good
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="not a stored all-pairs result"):
        AllPairsResult.load(path)
    no_blocks = all_pairs(boxes, descs, topk=4, blocks=False, store=path)
    assert no_blocks.blocks is None and AllPairsResult.load(path).blocks is None


def test_format_1_files_still_load(tmp_path):
    boxes, descs = random_inputs(14, [6, 5])
    res = all_pairs(boxes, descs, topk=3)
    arrays = {"format": np.array(1), "method": np.array("lom"), "order": np.array("sequential"),
              "topk": np.array(3), "diagonal": np.array(True), "ridge": np.array(0.01), "stats": np.array(""),
              "sizes": res.sizes, "has_blocks": np.array(True), "pairs": np.array(3), "seconds": np.array(1.0)}
    for i in range(2):
        arrays |= {f"rows_{i}": res.rows[i], f"topk_scores_{i}": res.topk_scores[i],
                   f"topk_image_{i}": res.topk_image[i], f"topk_index_{i}": res.topk_index[i]}
    arrays |= {f"block_{i}_{j}": b for (i, j), b in res.blocks.items()}
    np.savez(tmp_path / "old.npz", **arrays)
    back = AllPairsResult.load(tmp_path / "old.npz")
    assert isinstance(back.blocks, dict)
    assert_same_pairs(res, back)


# --------------------------------------------------------------------------- stage 5: float32, no copies


@pytest.mark.parametrize("size", [2, 3, 40, 300])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_affinity_clusters_equals_the_float64_version(size, dtype):
    rng = np.random.default_rng(size)
    s = rng.gamma(1.0, 1.0, (size, size)) ** 3 * 10
    s = s.astype(dtype) if dtype != np.int64 else np.round(s).astype(np.int64)  # integers: many ties
    assert_same_affinity(affinity_clusters(s), old_affinity_clusters(s))
    cfg = ClusterConfig(preference_factor=0.7, damping=0.6)
    assert_same_affinity(affinity_clusters(s, cfg), old_affinity_clusters(s, cfg))
    if size > 2:
        s[~np.eye(size, dtype=bool)] = 3  # all equal: the degenerate case
        assert_same_affinity(affinity_clusters(s), old_affinity_clusters(s))


def test_cluster_members_reads_float32_as_float64():
    rng = np.random.default_rng(3)
    s = rng.random((30, 30)).astype(np.float32)
    s[:, 4] = s[0, 4]  # ties broken by row
    labels, image = rng.integers(0, 2, 30), rng.integers(0, 6, 30)
    for e in (4, 7):
        labels[e] = 1
        m32, sim32 = cluster_members(s, labels, image, e, 5)
        m64, sim64 = cluster_members(s.astype(np.float64), labels, image, e, 5)
        np.testing.assert_array_equal(m32, m64)
        np.testing.assert_array_equal(sim32, sim64)
        assert sim32.dtype == np.float64


# --------------------------------------------------------------------------- parity of stages 4-5


def _parity(tmp_path, images, masks):
    """Stages 4-5 with the streamed file vs the in-memory blocks: bit-identical S, identical clusters."""
    boxes = [selective_search(a, num=100)[0] for a in images]
    descs = [describe(a, b) for a, b in zip(images, boxes)]
    memory = match_class(masks, boxes, descs)
    stored = match_class(masks, boxes, descs, store=tmp_path / "similarity.npz")
    assert_same_pairs(memory, stored)
    loaded = AllPairsResult.load(tmp_path / "similarity.npz")
    results = [find_summaries(images, boxes, descs, p) for p in (memory, stored, loaded)]
    dicts = [json.dumps({k: v for k, v in r.to_dict().items() if k != "timings"}, sort_keys=True) for r in results]
    assert dicts[0] == dicts[1] == dicts[2]
    assert results[0].counts["clusters"] >= 1
    kept = results[0].kept
    s_mem, image, index = similarity_matrix(memory, kept)
    s_sto, image2, index2 = similarity_matrix(stored, kept)
    assert s_mem.dtype == s_sto.dtype == np.float32 and s_mem.tobytes() == s_sto.tobytes()
    np.testing.assert_array_equal(image, image2)
    np.testing.assert_array_equal(index, index2)
    assert_same_affinity(affinity_clusters(s_sto), old_affinity_clusters(s_mem))
    return results[0]


def test_parity_on_a_synthetic_class(tmp_path):
    birds = synthetic_class(6, 128, seed=0)
    res = _parity(tmp_path, birds.images, birds.masks)
    assert res.counts["summaries"] >= 1


def test_parity_on_real_photos(tmp_path, data_dir):
    imgs, masks = albatross_thumbnails(data_dir, 6)
    _parity(tmp_path, imgs, masks)


def test_stored_blocks_without_preadv(tmp_path, monkeypatch):
    boxes, descs = random_inputs(15, [7, 9])
    memory = all_pairs(boxes, descs, topk=3)
    all_pairs(boxes, descs, topk=3, store=tmp_path / "s.npz")
    monkeypatch.delattr(os, "preadv")  # platforms without it: seek and read under a lock
    assert_same_pairs(memory, AllPairsResult.load(tmp_path / "s.npz"))

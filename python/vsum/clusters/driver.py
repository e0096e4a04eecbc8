"""Stage 5 for a class: :func:`find_summaries` chains the steps and warps the members."""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np

from .._arrays import as_image
from ..features import as_proposals, whiten, whitened_scores
from ..flow import pair_flow, warp
from .config import ClusterConfig
from .quality import cluster_score, crop, member_ssim, select_summaries
from .result import Cluster, SummaryResult
from .steps import (
    affinity_clusters,
    cluster_members,
    prune_redundant,
    pruning_scores,
    similarity_matrix,
)


class _MemberWarps:
    """``warps(e, m)``: image m warped onto image e's grid by the dense flow e -> m.

    The flow is stage 4's matcher (``pairs.method``, ``pairs.order``) over all
    proposals of both images, on their whitened appearance (``pairs.ridge``),
    then :func:`vsum.flow.dense_flow` with ``fill``.  Image e's whitened
    descriptors and its warps are kept while consecutive calls share e
    (:func:`find_summaries` visits the clusters grouped by exemplar image).
    """

    def __init__(self, images, boxes, descriptors, pairs, fill: str):
        self.images, self.boxes, self.descriptors, self.pairs, self.fill = images, boxes, descriptors, pairs, fill
        self.exemplar: int | None = None
        self.whitened = None
        self.warped: dict[int, np.ndarray] = {}

    def __call__(self, e: int, m: int) -> np.ndarray:
        if self.exemplar != e:
            self.exemplar, self.warped = e, {}
            self.whitened = whiten(self.descriptors[e], ridge=self.pairs.ridge, stats_path=self.pairs.stats)
        if m not in self.warped:
            w, bias = self.whitened
            app = whitened_scores(w, bias, self.descriptors[m])
            shape = np.maximum(self.images[e].shape[:2], self.images[m].shape[:2])
            flow = pair_flow(self.images[e], self.images[m], self.boxes[e], self.boxes[m], app,
                             method=self.pairs.method, order=self.pairs.order, fill=self.fill, image_shape=shape)
            self.warped[m] = warp(self.images[m], *flow)
        return self.warped[m]


def _check_inputs(images, boxes, descriptors, pairs) -> tuple[list, list, list]:
    lists = {"images": images, "boxes": boxes, "descriptors": descriptors}
    for name, x in lists.items():
        if isinstance(x, np.ndarray) or not isinstance(x, Sequence):
            raise ValueError(f"{name} must be a list with one entry per image; got {type(x).__name__}")
    n = len(images)
    for name, x in lists.items():
        if len(x) != n:
            raise ValueError(f"images, boxes and descriptors need one entry per image; {name} has {len(x)}, "
                             f"images has {n}")
    imgs = [as_image(images[i], f"images[{i}]") for i in range(n)]
    bxs, descs = as_proposals(boxes, descriptors)
    if pairs.n_images != n or [len(b) for b in bxs] != [int(v) for v in pairs.sizes]:
        raise ValueError(f"pairs must be the stage-4 result of these images: it covers {pairs.n_images} images "
                         f"with {[int(v) for v in pairs.sizes]} proposals; got {n} with {[len(b) for b in bxs]}")
    if pairs.blocks is None or not pairs.diagonal:
        raise ValueError("pairs must hold the blocks and the diagonal pairs: all_pairs(..., blocks=True, "
                         "diagonal=True), as vsum.pairs.match_class computes them")
    return imgs, bxs, descs


def find_summaries(images, boxes, descriptors, pairs, config: ClusterConfig | None = None, *,
                   warp_member: Callable | None = None) -> SummaryResult:
    """Stage 5 for the images of one class: valid proposals and their flow -> visual summaries.

    Parameters
    ----------
    images : list of N (H_i, W_i, 3) uint8 arrays
        The class's images (RGB, 0-255), each at the resolution of its boxes.
    boxes : list of N (n_i, 4) int arrays
        Proposals of each image (:func:`vsum.proposals.selective_search`),
        inclusive corners.
    descriptors : list of N (n_i, 1984) float arrays
        Their descriptors (:func:`vsum.features.describe`), for the warps of
        step 6.
    pairs : vsum.pairs.AllPairsResult
        Stage 4 over the valid proposals (:func:`vsum.pairs.match_class`):
        ``rows`` are the valid proposals (step 1), blocks and diagonal pairs
        included; its top-k lists give the pruning scores and its matcher,
        order and ridge the warps.
    config : ClusterConfig, optional
        Parameters (published defaults).
    warp_member : callable, optional
        ``warp_member(e, m) -> image m on image e's grid`` ((H_e, W_e, 3));
        default: the dense flow ``e -> m`` of stage 4's matcher over all
        proposals of both images (:func:`vsum.flow.pair_flow`) and
        :func:`vsum.flow.warp`, computed once per image pair.

    Returns
    -------
    SummaryResult
        Counts, per-image valid/kept proposals, every cluster with its
        members, similarities, aligned crops, SSIMs and kept flags, and
        ``summaries``.  When no summary can be made, ``reason`` says why and
        the later fields are empty: fewer than 2 images; no valid proposal;
        valid proposals in only one image; affinity propagation without a
        cluster; no cluster with members from 2 images; every cluster
        rejected by the rules.

    Raises
    ------
    ValueError
        Malformed input: lists of different lengths, bad images, boxes or
        descriptors, a stage-4 result of other images or without blocks, a
        bad config, a ``warp_member`` result of the wrong size.
    """
    cfg = config if config is not None else ClusterConfig()
    if not isinstance(cfg, ClusterConfig):
        raise ValueError(f"config must be a ClusterConfig; got {type(cfg).__name__}")
    imgs, bxs, descs = _check_inputs(images, boxes, descriptors, pairs)
    n = len(imgs)
    timings: dict = {}

    t0 = time.perf_counter()
    valid = []
    for i, b in enumerate(bxs):
        flags = np.zeros(len(b), bool)
        flags[np.asarray(pairs.rows[i], np.int64)] = True
        valid.append(flags)
    timings["valid"] = time.perf_counter() - t0
    timings["pairs"] = float(pairs.seconds)
    counts = {"images": n, "proposals": int(sum(len(b) for b in bxs)), "valid": int(sum(v.sum() for v in valid)),
              "kept": 0, "clusters": 0, "clusters_scored": 0, "clusters_kept": 0, "summaries": 0}
    result = SummaryResult(cfg, n, valid, [np.full(len(b), np.nan) for b in bxs],
                           [np.zeros(0, np.int64) for _ in range(n)], counts=counts, timings=timings)
    if n < 2:
        result.reason = f"stage 5 needs at least 2 images; got {n}"
        return result
    if counts["valid"] == 0:
        result.reason = "no valid proposal: no box of any image is mostly inside its mask"
        return result

    t0 = time.perf_counter()
    for i in range(n):
        result.scores[i][pairs.rows[i]] = pruning_scores(pairs.topk_scores[i], pairs.topk_image[i])
        result.kept[i] = prune_redundant(bxs[i], valid[i], np.nan_to_num(result.scores[i]),
                                         cfg.redundancy_overlap, cfg.redundancy_area_ratio)
    counts["kept"] = int(sum(len(k) for k in result.kept))
    timings["prune"] = time.perf_counter() - t0
    if sum(len(k) > 0 for k in result.kept) < 2:
        result.reason = "valid proposals in only one image: no cross-image cluster possible"
        return result

    t0 = time.perf_counter()
    s, image, index = similarity_matrix(pairs, result.kept)
    aff = affinity_clusters(s, cfg)
    timings["cluster"] = time.perf_counter() - t0
    result.ap_converged, result.ap_iterations, result.preference = aff.converged, aff.n_iter, aff.preference
    if aff.note:
        result.notes.append(aff.note)
    counts["clusters"] = aff.n_clusters
    if aff.n_clusters == 0:
        result.reason = aff.note
        return result

    t0 = time.perf_counter()
    warps = warp_member if warp_member is not None else _MemberWarps(imgs, bxs, descs, pairs, cfg.flow_fill)
    ssims, scores = [], []
    for e in np.sort(aff.exemplars):
        members, sim = cluster_members(s, aff.labels, image, int(e), cfg.max_members)
        e_img, e_box = int(image[e]), bxs[int(image[e])][int(index[e])]
        crops = [crop(imgs[e_img], e_box)]
        for p in members[1:]:
            warped = np.asarray(warps(e_img, int(image[p])))
            if warped.shape[:2] != imgs[e_img].shape[:2]:
                raise ValueError(f"warp_member({e_img}, {int(image[p])}) returned shape {warped.shape}; "
                                 f"expected the exemplar image's {imgs[e_img].shape[:2]}")
            crops.append(crop(warped, e_box))
        ssim = member_ssim(crops, win_size=cfg.ssim_win_size, gaussian_weights=cfg.ssim_gaussian_weights)
        ssims.append(ssim)
        scores.append(cluster_score(ssim))
        result.clusters.append(Cluster(
            exemplar_image=e_img, exemplar_index=int(index[e]), size=int((aff.labels == aff.labels[e]).sum()),
            images=image[members], indices=index[members],
            boxes=np.stack([bxs[int(image[p])][int(index[p])] for p in members]).astype(np.int32),
            similarity=sim, ssim=ssim, score=scores[-1], crops=crops))
    reference, cl_kept, mem_kept = select_summaries(scores, ssims, cfg)
    timings["quality"] = time.perf_counter() - t0
    result.reference = reference
    for c, k, mk in zip(result.clusters, cl_kept, mem_kept):
        c.kept, c.member_kept = bool(k), mk
    counts["clusters_scored"] = int(np.sum(~np.isnan(scores)))
    counts["clusters_kept"] = int(cl_kept.sum())
    counts["summaries"] = len(result.summaries)
    if counts["clusters_scored"] == 0:
        result.reason = "no cluster has members from two images"
    elif counts["summaries"] == 0:
        result.reason = "every cluster was rejected by the SSIM rules"
    return result

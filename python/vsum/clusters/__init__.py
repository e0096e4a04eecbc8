"""Stage 5: from masks, proposals and proposal flow to visual summaries.

The steps of ``docs/method.md``, stage 5, as plain functions (NumPy in, NumPy
out) and one driver, :func:`find_summaries`:

1. valid proposals: computed before stage 4, which keeps only their rows
   (:func:`vsum.pairs.valid_rows`); here they are ``pairs.rows``;
2. :func:`pruning_scores` / :func:`prune_redundant` - greedy per-image
   redundancy pruning;
3. :func:`similarity_matrix` - LOM similarities of the kept proposals;
4. :func:`affinity_clusters` - affinity propagation on ``S - M``;
5. :func:`cluster_members` - one member per image, top 10 by similarity;
6. :func:`member_ssim`, :func:`cluster_score`, :func:`select_summaries` -
   SSIM of the members' exemplar-box crops after a dense warp onto the
   exemplar image (:func:`vsum.flow.pair_flow`, :func:`vsum.flow.warp`), the
   0.9 x reference cluster rule and the 60 % member rule.

The modules: :mod:`~vsum.clusters.config` (:class:`ClusterConfig`),
:mod:`~vsum.clusters.steps` (steps 2-5), :mod:`~vsum.clusters.quality` (step
6), :mod:`~vsum.clusters.result` (:class:`Cluster`, :class:`SummaryResult`)
and :mod:`~vsum.clusters.driver` (:func:`find_summaries`); everything public
is importable from :mod:`vsum.clusters`.  Step 7 (the pictures) is
:mod:`vsum.render`; the run directory and its cache are :mod:`vsum.pipeline`.

Conventions: images are ``(H, W, 3)`` uint8 RGB on the 0-255 scale; boxes
are ``(x1, y1, x2, y2)`` with inclusive pixel corners (:mod:`vsum.boxes`); a
proposal is named by ``(image index, row of that image's boxes)``.  Importing
this module does not import torch.
"""

from .config import ClusterConfig
from .driver import find_summaries
from .quality import cluster_score, member_ssim, select_summaries, to_grey
from .result import Cluster, SummaryResult
from .steps import (
                    AffinityResult,
                    affinity_clusters,
                    cluster_members,
                    prune_redundant,
                    pruning_scores,
                    similarity_matrix,
)

__all__ = [
    "AffinityResult",
    "Cluster",
    "ClusterConfig",
    "SummaryResult",
    "affinity_clusters",
    "cluster_members",
    "cluster_score",
    "find_summaries",
    "member_ssim",
    "prune_redundant",
    "pruning_scores",
    "select_summaries",
    "similarity_matrix",
    "to_grey",
]

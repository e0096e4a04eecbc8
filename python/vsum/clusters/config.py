"""The configuration of stage 5 (:class:`ClusterConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._config import StageConfig
from ..flow import FILLS


@dataclass(frozen=True)
class ClusterConfig(StageConfig):
    """Parameters of stage 5; the defaults are the published ones (``docs/method.md``).

    Steps 1 and 2's top-k come from stage 4 (:class:`vsum.pairs.PairsConfig`:
    ``valid_coverage``, ``topk``), as do the matcher and LOM order of the
    warps of step 6 (recorded in the :class:`vsum.pairs.AllPairsResult`).

    Attributes
    ----------
    redundancy_overlap : float, default 0.5
        Step 2: two valid proposals of one image are redundant when
        ``|A n B| / min(|A|, |B|) >= redundancy_overlap`` ...
    redundancy_area_ratio : float, default 2.0
        ... and ``max(|A|, |B|) / min(|A|, |B|) < redundancy_area_ratio``.
    preference_factor : float, default 1.3
        Step 4: affinity propagation preference = ``preference_factor *
        median(S - M)`` (off-diagonal entries); the main knob for the number
        of clusters (larger = fewer clusters, since the median is <= 0).
    damping, max_iter, convergence_iter, random_state
        Step 4: ``sklearn.cluster.AffinityPropagation`` settings (0.9, 1000,
        100, 0).
    max_members : int, default 10
        Step 5: members kept per cluster, the exemplar included.
    cluster_keep_factor : float, default 0.9
        Step 6: a cluster is kept when its score >= ``cluster_keep_factor *
        reference``.
    member_ssim_fraction : float, default 0.6
        Step 6: a member of a kept cluster is kept when *fewer than* this
        fraction of its SSIMs against the other members fall under the
        reference.
    ssim_win_size : int, default 7
        ``skimage.metrics.structural_similarity`` window (odd; shrunk to the
        largest odd size that fits a smaller crop).
    ssim_gaussian_weights : bool, default False
        Gaussian-weighted SSIM window (sigma 1.5, MATLAB's ``ssim``) instead
        of scikit-image's default uniform window.
    flow_fill : {"fgs", "nearest", "sd"}, default "fgs"
        Fill of the dense flows of step 6 (:func:`vsum.flow.dense_flow`).
    """

    redundancy_overlap: float = 0.5
    redundancy_area_ratio: float = 2.0
    preference_factor: float = 1.3
    damping: float = 0.9
    max_iter: int = 1000
    convergence_iter: int = 100
    random_state: int = 0
    max_members: int = 10
    cluster_keep_factor: float = 0.9
    member_ssim_fraction: float = 0.6
    ssim_win_size: int = 7
    ssim_gaussian_weights: bool = False
    flow_fill: str = "fgs"

    def __post_init__(self):
        def need(ok: bool, what: str):
            if not ok:
                raise ValueError(f"ClusterConfig: {what}")

        def number(v) -> bool:
            return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)

        def integer(v) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        for name in ("redundancy_overlap", "member_ssim_fraction"):
            v = getattr(self, name)
            need(number(v) and 0.0 <= v <= 1.0, f"{name} must be a number in [0, 1]; got {v!r}")
        for name in ("redundancy_area_ratio", "preference_factor", "cluster_keep_factor"):
            v = getattr(self, name)
            need(number(v) and np.isfinite(v) and v >= 0, f"{name} must be a finite number >= 0; got {v!r}")
        need(number(self.damping) and 0.5 <= self.damping < 1.0, f"damping must be in [0.5, 1); got {self.damping!r}")
        for name in ("max_iter", "convergence_iter", "max_members"):
            v = getattr(self, name)
            need(integer(v) and v >= 1, f"{name} must be an integer >= 1; got {v!r}")
        need(integer(self.random_state), f"random_state must be an integer; got {self.random_state!r}")
        need(integer(self.ssim_win_size) and self.ssim_win_size >= 3 and self.ssim_win_size % 2 == 1,
             f"ssim_win_size must be an odd integer >= 3; got {self.ssim_win_size!r}")
        need(isinstance(self.ssim_gaussian_weights, bool),
             f"ssim_gaussian_weights must be a bool; got {self.ssim_gaussian_weights!r}")
        need(self.flow_fill in FILLS, f"flow_fill must be one of {FILLS}; got {self.flow_fill!r}")

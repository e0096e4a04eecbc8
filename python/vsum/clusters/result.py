"""What stage 5 produces: :class:`Cluster` and :class:`SummaryResult`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..io import json_float
from .config import ClusterConfig


@dataclass(eq=False)
class Cluster:
    """One cluster of proposals after steps 5-6.

    Attributes
    ----------
    exemplar_image, exemplar_index : int
        The exemplar proposal (image, row of that image's boxes).
    size : int
        Proposals affinity propagation put in the cluster (before step 5).
    images, indices : (m,) ndarray of int64
        The members (exemplar first): image and proposal index.
    boxes : (m, 4) ndarray of int32
        Their boxes, in their own image's pixels.
    similarity : (m,) ndarray of float64
        ``S[member, exemplar]`` (the exemplar's own: its self-match score).
    ssim : (m, m) ndarray of float64
        SSIM of the members' aligned crops.
    score : float
        Median off-diagonal SSIM (NaN for a single member).
    crops : list of m (h, w, 3) ndarrays of uint8
        The aligned crops: the exemplar's box cut from the exemplar image and
        from each other member's image warped onto it (not in :meth:`to_dict`).
    kept : bool
        Cluster rule: ``score >= cluster_keep_factor * reference``.
    member_kept : (m,) ndarray of bool
        Member rule (all False when the cluster is not kept).
    """

    exemplar_image: int
    exemplar_index: int
    size: int
    images: np.ndarray
    indices: np.ndarray
    boxes: np.ndarray
    similarity: np.ndarray
    ssim: np.ndarray
    score: float
    crops: list = field(default_factory=list, repr=False)
    kept: bool = False
    member_kept: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    @property
    def is_summary(self) -> bool:
        """A visual summary: a kept cluster with at least one kept member."""
        return bool(self.kept and self.member_kept.any())

    def median_ssim(self, p: int) -> float | None:
        """Member ``p``'s median SSIM against the other members (6 decimals; None for a lone member)."""
        others = np.delete(self.ssim[p], p)
        return json_float(np.median(others), 6) if len(others) else None

    def to_dict(self) -> dict:
        """JSON-serialisable form (lists and floats; NaN becomes None)."""
        return {
            "exemplar": [self.exemplar_image, self.exemplar_index],
            "size": self.size,
            "members": [
                {"image": int(i), "index": int(x), "box": [int(v) for v in b], "similarity": json_float(s),
                 "kept": bool(k)}
                for i, x, b, s, k in zip(self.images, self.indices, self.boxes, self.similarity, self.member_kept)
            ],
            "ssim": [[json_float(v) for v in row] for row in self.ssim],
            "score": json_float(self.score),
            "kept": bool(self.kept),
        }


@dataclass(eq=False)
class SummaryResult:
    """Outcome of :func:`find_summaries`.

    Attributes
    ----------
    config : ClusterConfig
    n_images : int
    valid : list of N (n_i,) ndarrays of bool
        Step 1 flags per image (the rows of the stage-4 result).
    scores : list of N (n_i,) ndarrays of float64
        Pruning score (mean top-k LOM against the other images) of each valid
        proposal; NaN for the invalid ones.
    kept : list of N (k_i,) ndarrays of int64
        Proposals kept by step 2, per image, ascending.
    clusters : list of Cluster
        Every cluster of step 4 (steps 5-6 applied), in the order of their
        exemplars' rows in S.
    reference : float
        Median cluster score (NaN when no cluster has two members).
    counts : dict of str to int
        ``images``, ``proposals``, ``valid``, ``kept``, ``clusters``,
        ``clusters_scored`` (>= 2 members), ``clusters_kept``, ``summaries``.
    timings : dict of str to float
        Wall seconds of ``"valid"``, ``"pairs"`` (stage 4, as recorded in its
        result), ``"prune"``, ``"cluster"``, ``"quality"`` (flows, warps, SSIM).
    ap_converged : bool or None
        Whether affinity propagation converged (None when it did not run).
    ap_iterations : int
    preference : float or None
        Affinity propagation preference used.
    reason : str or None
        Why there are no summaries (None when there are some).
    notes : list of str
        Degenerate cases met on the way (e.g. non-convergence).
    """

    config: ClusterConfig
    n_images: int
    valid: list
    scores: list
    kept: list
    clusters: list = field(default_factory=list)
    reference: float = float("nan")
    counts: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    ap_converged: bool | None = None
    ap_iterations: int = 0
    preference: float | None = None
    reason: str | None = None
    notes: list = field(default_factory=list)

    @property
    def summaries(self) -> list:
        """The visual summaries (:attr:`Cluster.is_summary`), in cluster order."""
        return [c for c in self.clusters if c.is_summary]

    def to_dict(self) -> dict:
        """JSON-serialisable form (for ``clusters.json``); NaN becomes None."""
        return {
            "config": self.config.to_dict(),
            "n_images": self.n_images,
            "counts": dict(self.counts),
            "timings": dict(self.timings),
            "valid": [np.flatnonzero(v).tolist() for v in self.valid],
            "kept": [k.tolist() for k in self.kept],
            "reference": json_float(self.reference),
            "ap_converged": self.ap_converged,
            "ap_iterations": self.ap_iterations,
            "preference": None if self.preference is None else json_float(self.preference),
            "clusters": [c.to_dict() for c in self.clusters],
            "summaries": [k for k, c in enumerate(self.clusters) if c.is_summary],
            "reason": self.reason,
            "notes": list(self.notes),
        }

"""Part consistency of a run's summaries against annotated keypoints (``vsum eval-parts``).

A visual summary is worth something when its members show the same part of
the object.  Given a run folder (:func:`vsum.pipeline.summarize`) and the
class's photos with ``keypoints.json`` (the format of ``vsum eval-flow``),
:func:`evaluate_parts` measures, for each summary:

- which part groups each member's region holds: a group is *held* when one
  of its visible keypoints, mapped into the run's ``S x S`` grid, lies inside
  the member's proposal box (inclusive corners);
- the *dominant* group (held by the most members; ties go to the group listed
  first) and the *consistency*: the share of the summary's members that hold
  it (members of photos without keypoints are left out);
- *chance*: the same consistency when each member is given the keypoints of
  another photo of the class, drawn at random (``draws`` draws, seeded), and
  a permutation p-value ``(1 + #draws at or above the observed) / (1 + draws)``.

Per class: the mean consistency, the mean chance and the distinct dominant
groups.  Part groups come from a ``parts.json`` (``{"keypoints": [names],
"groups": {group: [indices]}}``, as in ``animalpose-dev``); without one each
keypoint is its own part.  The result goes to ``RUN/parts.json``, is listed in
``result.json`` and shown in ``report.html``.

A keypoint ``(x, y)`` of a ``W x H`` photo (origin at the centre of the
top-left pixel) lands at ``((x + 0.5) S / W - 0.5, (y + 0.5) S / H - 0.5)``
on the grid, the photo being resized whole to ``S x S`` as stage 1 does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._config import StageConfig
from .errors import VsumError
from .io import atomic_write_json, display_text, read_image, unique_stems

__all__ = ["PartsConfig", "evaluate_parts", "held_groups", "load_parts"]


@dataclass(frozen=True)
class PartsConfig(StageConfig):
    """Settings of :func:`evaluate_parts`: ``draws`` random reassignments for chance, their ``seed``."""

    draws: int = 200
    seed: int = 0

    def __post_init__(self):
        for name, low in (("draws", 1), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"PartsConfig: {name} must be an integer >= {low}; got {value!r}")


def load_parts(path: str | Path | None, n_points: int) -> dict[str, list[int]]:
    """Part groups ``{name: [keypoint indices]}``: from ``parts.json``, or one group per keypoint.

    Raises
    ------
    VsumError
        The file cannot be read, is not the expected JSON, or names an index
        outside ``0..n_points-1``.
    """
    if path is None:
        return {f"keypoint {k}": [k] for k in range(n_points)}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        groups = data["groups"]
        names = data.get("keypoints")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VsumError(f"--parts {display_text(str(path))}: expected JSON with a 'groups' mapping ({exc})") from None
    if not isinstance(groups, dict) or not groups:
        raise VsumError(f"--parts {display_text(str(path))}: 'groups' must map part names to keypoint indices")
    if names is not None and len(names) != n_points:
        raise VsumError(f"--parts names {len(names)} keypoints; keypoints.json has {n_points} per photo")
    out = {}
    for name, indices in groups.items():
        if not isinstance(indices, list) or not all(isinstance(i, int) and 0 <= i < n_points for i in indices):
            raise VsumError(f"--parts: group {display_text(str(name))!r} must list keypoint indices in 0..{n_points - 1}")
        out[str(name)] = indices
    return out


def held_groups(points: np.ndarray, box, groups: dict[str, list[int]]) -> list[str]:
    """The groups with a visible keypoint inside ``box``.

    Parameters
    ----------
    points : (n_points, 2) float array
        Grid coordinates; NaN where not visible.
    box : sequence of 4 ints
        ``(x1, y1, x2, y2)``, inclusive pixel corners.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    with np.errstate(invalid="ignore"):
        inside = (points[:, 0] >= x1) & (points[:, 0] <= x2) & (points[:, 1] >= y1) & (points[:, 1] <= y2)
    return [name for name, indices in groups.items() if inside[indices].any()]


def _consistency(held: list[list[str]], groups: dict[str, list[int]]) -> tuple[float, str | None]:
    """Share of members holding the dominant group, and that group (None when no member holds any)."""
    counts = {g: sum(g in h for h in held) for g in groups}
    best = max(groups, key=lambda g: counts[g])  # max keeps the first of equal counts
    if not held or counts[best] == 0:
        return 0.0, None
    return counts[best] / len(held), best


def _grid_points(keypoints, side: int) -> dict[str, np.ndarray]:
    """Per photo file name, its keypoints on the run's grid."""
    out = {}
    for path, points in zip(keypoints.paths, keypoints.points):
        height, width = read_image(path).rgb.shape[:2]
        scale = np.array([side / width, side / height])
        out[path.name] = (points + 0.5) * scale - 0.5
    return out


def evaluate_parts(run: str | Path, keypoints_dir: str | Path, parts: str | Path | None = None,
                   config: PartsConfig | None = None) -> dict:
    """Part consistency of the summaries of ``run`` (see the module docstring); writes ``RUN/parts.json``.

    Parameters
    ----------
    run : path-like
        A finished run folder (``result.json``, ``config.json``).
    keypoints_dir : path-like
        The class's photos with ``keypoints.json``; photos are matched to the
        run's images by file name.
    parts : path-like, optional
        ``parts.json`` with the part groups.
    config : PartsConfig, optional

    Returns
    -------
    dict
        The content of ``parts.json``: ``summaries`` (per summary: dominant
        group, consistency, chance, p-value, members counted and each
        member's held groups) and ``class`` (mean consistency, mean chance,
        distinct dominant groups).
    """
    from .evaluate import load_keypoint_class
    from .report import write_report

    config = config or PartsConfig()
    run = Path(run)
    try:
        result = json.loads((run / "result.json").read_text(encoding="utf-8"))
        images = [item["name"] for item in json.loads((run / "config.json").read_text(encoding="utf-8"))
                  ["config"]["images"]]
        side = int(result["image_side"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VsumError(f"{display_text(str(run))} is not a finished run folder ({exc})") from None
    keypoints = load_keypoint_class(Path(keypoints_dir))
    groups = load_parts(parts, keypoints.points.shape[1])
    grid = _grid_points(keypoints, side)
    file_of = dict(zip(unique_stems([Path(n) for n in images]), images))
    annotated = sorted(grid)
    rng = np.random.default_rng(config.seed)
    summaries = []
    for entry in result.get("summaries", []):
        members = [(m["image"], m["box"]) for m in entry["members"] if file_of.get(m["image"]) in grid]
        held = [held_groups(grid[file_of[image]], box, groups) for image, box in members]
        consistency, dominant = _consistency(held, groups)
        draws = []
        for _ in range(config.draws if members and len(annotated) > 1 else 0):
            shuffled = []
            for image, box in members:
                others = [name for name in annotated if name != file_of[image]]
                shuffled.append(held_groups(grid[others[rng.integers(len(others))]], box, groups))
            draws.append(_consistency(shuffled, groups)[0])
        chance = float(np.mean(draws)) if draws else None
        p_value = (1 + sum(d >= consistency for d in draws)) / (1 + len(draws)) if draws else None
        summaries.append({"summary": entry["summary"], "members": len(entry["members"]), "counted": len(members),
                          "dominant": dominant, "consistency": round(consistency, 4),
                          "chance": None if chance is None else round(chance, 4),
                          "p_value": None if p_value is None else round(p_value, 4),
                          "held": [{"image": image, "groups": h} for (image, _), h in zip(members, held)]})
    scored = [s for s in summaries if s["counted"]]
    report = {
        "keypoints": display_text(str(Path(keypoints_dir).resolve())),
        "parts": display_text(str(parts)) if parts is not None else None, "groups": groups,
        "config": config.to_dict(), "summaries": summaries,
        "class": {"summaries": len(summaries), "scored": len(scored),
                  "mean_consistency": round(float(np.mean([s["consistency"] for s in scored])), 4) if scored else None,
                  "mean_chance": (round(float(np.mean([s["chance"] for s in scored if s["chance"] is not None])), 4)
                                  if any(s["chance"] is not None for s in scored) else None),
                  "dominant_parts": sorted({s["dominant"] for s in scored if s["dominant"]})},
    }
    atomic_write_json(run / "parts.json", report)
    result.setdefault("outputs", {})["parts"] = "parts.json"
    atomic_write_json(run / "result.json", result)
    write_report(run)
    return report

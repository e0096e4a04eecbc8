"""The tables of a sweep: one row per (model, class, image set) in ``sweep.csv`` and ``sweep.json``.

A row is read from its run folder (``result.json``, ``masks/result.json``
and the stage-1 manifest), never from a worker's memory, so a resumed sweep
and an uninterrupted one write the same rows (the ``seconds_*`` columns
aside, which are measured).  Per model, ``sweep.json`` adds top-1 accuracy
over the sweep, the mean and median summaries per class and total seconds.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from .io import atomic_write_csv, atomic_write_json, json_float

__all__ = ["COLUMNS", "SUMMARY_COLUMNS", "TIMING_COLUMNS", "duplicate_groups", "failed_row", "per_model",
           "row_from_run", "write_tables"]

TIMING_COLUMNS = ("seconds_masks", "seconds_proposals", "seconds_descriptors", "seconds_pairs", "seconds_summaries",
                  "seconds_total")

#: The columns that describe a run's outcome; identical for the same sweep on any backend and worker count.
SUMMARY_COLUMNS = ("images", "images_kept", "skipped_misclassified", "skipped_unreadable", "top1", "proposals_valid",
                   "proposals_kept", "clusters", "summaries", "summaries_5plus", "summaries_merged", "mean_members",
                   "summaries_per_kept_image", "mean_drop", "mean_area", "status")

COLUMNS = ("model", "class", "class_index", "class_name", "image_set", *SUMMARY_COLUMNS[:-1], *TIMING_COLUMNS,
           "status", "error", "run")

#: Two summaries are one part when their members overlap (intersection over the smaller box above this) ...
OVERLAP = 0.5
#: ... on more than this share of the photos both have members on, when they share at least two photos.
OVERLAP_PHOTOS = 0.5


def _duplicates(first: list[dict], second: list[dict]) -> bool:
    """Whether two summaries' members overlap on more than half of the photos they share (at least two)."""
    from .boxes import overlap_min

    boxes_a: dict[str, list] = {}
    boxes_b: dict[str, list] = {}
    for m in first:
        boxes_a.setdefault(m["image"], []).append(m["box"])
    for m in second:
        boxes_b.setdefault(m["image"], []).append(m["box"])
    shared = set(boxes_a) & set(boxes_b)
    if len(shared) < 2:
        return False
    overlapping = sum(bool((overlap_min(boxes_a[p], boxes_b[p]) > OVERLAP).any()) for p in shared)
    return overlapping > OVERLAP_PHOTOS * len(shared)


def duplicate_groups(summaries: list[dict]) -> list[list[int]]:
    """Summaries of ``result.json`` merged into groups of duplicates (connected components), as index lists.

    Two summaries are duplicates when their members overlap (intersection
    over the smaller box > 0.5) on more than half of the photos both have
    members on, and they share at least two photos.
    """
    parent = list(range(len(summaries)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(summaries)):
        for j in range(i + 1, len(summaries)):
            if _duplicates(summaries[i]["members"], summaries[j]["members"]):
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(summaries)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _top1(run: Path) -> float | None:
    """Share of the readable photos whose top-1 class is the target, from the stage-1 manifest."""
    try:
        records = json.loads((run / "stages" / "masks.json").read_text(encoding="utf-8"))["records"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    judged = [r for r in records if r.get("predicted") is not None and r.get("target") is not None]
    return json_float(sum(r["predicted"] == r["target"] for r in judged) / len(judged), 4) if judged else None


def _base(model: str, label: str, index: int | None, name: str | None, image_set: str, run: str) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update({"model": model, "class": label, "class_index": index, "class_name": name, "image_set": image_set,
                "run": run})
    return row


def failed_row(model: str, label: str, index: int | None, name: str | None, image_set: str, run: str, error: str,
               status: str = "failed", images: int | None = None) -> dict:
    """The row of a task that did not finish (``status`` "failed" or "pending"), with the reason."""
    row = _base(model, label, index, name, image_set, run)
    row.update({"status": status, "error": error, "images": images})
    return row


def row_from_run(sweep: Path, model: str, label: str, index: int | None, name: str | None, image_set: str,
                 run: str) -> dict:
    """The row of a finished run, read from ``sweep/run``.

    Raises
    ------
    OSError, ValueError, KeyError
        The run folder holds no readable ``result.json``.
    """
    folder = sweep / run
    result = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    counts, timings = result["counts"], result["timings"]
    row = _base(model, label, index, name, image_set, run)
    reasons = [s.get("reason", "") for s in result.get("skipped", [])]
    misclassified = sum(r.startswith("misclassified") for r in reasons)
    entries = result.get("summaries", [])
    full = result.get("status") != "masks_only"
    row.update({
        "images": counts["images"], "images_kept": counts["images_kept"],
        "skipped_misclassified": misclassified, "skipped_unreadable": len(reasons) - misclassified,
        "top1": _top1(folder),
        "status": result["status"], "error": None if result["status"] != "no_summaries" else result.get("reason"),
    })
    if full:
        kept = counts["images_kept"]
        row.update({
            "proposals_valid": counts.get("valid"), "proposals_kept": counts.get("kept"),
            "clusters": counts.get("clusters"), "summaries": len(entries),
            "summaries_5plus": sum(e.get("images", 0) >= 5 for e in entries),
            "summaries_merged": len(duplicate_groups(entries)),
            "mean_members": json_float(statistics.fmean(len(e["members"]) for e in entries), 3) if entries else None,
            "summaries_per_kept_image": json_float(len(entries) / kept, 4) if kept else None,
        })
    try:
        means = json.loads((folder / "masks" / "result.json").read_text(encoding="utf-8"))["means"].get("sharp") or {}
    except (OSError, ValueError, KeyError, AttributeError):
        means = {}
    row["mean_drop"] = json_float(means["drop"], 4) if means.get("drop") is not None else None
    row["mean_area"] = json_float(means["area"], 4) if means.get("area") is not None else None
    for column in TIMING_COLUMNS:
        value = timings.get(column.removeprefix("seconds_"))
        row[column] = round(float(value), 3) if value is not None else None
    return row


def _mean(values: list[float]) -> float | None:
    return json_float(statistics.fmean(values), 4) if values else None


def per_model(rows: list[dict], models: Sequence[str]) -> list[dict]:
    """Per model and image set: top-1 over the sweep's judged photos, summaries per class, seconds, failures."""
    out = []
    for model in models:
        for image_set in ("own", "common"):
            mine = [r for r in rows if r["model"] == model and r["image_set"] == image_set]
            if not mine:
                continue
            done = [r for r in mine if r["status"] in ("ok", "no_summaries", "masks_only")]
            judged = [(r["top1"], r["images"] - (r["skipped_unreadable"] or 0)) for r in done if r["top1"] is not None]
            weight = sum(n for _, n in judged)
            counts = [r["summaries"] for r in done if r["summaries"] is not None]
            out.append({
                "model": model, "image_set": image_set,
                "top1": json_float(sum(t * n for t, n in judged) / weight, 4) if weight else None,
                "classes": len(mine), "classes_done": len(done),
                "failed": sum(r["status"] == "failed" for r in mine),
                "summaries_mean": _mean(counts),
                "summaries_median": json_float(statistics.median(counts), 4) if counts else None,
                "seconds_total": round(sum(r["seconds_total"] or 0.0 for r in done), 3),
            })
    return out


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def write_tables(sweep: Path, meta: dict, rows: list[dict]) -> dict:
    """Write ``sweep.csv`` (the rows) and ``sweep.json`` (``meta``, the rows, ``per_model``), atomically."""
    models = [m["model"] for m in meta["models"]]
    content = {**meta, "columns": list(COLUMNS), "rows": rows, "per_model": per_model(rows, models)}
    atomic_write_csv(sweep / "sweep.csv", COLUMNS, ([_cell(r[c]) for c in COLUMNS] for r in rows))
    atomic_write_json(sweep / "sweep.json", content)
    return content

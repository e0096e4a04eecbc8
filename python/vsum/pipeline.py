"""One class end to end: stages 1-5 and rendering in a resumable run directory.

:func:`run_class` chains the library stages for the images of one class::

    1 masks        vsum.masks.compute_masks           -> masks/ (PNGs, metrics.csv, saliency.npz)
    2 proposals    vsum.proposals.selective_search     -> proposals.npz
    3 descriptors  vsum.features.describe              -> descriptors.npz
    4 pairs        vsum.pairs.all_pairs (LOM)          -> similarity.npz
    5 summaries    steps 2-6 of vsum.summarize + render -> clusters.json, summaries/*.png
      report       vsum.report.write_report             -> report.html (self-contained page)

and writes ``config.json`` (the resolved configuration and its hash) and
``result.json`` (counts, timings, summaries, skipped images) into the run
directory (layout: ARCHITECTURE.md, "Run directory and cache").

**One pixel grid.**  Stages 2-5 work on each image resized whole (aspect not
kept) to the model input, ``S x S`` pixels (``S = classifier.input_size``,
e.g. 224), exactly the picture stage 1 explains, so masks, proposals, flows
and warps share one grid and every box in the outputs is in those pixels.

**Cache and resume.**  Every file is written to a temporary name and renamed
into place.  When a stage has finished, ``stages/<stage>.json`` records the
hash of everything its outputs depend on (the images' bytes, the model, the
target and the configuration of this stage and of the stages before it).  A
rerun skips a stage whose manifest hash matches and whose outputs exist, so a
run killed in stage 4 resumes at stage 4; ``force=True`` recomputes all.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import VsumError
from .features import describe
from .io import ImageSkip, atomic_open, atomic_write_json, list_images, read_image
from .masks import MaskConfig, compute_masks, unique_stems, write_mask_outputs
from .pairs import AllPairsResult, all_pairs
from .proposals import selective_search
from .render import cluster_overview, crop_strip, member_view, save_png, summary_grid
from .summarize import SummaryConfig, SummaryResult, summarize_class, valid_proposals

__all__ = ["PipelineConfig", "ProposalConfig", "RunResult", "STAGES", "model_grid_image", "run_class",
           "summarize_from_pairs", "summarize_images"]

STAGES = ("masks", "proposals", "descriptors", "pairs", "summaries")


@dataclass(frozen=True)
class ProposalConfig:
    """Stage-2 settings of :func:`vsum.proposals.selective_search` (published defaults).

    Attributes
    ----------
    num : int, default 500
        Proposals kept per image (the best ``num`` of the ranking).
    seed : int, default 0
        Seed of the ranking.
    mode : {"quality", "fast"}, default "quality"
    """

    num: int = 500
    seed: int = 0
    mode: str = "quality"

    def __post_init__(self):
        if isinstance(self.num, bool) or not isinstance(self.num, (int, np.integer)) or self.num < 1:
            raise ValueError(f"ProposalConfig: num must be an integer >= 1; got {self.num!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or not 0 <= self.seed < 2**32:
            raise ValueError(f"ProposalConfig: seed must be an integer in [0, 2**32); got {self.seed!r}")
        if self.mode not in ("quality", "fast"):
            raise ValueError(f"ProposalConfig: mode must be 'quality' or 'fast'; got {self.mode!r}")


@dataclass(frozen=True)
class PipelineConfig:
    """Everything that decides a run's outputs, besides the images, the model and the target.

    Attributes
    ----------
    masks : vsum.masks.MaskConfig
        Stage 1 (``MaskConfig().with_iterations(smooth, sharp)`` for quick runs).
    proposals : ProposalConfig
        Stage 2.
    summary : vsum.summarize.SummaryConfig
        Stages 4-5 (``valid_coverage``, ``redundancy_topk`` and ``lom_order``
        also decide stage 4).
    summary_cell : int, default 200
        Side in pixels of one member's cell in the rendered summary grids.

    The side of the images of stages 2-5 is not a field: it is the model
    input size (see the module docstring).
    """

    masks: MaskConfig = field(default_factory=MaskConfig)
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    summary: SummaryConfig = field(default_factory=SummaryConfig)
    summary_cell: int = 200

    def __post_init__(self):
        for name, kind in (("masks", MaskConfig), ("proposals", ProposalConfig), ("summary", SummaryConfig)):
            if not isinstance(getattr(self, name), kind):
                raise ValueError(f"PipelineConfig: {name} must be a {kind.__name__}; "
                                 f"got {type(getattr(self, name)).__name__}")
        if isinstance(self.summary_cell, bool) or not isinstance(self.summary_cell, int) or self.summary_cell < 32:
            raise ValueError(f"PipelineConfig: summary_cell must be an integer >= 32; got {self.summary_cell!r}")

    def to_dict(self) -> dict:
        """JSON-serialisable form (written to ``config.json``)."""
        return asdict(self)


@dataclass
class RunResult:
    """Outcome of :func:`run_class`.

    Attributes
    ----------
    out : Path
        The run directory.
    result : dict
        The content of ``result.json``.
    summary : vsum.summarize.SummaryResult or None
        Stage-5 result; None when stage 5 was taken from the cache (its
        outcome is in ``result`` and ``clusters.json``).
    images : list of Path
        The images kept by stage 1, in the order of ``summary``'s image indices.
    reused : list of str
        Stages taken from the cache instead of being computed.
    """

    out: Path
    result: dict
    summary: SummaryResult | None
    images: list
    reused: list

    @property
    def reason(self) -> str | None:
        """Why there are no summaries (None when there are some)."""
        return self.result.get("reason")

    @property
    def counts(self) -> dict:
        return self.result["counts"]

    @property
    def timings(self) -> dict:
        return self.result["timings"]

    @property
    def summaries(self) -> list:
        return self.result["summaries"]


# --------------------------------------------------------------------------- hashing and artefacts


def _hash(obj) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha1()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    return digest.hexdigest()


def _save_npz(path: Path, arrays: dict) -> None:
    """``np.savez`` streamed to a temporary file beside ``path``, then renamed into place."""
    with atomic_open(path) as fh:
        np.savez(fh, **arrays)


def _remove_stale_temporaries(out: Path) -> None:
    """Delete ``.<name>.<random>.tmp`` files that a killed run left behind (one run per folder at a time)."""
    for path in out.rglob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)


def _load_npz(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


class _Stages:
    """Stage manifests ``stages/<name>.json``: hash of the inputs, outputs, seconds, payload."""

    def __init__(self, out: Path, force: bool):
        self.out, self.force = out, force
        self.reused: list[str] = []
        self.seconds: dict[str, float] = {}

    def cached(self, name: str, digest: str) -> dict | None:
        """The manifest of ``name`` when it can be reused, else None.

        A manifest that cannot be reused is deleted before the stage
        recomputes, so that outputs overwritten by a recomputation killed
        half-way are never trusted under the old hash.
        """
        path = self.out / "stages" / f"{name}.json"
        manifest = None
        if not self.force and path.is_file():
            try:
                manifest = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                manifest = None
        if manifest is None or manifest.get("hash") != digest or not all(
                (self.out / p).exists() for p in manifest.get("outputs", [])):
            path.unlink(missing_ok=True)
            return None
        self.reused.append(name)
        self.seconds[name] = float(manifest.get("seconds", 0.0))
        return manifest

    def done(self, name: str, digest: str, outputs: Sequence[str], seconds: float, **payload) -> dict:
        manifest = {"stage": name, "hash": digest, "outputs": list(outputs), "seconds": round(seconds, 3), **payload}
        atomic_write_json(self.out / "stages" / f"{name}.json", manifest)
        self.seconds[name] = seconds
        return manifest


def _progress(iterable, desc: str, enabled: bool, total: int | None = None):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="img", disable=not enabled, leave=False)


def model_grid_image(path: Path, side: int) -> np.ndarray:
    """The image as stage 1 sees it: ``(side, side, 3)`` uint8, resized whole (bilinear).

    Same decoding and resizing as :func:`vsum.masks.compute_masks`, so the
    pixels match the masks exactly.
    """
    import torch

    from .preprocess import resize_whole

    record = read_image(path, max_side=side)
    pixels = (resize_whole(record.rgb, side) * 255.0 + 0.5).to(torch.uint8)
    return np.ascontiguousarray(pixels.permute(1, 2, 0).numpy())


# --------------------------------------------------------------------------- stages


def _stage_masks(paths, classifier, target, config, out: Path, stages: _Stages, digest: str, progress: bool):
    """Stage 1 -> per input image a record; kept ones with their ``(S, S)`` uint8 sharp saliency."""
    manifest = stages.cached("masks", digest)
    if manifest is None:
        t0 = time.perf_counter()
        run = compute_masks(paths, classifier, target=target, config=config.masks, progress=progress)
        write_mask_outputs(run, out / "masks", classifier, png_dir=out / "masks")
        records, arrays = [], {}
        for i, r in enumerate(run.results):
            records.append({"image": r.image.name, "status": r.status, "target": r.target, "predicted": r.predicted,
                            "p0": r.p0})
            if r.ok:
                arrays[f"sharp_{i}"] = r.saliency["sharp"]
        _save_npz(out / "masks" / "saliency.npz", arrays)
        manifest = stages.done("masks", digest, ["masks/saliency.npz", "masks/metrics.csv"],
                               time.perf_counter() - t0, records=records)
    saliency = _load_npz(out / "masks" / "saliency.npz")
    records = manifest["records"]
    kept = [i for i, r in enumerate(records) if r["status"] == "ok"]
    return records, kept, [saliency[f"sharp_{i}"] for i in kept]


def _stage_proposals(images, kept, config, out, stages, digest, progress):
    if stages.cached("proposals", digest) is None:
        t0 = time.perf_counter()
        arrays = {}
        for i, img in _progress(list(zip(kept, images)), "proposals", progress):
            arrays[f"boxes_{i}"] = selective_search(img, num=config.proposals.num, seed=config.proposals.seed,
                                                    mode=config.proposals.mode)[0]
        _save_npz(out / "proposals.npz", arrays)
        stages.done("proposals", digest, ["proposals.npz"], time.perf_counter() - t0)
    data = _load_npz(out / "proposals.npz")
    return [data[f"boxes_{i}"].astype(np.int32) for i in kept]


def _stage_descriptors(images, boxes, kept, out, stages, digest, progress):
    if stages.cached("descriptors", digest) is None:
        t0 = time.perf_counter()
        arrays = {}
        for i, img, b in _progress(list(zip(kept, images, boxes)), "descriptors", progress):
            arrays[f"desc_{i}"] = describe(img, b)
        _save_npz(out / "descriptors.npz", arrays)
        stages.done("descriptors", digest, ["descriptors.npz"], time.perf_counter() - t0)
    data = _load_npz(out / "descriptors.npz")
    return [data[f"desc_{i}"] for i in kept]


def _save_pairs(path: Path, pairs: AllPairsResult | None) -> None:
    if pairs is None:
        _save_npz(path, {"computed": np.array(False)})
        return
    arrays = {"computed": np.array(True), "method": np.array(pairs.method), "sizes": pairs.sizes,
              "topk": np.array(pairs.topk), "pairs": np.array(pairs.pairs), "seconds": np.array(pairs.seconds)}
    for i in range(pairs.n_images):
        arrays[f"rows_{i}"] = pairs.rows[i]
        arrays[f"topk_scores_{i}"] = pairs.topk_scores[i]
        arrays[f"topk_image_{i}"] = pairs.topk_image[i]
        arrays[f"topk_index_{i}"] = pairs.topk_index[i]
    for (i, j), block in pairs.blocks.items():
        arrays[f"block_{i}_{j}"] = block
    _save_npz(path, arrays)


def _load_pairs(path: Path) -> AllPairsResult | None:
    data = _load_npz(path)
    if not bool(data["computed"]):
        return None
    n = len(data["sizes"])
    blocks = {}
    for key, value in data.items():
        if key.startswith("block_"):
            i, j = key.split("_")[1:]
            blocks[(int(i), int(j))] = value
    return AllPairsResult(
        method=str(data["method"]), sizes=data["sizes"], rows=[data[f"rows_{i}"] for i in range(n)], blocks=blocks,
        topk=int(data["topk"]), topk_scores=[data[f"topk_scores_{i}"] for i in range(n)],
        topk_image=[data[f"topk_image_{i}"] for i in range(n)], topk_index=[data[f"topk_index_{i}"] for i in range(n)],
        pairs=int(data["pairs"]), seconds=float(data["seconds"]))


def _stage_pairs(boxes, descriptors, valid, config: SummaryConfig, out, stages, digest, progress):
    """Stage 4: all-pairs LOM over the valid proposals (None when stage 5 cannot use it)."""
    if stages.cached("pairs", digest) is None:
        t0 = time.perf_counter()
        pairs = None
        if len(boxes) >= 2 and sum(int(v.sum()) for v in valid) > 0:
            pairs = all_pairs(boxes, descriptors, rows=valid, topk=config.redundancy_topk, order=config.lom_order,
                              progress=progress)
        _save_pairs(out / "similarity.npz", pairs)
        stages.done("pairs", digest, ["similarity.npz"], time.perf_counter() - t0)
    return _load_pairs(out / "similarity.npz")


def summarize_from_pairs(images, masks, boxes, descriptors, pairs: AllPairsResult | None,
                         config: SummaryConfig) -> tuple[SummaryResult, list]:
    """Stage 5 of :func:`vsum.summarize.summarize_class` from a stored stage-4 result.

    :func:`vsum.summarize.summarize_class` given the stored all-pairs result
    (the pipeline computes and stores that call as stage 4), collecting the
    exemplar-aligned crops of every cluster for the strips.

    Parameters
    ----------
    images, masks, boxes, descriptors
        As :func:`vsum.summarize.summarize_class` (model-grid images, bool
        masks, int32 boxes, float32 descriptors; one entry per image).
    pairs : vsum.pairs.AllPairsResult or None
        ``all_pairs(boxes, descriptors, rows=valid, topk=redundancy_topk,
        order=lom_order)``; None when there are fewer than 2 images or no valid
        proposal.
    config : SummaryConfig

    Returns
    -------
    result : SummaryResult
    crops : list (one per cluster of ``result.clusters``) of lists of (h, w, 3) uint8
        The members' images warped onto the exemplar image, cut to the
        exemplar's box (the exemplar's own crop first).
    """
    crops: list = []
    result = summarize_class(images, masks, boxes, descriptors, config, pairs=pairs, crops=crops)
    return result, crops


# --------------------------------------------------------------------------- stage 5 outputs


def _num(v) -> float | None:
    v = float(v)
    return round(v, 6) if np.isfinite(v) else None


def _member_ssim(ssim: np.ndarray, p: int) -> float | None:
    others = np.delete(ssim[p], p)
    return _num(np.median(others)) if len(others) else None


def _summary_entries(summary: SummaryResult, names: list[str]) -> list[dict]:
    entries = []
    for k, (cid, c) in enumerate((cid, c) for cid, c in enumerate(summary.clusters) if c.kept and c.member_kept.any()):
        members = [{"image": names[int(i)], "index": int(x), "box": [int(v) for v in b], "similarity": _num(s),
                    "ssim": _member_ssim(c.ssim, p), "exemplar": p == 0}
                   for p, (i, x, b, s, keep) in enumerate(zip(c.images, c.indices, c.boxes, c.similarity,
                                                              c.member_kept)) if keep]
        entries.append({"summary": k, "cluster": cid, "score": _num(c.score), "png": f"summaries/summary_{k}.png",
                        "strip": f"summaries/summary_{k}_strip.png", "members": members,
                        "images": len({m["image"] for m in members})})
    return entries


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _render(summary: SummaryResult, crops: list, images: list, masks: list, names: list[str], out: Path,
            cell: int) -> list[str]:
    """Summary grids, crop strips and per-cluster debugging overviews; returns the written paths."""
    written = []
    k = 0
    for cid, c in enumerate(summary.clusters):
        members = list(range(len(c.images)))
        labels = [names[int(c.images[p])] for p in members]
        overview = cluster_overview([images[int(c.images[p])] for p in members], c.boxes, labels=labels,
                                    scores=[float(s) for s in c.similarity])
        save_png(out / "summaries" / "debug" / f"cluster_{cid}.png", overview)
        written.append(f"summaries/debug/cluster_{cid}.png")
        if not (c.kept and c.member_kept.any()):
            continue
        shown = [p for p in members if c.member_kept[p]]
        views = [member_view(images[int(c.images[p])], masks[int(c.images[p])], c.boxes[p]) for p in shown]
        grid_labels = [f"{labels[p]}\nsim {c.similarity[p]:.2f} ssim {_fmt(_member_ssim(c.ssim, p))}" for p in shown]
        grid = summary_grid(views, cell=(cell, cell), labels=grid_labels, highlight_first=shown[0] == 0)
        save_png(out / "summaries" / f"summary_{k}.png", grid)
        save_png(out / "summaries" / f"summary_{k}_strip.png", crop_strip([crops[cid][p] for p in shown]))
        written += [f"summaries/summary_{k}.png", f"summaries/summary_{k}_strip.png"]
        k += 1
    return written


def _stage_summaries(images, masks, boxes, descriptors, pairs, names, config: PipelineConfig, out, stages, digest):
    if stages.cached("summaries", digest) is not None:
        return json.loads((out / "clusters.json").read_text(encoding="utf-8")), None
    t0 = time.perf_counter()
    summary, crops = summarize_from_pairs(images, masks, boxes, descriptors, pairs, config.summary)
    clusters = {"images": names, **summary.to_dict(), "summary_entries": _summary_entries(summary, names)}
    atomic_write_json(out / "clusters.json", clusters)
    written = _render(summary, crops, images, masks, names, out, config.summary_cell)
    stages.done("summaries", digest, ["clusters.json", *written], time.perf_counter() - t0)
    return clusters, summary


# --------------------------------------------------------------------------- driver


def _skip_reason(records: list[dict], kept: list[int]) -> str | None:
    if len(kept) >= 2:
        return None
    skipped = [r for r in records if r["status"] != "ok"]
    causes: dict[str, int] = {}
    for r in skipped:
        cause = r["status"].removeprefix("skipped: ").split(" (")[0]
        causes[cause] = causes.get(cause, 0) + 1
    why = ", ".join(f"{n} {c}" for c, n in causes.items())
    if not kept:
        return f"no image left after stage 1 ({why or 'no images'}): nothing to summarise"
    return (f"only 1 of {len(records)} images left after stage 1" + (f" ({why})" if why else "")
            + ": stage 5 needs at least 2 images")


def run_class(images, classifier, target: int | None = None, out: str | Path = "run", config: PipelineConfig | None = None,
              force: bool = False, progress: bool = True) -> RunResult:
    """Stages 1-5 and rendering for the images of one class, in a resumable run directory.

    Parameters
    ----------
    images : folder, file or sequence of image files
        The class's photos (any size; see the module docstring for the grid).
    classifier : vsum.models.Classifier
        From :func:`vsum.models.load_model`.
    target : int, optional
        Class to explain; images whose top-1 class differs are skipped
        (``config.masks.keep_misclassified`` keeps them).  None explains each
        image for its own top-1 class.
    out : path-like
        The run directory (created).
    config : PipelineConfig, optional
        Published defaults.
    force : bool, default False
        Recompute every stage even when its cached outputs match.
    progress : bool, default True
        tqdm progress bars.

    Returns
    -------
    RunResult
        ``result`` is the content of ``result.json``: ``status`` ("ok" or
        "no_summaries"), ``reason``, ``counts`` (per stage), ``timings``
        (seconds per stage; a reused stage reports the seconds it took when
        computed, and is listed in ``reused``), ``summaries`` (per summary its
        PNGs, score and kept members with image, box in model-grid pixels,
        similarity to the exemplar and median SSIM against the other
        members) and ``skipped`` (images with reasons).

    Raises
    ------
    VsumError
        No image files, a target outside the model's classes.
    ValueError
        A bad configuration.
    """
    started = time.perf_counter()
    config = config if config is not None else PipelineConfig()
    if not isinstance(config, PipelineConfig):
        raise ValueError(f"config must be a PipelineConfig; got {type(config).__name__}")
    paths = list_images(images) if isinstance(images, (str, Path)) else [Path(p) for p in images]
    if not paths:
        raise VsumError(f"no image files found in {images}")
    if target is not None and not 0 <= int(target) < classifier.num_classes:
        raise VsumError(f"target class {target} is outside the model's {classifier.num_classes} classes")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out)
    side = int(classifier.input_size)
    names = unique_stems(paths)

    resolved = {"model": classifier.name, "weights": classifier.weights, "target": target, "image_side": side,
                "images": [{"name": p.name, "sha1": _file_digest(p)} for p in paths], **config.to_dict()}
    config_hash = _hash(resolved)
    atomic_write_json(out / "config.json", {"hash": config_hash, "config": resolved})
    h_masks = _hash([resolved["model"], resolved["weights"], target, side, resolved["images"], resolved["masks"]])
    stages = _Stages(out, force)
    records, kept, saliency = _stage_masks(paths, classifier, target, config, out, stages, h_masks, progress)
    # later stages depend on stage 1's actual outcome (which images, which masks), not only on its settings
    outcome = hashlib.sha1(json.dumps(kept).encode())
    for sal in saliency:
        outcome.update(np.ascontiguousarray(sal).tobytes())
    h_props = _hash([h_masks, outcome.hexdigest(), resolved["proposals"]])
    h_desc = _hash([h_props, "describe"])
    s = config.summary
    h_pairs = _hash([h_desc, s.valid_coverage, s.redundancy_topk, s.lom_order])
    h_summ = _hash([h_pairs, resolved["summary"], config.summary_cell])
    kept_names = [names[i] for i in kept]
    grid = []
    for i in kept:
        try:
            grid.append(model_grid_image(paths[i], side))
        except ImageSkip as exc:  # the file changed since stage 1
            raise VsumError(f"{paths[i]} can no longer be read ({exc}); rerun with --force") from exc
    masks = [sal >= 128 for sal in saliency]  # saliency > 0.5 on the 0-255 scale
    boxes = _stage_proposals(grid, kept, config, out, stages, h_props, progress)
    descriptors = _stage_descriptors(grid, boxes, kept, out, stages, h_desc, progress)
    valid = [valid_proposals(m, b, s.valid_coverage) for m, b in zip(masks, boxes)]
    pairs = _stage_pairs(boxes, descriptors, valid, s, out, stages, h_pairs, progress)
    clusters, summary = _stage_summaries(grid, masks, boxes, descriptors, pairs, kept_names, config, out, stages,
                                         h_summ)
    del pairs

    reason = _skip_reason(records, kept) or clusters["reason"]
    entries = clusters["summary_entries"]
    counts = {"images": len(paths), "images_kept": len(kept), "images_skipped": len(paths) - len(kept),
              **{k: v for k, v in clusters["counts"].items() if k != "images"}}
    timings = {name: round(stages.seconds.get(name, 0.0), 3) for name in STAGES}
    timings["total"] = round(time.perf_counter() - started, 3)
    target_name = classifier.class_name(target) if target is not None else None
    result = {
        "status": "ok" if entries else "no_summaries",
        "reason": None if entries else reason,
        "model": classifier.name, "target": target, "target_name": target_name, "image_side": side,
        "config_hash": config_hash,
        "counts": counts,
        "timings": timings,
        "reused": list(stages.reused),
        "summaries": entries,
        "skipped": [{"image": r["image"], "reason": r["status"].removeprefix("skipped: ")}
                    for r in records if r["status"] != "ok"],
        "outputs": {"config": "config.json", "masks": "masks/", "metrics": "masks/metrics.csv",
                    "proposals": "proposals.npz", "descriptors": "descriptors.npz", "similarity": "similarity.npz",
                    "clusters": "clusters.json", "summaries": "summaries/", "debug": "summaries/debug/",
                    "report": "report.html"},
    }
    atomic_write_json(out / "result.json", result)
    _write_report(out, result)
    return RunResult(out, result, summary, [paths[i] for i in kept], list(stages.reused))


def _write_report(out: Path, result: dict) -> None:
    """``report.html`` (vsum.report); a failure is warned about and noted in result.json, never raised."""
    import warnings

    try:
        from .report import write_report

        write_report(out)
    except Exception as exc:  # noqa: BLE001 - the run's outputs matter more than its report
        result["outputs"].pop("report", None)
        result.setdefault("notes", []).append(f"report.html not written: {type(exc).__name__}: {exc}")
        warnings.warn(f"vsum: report.html not written for {out}: {exc}", RuntimeWarning, stacklevel=3)
        atomic_write_json(out / "result.json", result)


def summarize_images(images, model="efficientnet_lite0", target: int | None = None, out: str | Path = "run",
                     config: PipelineConfig | None = None, *, force: bool = False, progress: bool = True,
                     device: str | None = None) -> RunResult:
    """Stages 1-5 for the images of one class; also reachable as ``vsum.summarize(...)``.

    ``vsum.summarize(folder, target=146, out="runs/x")`` is the Python form of
    ``vsum summarize folder --target 146 --out runs/x``.

    Parameters
    ----------
    images : folder, file or sequence of image files
    model : str, torch.nn.Module or vsum.models.Classifier
        A registry name (default: the offline EfficientNet-Lite0), a module,
        or a loaded classifier (used as it is unless ``device`` is given).
    target, out, config, force, progress
        As for :func:`run_class`.
    device : str, optional
        ``"cpu"`` or ``"cuda"``; None picks CUDA when available.

    Returns
    -------
    RunResult
    """
    classifier = resolve_classifier(model, device)
    return run_class(images, classifier, target=target, out=out, config=config, force=force, progress=progress)


def resolve_classifier(model, device: str | None = None):
    """A :class:`vsum.models.Classifier` from a name, a module or a classifier (kept as is when ``device`` is None)."""
    from .models import Classifier, load_model

    if isinstance(model, Classifier) and device is None:
        return model
    return load_model(model, device=device)

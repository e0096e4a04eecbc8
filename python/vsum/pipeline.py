"""One class end to end: stages 1-5 and rendering in a resumable run directory.

:func:`summarize` (also ``vsum.summarize``, and ``vsum summarize`` on the
command line) calls each stage once, for the images of one class::

    1 masks        vsum.masks.compute_masks              -> masks/ (PNGs, metrics.csv, saliency.npz)
    2 proposals    vsum.proposals.selective_search        -> proposals.npz
    3 descriptors  vsum.features.describe                 -> descriptors.npz
    4 pairs        vsum.pairs.match_class                 -> similarity.npz
    5 summaries    vsum.clusters.find_summaries, render   -> clusters.json, summaries/*.png
      report       vsum.report.write_report               -> report.html (self-contained page)

and writes ``config.json`` (the resolved configuration and its hash) and
``result.json`` (counts, timings, summaries, skipped images) into the run
directory (layout: ``docs/architecture.md``, "Run directory").

**One pixel grid.**  Stages 2-5 work on each image resized whole (aspect not
kept) to the model input, ``S x S`` pixels (``S = classifier.input_size``,
e.g. 224), exactly the picture stage 1 explains, so masks, proposals, flows
and warps share one grid and every box in the outputs is in those pixels.

**Cache and resume.**  Every file is written to a temporary name, flushed,
``fsync``-ed and renamed into place.  When a stage has finished,
``stages/<stage>.json`` records its key (the hash of the stage's whole
configuration, the vsum version and the keys of what it reads: the images'
and the weights' content, the model and the target for stage 1; the earlier
stages' keys and stage 1's actual outcome for the others) and every output
file with its size and SHA-256 (:mod:`vsum.manifest`).  A rerun reuses a
stage only when its key matches and each output still matches; otherwise the
stage and every later one recompute (one line says which file did not match),
after removing the outputs the stage owns.  Stage 1 saves each finished batch
as it goes (:mod:`vsum.mask_batches`), so a run killed in stage 1 resumes at
its first unfinished batch; a run killed in stage 4 resumes at stage 4.  A
stored stage-4 result is also checked against the request it must answer
(:meth:`vsum.pairs.AllPairsResult.mismatch`).  ``force=True`` recomputes all.

**Sweeps.**  ``stages="masks"`` stops after stage 1 (a later full run
reuses it); ``image_cache`` shares each image's stages 2-3 with other runs
(:mod:`vsum.image_cache`); ``mask_results`` hands in stage 1 computed for
several classes in shared batches (:mod:`vsum.sweep`).

**One writer.**  A run holds an exclusive lock on its folder
(:class:`vsum.runlock.RunLock`) from start to end; a second run on the same
folder waits (``wait=True``) or stops with one line naming the holder.  Only
the holder removes the temporary files killed writers left.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ._config import StageConfig
from ._version import __version__
from .clusters import ClusterConfig, SummaryResult, find_summaries
from .digests import image_sha1, json_digest
from .errors import VsumError
from .features import DescriptorConfig, describe
from .image_cache import ImageCache
from .io import (
    ImageSkip,
    atomic_open,
    atomic_write_json,
    display_name,
    display_text,
    json_float,
    list_images,
    read_image,
    remove_temporaries,
    unique_stems,
)
from .manifest import Stages
from .mask_batches import MaskBatches
from .masks import MaskConfig, MaskRun, binary_mask, compute_masks, write_mask_outputs
from .models import as_classifier, weights_digest
from .pairs import AllPairsResult, PairsConfig, match_class, valid_rows
from .proposals import ProposalConfig, selective_search
from .render import render_summaries
from .runlock import RunLock

__all__ = ["PipelineConfig", "RenderConfig", "RunResult", "STAGES", "model_grid_image", "stage_key", "summarize"]

STAGES = ("masks", "proposals", "descriptors", "pairs", "summaries")

#: ``summarize(stages=...)``: every stage, or stage 1 alone.
STAGE_SETS = ("all", "masks")

MASKS_ONLY_REASON = "stages 2-5 were not run (stages='masks'): this run holds the stage-1 masks only"


@dataclass(frozen=True)
class RenderConfig(StageConfig):
    """How the summaries are drawn (stage 5, step 7).

    Attributes
    ----------
    summary_cell : int, default 200
        Side in pixels of one member's cell in the summary grids (>= 32).
    """

    summary_cell: int = 200

    def __post_init__(self):
        if isinstance(self.summary_cell, bool) or not isinstance(self.summary_cell, int) or self.summary_cell < 32:
            raise ValueError(f"RenderConfig: summary_cell must be an integer >= 32; got {self.summary_cell!r}")


@dataclass(frozen=True)
class PipelineConfig(StageConfig):
    """Everything that decides a run's outputs, besides the images, the model and the target.

    One frozen configuration per stage, each with the published defaults.
    The side of the images of stages 2-5 is not a field: it is the model
    input size (see the module docstring).

    Attributes
    ----------
    masks : vsum.masks.MaskConfig
        Stage 1 (``MaskConfig().with_iterations(smooth, sharp)`` for quick runs).
    proposals : vsum.proposals.ProposalConfig
        Stage 2.
    descriptors : vsum.features.DescriptorConfig
        Stage 3.
    pairs : vsum.pairs.PairsConfig
        Stage 4 (and the valid-proposal rule of stage 5, step 1).
    clusters : vsum.clusters.ClusterConfig
        Stage 5.
    render : RenderConfig
        The summary pictures.
    """

    masks: MaskConfig = field(default_factory=MaskConfig)
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    descriptors: DescriptorConfig = field(default_factory=DescriptorConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    clusters: ClusterConfig = field(default_factory=ClusterConfig)
    render: RenderConfig = field(default_factory=RenderConfig)

    def __post_init__(self):
        kinds = {"masks": MaskConfig, "proposals": ProposalConfig, "descriptors": DescriptorConfig,
                 "pairs": PairsConfig, "clusters": ClusterConfig, "render": RenderConfig}
        for name, kind in kinds.items():
            if not isinstance(getattr(self, name), kind):
                raise ValueError(f"PipelineConfig: {name} must be a {kind.__name__}; "
                                 f"got {type(getattr(self, name)).__name__}")


@dataclass
class RunResult:
    """Outcome of :func:`summarize`.

    Attributes
    ----------
    out : Path
        The run directory.
    result : dict
        The content of ``result.json``.
    summary : vsum.clusters.SummaryResult or None
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


# --------------------------------------------------------------------------- keys and artefacts


def stage_key(stage: str, configs: dict[str, StageConfig], reads: Sequence[str]) -> str:
    """The cache key of a stage: 16 hex digits.

    The hash of the stage's name, its whole configuration (``to_dict()`` of
    each dataclass in ``configs``), the vsum version and ``reads``, the keys
    of what the stage reads.  A field added to a configuration, a new vsum
    version or any change upstream gives a new key.
    """
    return json_digest({"stage": stage, "config": {name: c.to_dict() for name, c in configs.items()},
                  "version": __version__, "reads": list(reads)})


def _save_npz(path: Path, arrays: dict) -> None:
    """``np.savez`` streamed to a temporary file beside ``path``, then renamed into place."""
    with atomic_open(path) as fh:
        np.savez(fh, **arrays)


def _load_npz(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


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


def _stage_masks(paths, names, classifier, target, config: MaskConfig, out: Path, stages: Stages, key: str,
                 progress: bool, given: MaskRun | None = None):
    """Stage 1 -> per input image a record; kept ones with their ``(S, S)`` uint8 sharp saliency.

    Each finished batch is saved at once under ``masks/batches/``
    (:class:`vsum.mask_batches.MaskBatches`), so a killed stage 1 resumes at
    its first unfinished batch.  ``given``: stage 1 already computed for
    exactly these paths (``summarize(mask_results=...)``), used when the
    stage is not cached.
    """
    manifest = stages.cached("masks", key)
    if manifest is not None:
        saliency = _load_npz(out / "masks" / "saliency.npz")
        records = manifest["records"]
        kept = [i for i, r in enumerate(records) if r["status"] == "ok"]
        return records, kept, [saliency[f"sharp_{i}"] for i in kept]
    stages.clear("masks")
    t0 = time.perf_counter()
    if given is not None:
        run = given
    else:
        batches = MaskBatches(out / "masks" / "batches", key)
        if stages.force:  # --force recomputes every batch too
            batches.clear()
        run = compute_masks(paths, classifier, target=target, config=config, progress=progress, checkpoint=batches)
    write_mask_outputs(run, out / "masks", classifier, png_dir=out / "masks")
    records, arrays, pngs = [], {}, []
    for i, (stem, r) in enumerate(zip(names, run.results)):
        records.append({"image": display_name(r.image), "status": r.status, "target": r.target,
                        "predicted": r.predicted, "p0": json_float(r.p0) if r.p0 is not None else None,
                        "masks": {name: f"masks/{stem}_{name}.png" for name in r.saliency}})
        pngs += records[-1]["masks"].values()
        if r.ok:
            arrays[f"sharp_{i}"] = r.saliency["sharp"]
    _save_npz(out / "masks" / "saliency.npz", arrays)
    restored = {"restored": batches.restored, "computed": batches.computed} if given is None else "computed elsewhere"
    seconds = time.perf_counter() - t0 if given is None else run.seconds
    stages.done("masks", key, ["masks/saliency.npz", "masks/metrics.csv", "masks/result.json", *pngs],
                seconds, records=records, image_iterations=run.image_iterations, batches=restored,
                batch_size=run.batch_size)
    kept = [i for i, r in enumerate(records) if r["status"] == "ok"]
    return records, kept, [arrays[f"sharp_{i}"] for i in kept]


def _stage_proposals(images, kept, config: ProposalConfig, out, stages: Stages, key, progress,
                     cache: ImageCache | None, cache_keys: list[str]):
    """Stage 2; with ``cache``, each image's proposals come from it or go into it (``cache_keys``: one per kept)."""
    if stages.cached("proposals", key) is not None:
        data = _load_npz(out / "proposals.npz")
        return [data[f"boxes_{i}"].astype(np.int32) for i in kept]
    stages.clear("proposals")
    t0 = time.perf_counter()
    arrays, shared = {}, {"computed": 0, "reused": 0}
    for n, (i, img) in enumerate(_progress(list(zip(kept, images)), "proposals", progress)):
        def compute(img=img):
            return selective_search(img, num=config.num, seed=config.seed, mode=config.mode)[0]

        arrays[f"boxes_{i}"] = compute() if cache is None else _shared(cache, "proposals", cache_keys[n], compute,
                                                                      shared)
    _save_npz(out / "proposals.npz", arrays)
    stages.done("proposals", key, ["proposals.npz"], time.perf_counter() - t0,
                **({"image_cache": shared} if cache is not None else {}))
    return [arrays[f"boxes_{i}"].astype(np.int32) for i in kept]


def _shared(cache: ImageCache, kind: str, key: str, compute, tally: dict) -> np.ndarray:
    """``cache.get`` that counts, in ``tally``, whether the entry was computed here or reused."""
    before = cache.computed[kind]
    array = cache.get(kind, key, compute)
    tally["computed" if cache.computed[kind] > before else "reused"] += 1
    return array


def _stage_descriptors(images, boxes, kept, config: DescriptorConfig, out, stages: Stages, key, progress,
                       cache: ImageCache | None, cache_keys: list[str]):
    """Stage 3; ``cache`` and ``cache_keys`` (the proposals' keys) as for :func:`_stage_proposals`."""
    if stages.cached("descriptors", key) is not None:
        data = _load_npz(out / "descriptors.npz")
        return [data[f"desc_{i}"] for i in kept]
    stages.clear("descriptors")
    t0 = time.perf_counter()
    arrays, shared = {}, {"computed": 0, "reused": 0}
    for n, (i, img, b) in enumerate(_progress(list(zip(kept, images, boxes)), "descriptors", progress)):
        def compute(img=img, b=b):
            return describe(img, b)

        arrays[f"desc_{i}"] = (compute() if cache is None else
                               _shared(cache, "descriptors", ImageCache.descriptors_key(cache_keys[n], config),
                                       compute, shared))
    _save_npz(out / "descriptors.npz", arrays)
    stages.done("descriptors", key, ["descriptors.npz"], time.perf_counter() - t0,
                **({"image_cache": shared} if cache is not None else {}))
    return [arrays[f"desc_{i}"] for i in kept]


def _stage_pairs(masks, boxes, descriptors, config: PairsConfig, out, stages: Stages, key, progress) -> AllPairsResult:
    """Stage 4: all pairs over the valid proposals (:func:`vsum.pairs.match_class`).

    The result is backed by ``similarity.npz`` (its blocks are read from the file when stage 5 looks them
    up), whether computed or reused, so memory does not grow with the square of the valid proposals.
    """
    path = out / "similarity.npz"
    if stages.cached("pairs", key) is not None:
        stored = None
        try:
            stored = AllPairsResult.load(path)
            why = stored.mismatch(method=config.method, order=config.order, topk=config.topk, ridge=config.ridge,
                                  rows=valid_rows(masks, boxes, config.valid_coverage))
        except (OSError, ValueError, KeyError) as exc:
            why = f"it cannot be read ({exc})"
        if why is None:
            return stored
        del stored
        stages.discard("pairs", f"the stored similarity.npz does not answer this run: {why}")
    stages.clear("pairs")
    t0 = time.perf_counter()
    # the blocks stream into similarity.npz (temporary name, renamed at the end) and are read back one at a time
    pairs = match_class(masks, boxes, descriptors, config, progress=progress, store=path)
    stages.done("pairs", key, ["similarity.npz"], time.perf_counter() - t0)
    return pairs


def _summary_entries(summary: SummaryResult, names: list[str]) -> list[dict]:
    """The ``summaries`` of ``result.json``: per summary its PNGs, score and kept members."""
    entries = []
    for k, (cid, c) in enumerate((cid, c) for cid, c in enumerate(summary.clusters) if c.is_summary):
        members = [{"image": names[int(i)], "index": int(x), "box": [int(v) for v in b],
                    "similarity": json_float(s, 6), "ssim": c.median_ssim(p), "exemplar": p == 0}
                   for p, (i, x, b, s, keep) in enumerate(zip(c.images, c.indices, c.boxes, c.similarity,
                                                              c.member_kept)) if keep]
        entries.append({"summary": k, "cluster": cid, "score": json_float(c.score, 6),
                        "png": f"summaries/summary_{k}.png", "strip": f"summaries/summary_{k}_strip.png",
                        "members": members, "images": len({m["image"] for m in members})})
    return entries


def _stage_summaries(images, masks, boxes, descriptors, pairs, names, config: PipelineConfig, out,
                     stages: Stages, key):
    if stages.cached("summaries", key) is not None:
        return json.loads((out / "clusters.json").read_text(encoding="utf-8")), None
    stages.clear("summaries")
    t0 = time.perf_counter()
    summary = find_summaries(images, boxes, descriptors, pairs, config.clusters)
    written = render_summaries(summary, images, masks, names, out / "summaries", config.render.summary_cell)
    clusters = {"images": names, **summary.to_dict(), "summary_entries": _summary_entries(summary, names),
                "debug": [f"summaries/{p}" for p in written if p.startswith("debug/")]}
    atomic_write_json(out / "clusters.json", clusters)
    stages.done("summaries", key, ["clusters.json", *(f"summaries/{p}" for p in written)], time.perf_counter() - t0)
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


def summarize(images, model="efficientnet_lite0", target: int | None = None, out: str | Path = "run",
              config: PipelineConfig | None = None, *, force: bool = False, progress: bool = True,
              device: str | None = None, wait: bool = False, stages: str = "all",
              image_cache: str | Path | ImageCache | None = None, mask_results=None) -> RunResult:
    """Visual summaries of one class: stages 1-5 and the report, in a resumable run directory.

    ``vsum.summarize(folder, target=146, out="runs/x")`` is the Python form of
    ``vsum summarize folder --target 146 --out runs/x``.

    Parameters
    ----------
    images : folder, file or sequence of image files
        The class's photos (any size; see the module docstring for the grid).
    model : str, torch.nn.Module or vsum.models.Classifier
        A registry name (default: the offline EfficientNet-Lite0), a module
        mapping normalised images to logits, or a loaded classifier (used as
        it is unless ``device`` is given).
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
    device : str, optional
        ``"cpu"`` or ``"cuda"`` for stage 1; None picks CUDA when available.
    wait : bool, default False
        When another run holds ``out`` (:class:`vsum.runlock.RunLock`), wait
        for it instead of raising :class:`vsum.runlock.RunLocked`.
    stages : {"all", "masks"}, default "all"
        ``"masks"`` runs stage 1 alone (``result.json`` then has status
        ``"masks_only"``); a later ``"all"`` run on the same folder reuses it.
    image_cache : path-like or vsum.image_cache.ImageCache, optional
        A folder of per-image stage 2-3 outputs shared with other runs
        (``vsum sweep`` shares one across models); the stage manifests
        record how many images were computed and how many reused.
    mask_results : vsum.masks.MaskRun or sequence of vsum.masks.MaskResult, optional
        Stage 1 already computed, with ``config.masks``, for exactly
        ``images`` (one result per file, in order; ``vsum sweep`` batches
        several classes together), used instead of computing it when stage 1
        is not cached.

    Returns
    -------
    RunResult
        ``result`` is the content of ``result.json``: ``status`` ("ok" or
        "no_summaries"), ``reason``, ``counts`` (per stage), ``timings``
        (seconds per stage; a reused stage reports the seconds it took when
        computed, and is listed in ``reused``), ``summaries`` (per summary its
        PNGs, score and kept members with image, box in model-grid pixels,
        similarity to the exemplar and median SSIM against the other
        members), ``skipped`` (images with reasons), ``notes`` (among them
        every stored output found damaged and recomputed), ``images`` (per
        input image its status and mask PNGs) and ``debug`` (the per-cluster
        overviews); the report shows only the files listed here.

    Raises
    ------
    VsumError
        No image files, a target outside the model's classes, an unknown model,
        ``out`` an existing file.
    vsum.runlock.RunLocked
        Another run holds ``out`` and ``wait`` is False.
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
    classifier = as_classifier(model, device)
    if target is not None and not 0 <= int(target) < classifier.num_classes:
        raise VsumError(f"target class {target} is outside the model's {classifier.num_classes} classes")
    if stages not in STAGE_SETS:
        raise ValueError(f"stages must be one of {', '.join(STAGE_SETS)}; got {stages!r}")
    given = _given_masks(mask_results, paths, classifier, config.masks)
    cache = image_cache if isinstance(image_cache, ImageCache) or image_cache is None else ImageCache(image_cache)
    with RunLock(out, wait=wait) as lock:
        remove_temporaries(lock.folder)
        return _run(paths, classifier, target, lock.folder, config, force, progress, started, stages, cache, given)


def _given_masks(mask_results, paths: list[Path], classifier, config: MaskConfig) -> MaskRun | None:
    """``mask_results`` of :func:`summarize` as a MaskRun, checked against ``paths``."""
    if mask_results is None:
        return None
    run = mask_results if isinstance(mask_results, MaskRun) else MaskRun(list(mask_results), config, classifier.name)
    if [Path(r.image) for r in run.results] != paths:
        raise ValueError("mask_results must hold one stage-1 result per image, for exactly the images given, in order")
    return run


def _inputs(paths: list[Path], classifier, target) -> dict:
    """What a run reads besides its configuration: model, weights' digest, target, grid side, images' digests."""
    return {"model": classifier.name, "weights": display_text(str(classifier.weights)),
            "weights_sha256": weights_digest(classifier), "target": target, "image_side": int(classifier.input_size),
            "images": [{"name": display_name(p), "sha1": image_sha1(p)} for p in paths]}


def stage1_is_cached(out: str | Path, paths: Sequence[Path], classifier, target, config: MaskConfig) -> bool:
    """Whether the run folder ``out`` holds stage 1 for these images, model, target and settings, intact.

    The check :func:`summarize` makes before reusing stage 1 (key and every
    output's SHA-256), without taking the folder's lock; ``vsum sweep`` asks
    it to leave finished classes out of a shared stage-1 batch.
    """
    out = Path(out)
    manifest = out / "stages" / "masks.json"
    if not manifest.is_file():
        return False
    key = stage_key("masks", {"masks": config}, [json_digest(_inputs(list(paths), classifier, target))])
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(recorded, dict) or recorded.get("key") != key:
        return False
    return Stages(out, STAGES, say=lambda message: None).check_files(recorded) is None


def _run(paths: list[Path], classifier, target, out: Path, config: PipelineConfig, force: bool, progress: bool,
         started: float, stage_set: str = "all", cache: ImageCache | None = None,
         given: MaskRun | None = None) -> RunResult:
    """The body of :func:`summarize`, run while holding the folder's lock."""
    side = int(classifier.input_size)
    names = unique_stems(paths)
    inputs = _inputs(paths, classifier, target)
    config_hash = json_digest({"inputs": inputs, "config": config.to_dict(), "version": __version__})
    atomic_write_json(out / "config.json", {"hash": config_hash, "vsum": __version__,
                                            "config": {**inputs, **config.to_dict()}})
    stages = Stages(out, STAGES, force)
    k_masks = stage_key("masks", {"masks": config.masks}, [json_digest(inputs)])
    records, kept, saliency = _stage_masks(paths, names, classifier, target, config.masks, out, stages, k_masks,
                                             progress, given)
    if stage_set == "masks":
        return _finish(out, paths, records, kept, None, classifier, target, config_hash, stages, started)
    # later stages depend on stage 1's actual outcome (which images, which masks), not only on its settings
    outcome = hashlib.sha1(json.dumps(kept).encode())
    for sal in saliency:
        outcome.update(np.ascontiguousarray(sal).tobytes())
    k_outcome = json_digest([k_masks, outcome.hexdigest()])
    k_props = stage_key("proposals", {"proposals": config.proposals}, [k_outcome])
    k_desc = stage_key("descriptors", {"descriptors": config.descriptors}, [k_props])
    k_pairs = stage_key("pairs", {"pairs": config.pairs}, [k_outcome, k_props, k_desc])
    k_summ = stage_key("summaries", {"clusters": config.clusters, "render": config.render},
                       [k_outcome, k_props, k_desc, k_pairs])
    kept_names = [names[i] for i in kept]
    grid = []
    for i in kept:
        try:
            grid.append(model_grid_image(paths[i], side))
        except ImageSkip as exc:  # the file changed since stage 1
            raise VsumError(f"{paths[i]} can no longer be read ({exc}); rerun with --force") from exc
    masks = [binary_mask(sal, config.masks.threshold) for sal in saliency]
    cache_keys = ([ImageCache.proposals_key(inputs["images"][i]["sha1"], side, config.proposals) for i in kept]
                  if cache is not None else [])
    boxes = _stage_proposals(grid, kept, config.proposals, out, stages, k_props, progress, cache, cache_keys)
    descriptors = _stage_descriptors(grid, boxes, kept, config.descriptors, out, stages, k_desc, progress, cache,
                                     cache_keys)
    pairs = _stage_pairs(masks, boxes, descriptors, config.pairs, out, stages, k_pairs, progress)
    clusters, summary = _stage_summaries(grid, masks, boxes, descriptors, pairs, kept_names, config, out, stages,
                                         k_summ)
    del pairs
    return _finish(out, paths, records, kept, clusters, classifier, target, config_hash, stages, started, summary)


def _finish(out: Path, paths, records, kept, clusters: dict | None, classifier, target, config_hash: str,
            stages: Stages, started: float, summary: SummaryResult | None = None) -> RunResult:
    """Write ``result.json`` and ``report.html``; ``clusters`` None for a stage-1-only run."""
    if clusters is None:
        status, reason, entries, more = "masks_only", MASKS_ONLY_REASON, [], {}
    else:
        entries = clusters["summary_entries"]
        status = "ok" if entries else "no_summaries"
        reason = None if entries else (_skip_reason(records, kept) or clusters["reason"])
        more = {k: v for k, v in clusters["counts"].items() if k != "images"}
    counts = {"images": len(paths), "images_kept": len(kept), "images_skipped": len(paths) - len(kept), **more}
    ran = STAGES[:1] if clusters is None else STAGES
    timings = {name: round(stages.seconds.get(name, 0.0), 3) for name in ran}
    timings["total"] = round(time.perf_counter() - started, 3)
    target_name = classifier.class_name(target) if target is not None else None
    outputs = {"config": "config.json", "masks": "masks/", "metrics": "masks/metrics.csv",
               "proposals": "proposals.npz", "descriptors": "descriptors.npz", "similarity": "similarity.npz",
               "clusters": "clusters.json", "summaries": "summaries/", "debug": "summaries/debug/",
               "report": "report.html"}
    if clusters is None:
        outputs = {k: v for k, v in outputs.items() if k in ("config", "masks", "metrics", "report")}
    result = {
        "status": status,
        "reason": reason,
        "stages": list(ran),
        "model": classifier.name, "target": target, "target_name": target_name,
        "image_side": int(classifier.input_size),
        "config_hash": config_hash,
        "counts": counts,
        "timings": timings,
        "reused": list(stages.reused),
        "summaries": entries,
        "skipped": [{"image": r["image"], "reason": r["status"].removeprefix("skipped: ")}
                    for r in records if r["status"] != "ok"],
        "notes": list(stages.notes),
        "images": [{"image": r["image"], "status": r["status"], "masks": r.get("masks", {})} for r in records],
        "debug": list((clusters or {}).get("debug", [])),
        "outputs": outputs,
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
        result["notes"].append(f"report.html not written: {type(exc).__name__}: {exc}")
        warnings.warn(f"vsum: report.html not written for {out}: {exc}", RuntimeWarning, stacklevel=3)
        atomic_write_json(out / "result.json", result)

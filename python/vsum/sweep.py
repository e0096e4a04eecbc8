"""Many classes through several models: ``vsum sweep`` (:func:`sweep`).

One task per (model, class) (``docs/architecture.md``, "Sweeps"): each runs
:func:`vsum.pipeline.summarize` into ``SWEEP/runs/<model>/<class>/`` (and,
for the fair comparison, ``SWEEP/runs-common/<model>/<class>/`` on the
photos of the class that every model classifies correctly), with the layout,
cache and report of ``vsum summarize``.  The sweep

- checks everything before any work: ROOT, the labels file, the models, and
  which model knows which class (a class a model does not know, an empty
  class folder or an empty common set becomes a failed row with its reason);
- shares stages 2-3 of an image across models with the same input size
  (``SWEEP/cache``, :mod:`vsum.image_cache`);
- batches the stage-1 images of classes smaller than a batch together;
- records each task's end in ``SWEEP/tasks/<set>/<model>/<class>.json``, so
  a sweep stopped at any point resumes when the same command runs again:
  finished tasks are not touched, unfinished ones resume from their stage
  caches, failed ones are retried;
- writes ``SWEEP/sweep.csv`` and ``sweep.json`` (:mod:`vsum.sweep_table`).

Results depend on the images, the models, the configuration and the
threads per task (``SweepConfig.threads``), never on the backend or the
number of workers.  One sweep writes a sweep folder at a time (a lock on
``SWEEP/.vsum.lock``; each run folder has its own lock too).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ._config import StageConfig
from ._version import __version__
from .digests import image_sha1, json_digest
from .errors import VsumError
from .io import ImageSkip, atomic_write_json, display_text
from .pipeline import PipelineConfig, model_grid_image
from .sweep_backends import BACKENDS, LocalBackend, RayBackend
from .sweep_inputs import ModelSpec, SweepClass, discover_classes, parse_models, resolve_class
from .sweep_table import failed_row, row_from_run, write_tables
from .sweep_tasks import ClassJob, TaskSpec

__all__ = ["IMAGE_SETS", "SweepConfig", "SweepResult", "sweep"]

IMAGE_SETS = ("own", "common", "both")
_DONE = ("ok", "no_summaries", "masks_only")


@dataclass(frozen=True)
class SweepConfig(StageConfig):
    """How a sweep runs, besides ROOT, the models and where it runs.

    Attributes
    ----------
    stages : {"all", "masks"}
        Every stage, or stage 1 alone.
    images : {"own", "common", "both"} or None
        Each model's own correctly classified photos, the photos every model
        classifies correctly (the fair comparison of ``vsum compare``), or
        both; None: ``"both"`` for a full sweep of several models, else ``"own"``.
    max_images : int or None
        The first N photos of each class, in sorted order.
    threads : int
        Threads per task (torch and the compiled core).  Results depend on
        it, not on the number of workers.
    device : {"cpu", "cuda"}
        Where stage 1 runs; with CUDA one process per GPU runs the tasks'
        stage 1 and the CPU workers run stages 2-5.
    image_cache : bool
        Share stages 2-3 of an image across models (``SWEEP/cache``).
    retries : int
        Ray only: retries of a task that raised.
    pipeline : vsum.pipeline.PipelineConfig
        The run configuration of every task (published defaults).
    """

    stages: str = "all"
    images: str | None = None
    max_images: int | None = None
    threads: int = 1
    device: str = "cpu"
    image_cache: bool = True
    retries: int = 2
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    def __post_init__(self):
        if self.stages not in ("all", "masks"):
            raise ValueError(f"SweepConfig: stages must be 'all' or 'masks'; got {self.stages!r}")
        if self.images is not None and self.images not in IMAGE_SETS:
            raise ValueError(f"SweepConfig: images must be one of {', '.join(IMAGE_SETS)}; got {self.images!r}")
        for name, low in (("max_images", 1), ("threads", 1), ("retries", 0)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ValueError(f"SweepConfig: {name} must be an integer >= {low}; got {value!r}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"SweepConfig: device must be 'cpu' or 'cuda'; got {self.device!r}")
        if not isinstance(self.pipeline, PipelineConfig):
            raise ValueError("SweepConfig: pipeline must be a PipelineConfig")

    def image_sets(self, models: int) -> tuple[str, ...]:
        chosen = self.images or ("both" if self.stages == "all" and models > 1 else "own")
        if chosen == "both":
            return ("own", "common") if models > 1 else ("own",)
        return (chosen,)


@dataclass
class SweepResult:
    """Outcome of :func:`sweep`: the folder, the content of ``sweep.json`` and the tasks' counts."""

    out: Path
    table: dict
    finished: int
    failed: int
    reused: int

    @property
    def rows(self) -> list[dict]:
        return self.table["rows"]


@dataclass
class _Model:
    spec: ModelSpec
    name: str
    weights: str
    weights_sha256: str
    input_size: int
    class_names: list
    batch: int


@dataclass
class _Job:
    model: _Model
    image_set: str
    cls: SweepClass
    target: int | None
    files: list
    run: str
    error: str | None = None
    key: str = ""
    class_top1: float | None = None  # the model's top-1 on all the class's photos, from the common-set pre-pass

    @property
    def record(self) -> str:
        return f"tasks/{self.image_set}/{self.model.spec.label}/{Path(self.run).name}.json"


_sha1 = cache(image_sha1)  # one read per photo and sweep


def _load_models(specs: Sequence[ModelSpec], config: SweepConfig, progress: bool) -> list[_Model]:
    """Each model's class list, input size, weights digest and stage-1 batch; errors before any work."""
    from .batching import cpu_batch_size
    from .models import load_model, resolve_device, weights_digest

    resolve_device(config.device)  # --device cuda without a GPU: one clear error before any work
    models = []
    for spec in specs:
        try:
            classifier = load_model(spec.name, weights=spec.weights, device="cpu", allow_download=False)
        except (OSError, ValueError, RuntimeError) as exc:
            raise VsumError(f"--models {spec.label}: {exc}") from None
        masks = config.pipeline.masks
        batch = masks.batch_size or (32 if config.device == "cuda" else
                                     cpu_batch_size(classifier.module, classifier.input_size, masks.precision))
        models.append(_Model(spec, classifier.name, display_text(str(classifier.weights)), weights_digest(classifier),
                             int(classifier.input_size), list(classifier.class_names), int(batch)))
    return models


def _predictions(model: _Model, files: list[Path], sweep: Path, progress: bool) -> dict[str, int | None]:
    """Top-1 class of each file as stage 1 sees it (resized whole), cached in ``SWEEP/predictions/``.

    None for an unreadable file.  Keyed by the file's SHA-1; the cache holds
    the model's weights digest and input size and is dropped when they change.
    """
    import torch
    from tqdm.auto import tqdm

    from .models import load_model

    path = sweep / "predictions" / f"{model.spec.label}.json"
    stamp = {"weights_sha256": model.weights_sha256, "input_size": model.input_size, "vsum": __version__}
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        known = stored["top1"] if {k: stored.get(k) for k in stamp} == stamp else {}
    except (OSError, ValueError, KeyError, TypeError):
        known = {}
    digests = {str(f): _sha1(str(f)) for f in files}
    todo = [f for f in files if digests[str(f)] not in known]
    if todo:
        classifier = load_model(model.spec.name, weights=model.spec.weights, device="cpu", allow_download=False)
        for start in tqdm(range(0, len(todo), 32), desc=f"classify {model.spec.label}", disable=not progress,
                          leave=False):
            chunk, pixels = [], []
            for f in todo[start:start + 32]:
                try:
                    pixels.append(torch.from_numpy(model_grid_image(f, model.input_size)).permute(2, 0, 1))
                except ImageSkip:
                    known[digests[str(f)]] = None
                    continue
                chunk.append(f)
            if chunk:
                with torch.no_grad():
                    top1 = classifier.logits(torch.stack(pixels).float().div_(255.0)).argmax(1)
                for f, k in zip(chunk, top1.tolist()):
                    known[digests[str(f)]] = int(k)
        atomic_write_json(path, {**stamp, "top1": known})
    return {str(f): known[digests[str(f)]] for f in files}


def _plan(models: list[_Model], classes: list[SweepClass], config: SweepConfig, sweep: Path,
          progress: bool) -> list[_Job]:
    """Every (image set, model, class) job, with its files, run folder, key, or the reason it cannot run."""
    targets: dict[tuple[str, str], int | str] = {}
    for m in models:
        for c in classes:
            try:
                targets[m.spec.label, c.label] = resolve_class(c.label, m.class_names)
            except VsumError as exc:
                targets[m.spec.label, c.label] = f"{m.spec.label} does not know this class: {exc}"
    sets = config.image_sets(len(models))
    common: dict[str, list] = {}
    accuracy: dict[tuple[str, str], float] = {}
    if "common" in sets:
        known = [c for c in classes if c.files and all(isinstance(targets[m.spec.label, c.label], int)
                                                         for m in models)]
        files = [f for c in known for f in c.files]
        top1 = {m.spec.label: _predictions(m, files, sweep, progress) for m in models}
        for c in known:
            common[c.label] = [f for f in c.files
                               if all(top1[m.spec.label][str(f)] == targets[m.spec.label, c.label] for m in models)]
            for m in models:
                judged = [top1[m.spec.label][str(f)] for f in c.files if top1[m.spec.label][str(f)] is not None]
                if judged:
                    hits = sum(k == targets[m.spec.label, c.label] for k in judged)
                    accuracy[m.spec.label, c.label] = round(hits / len(judged), 4)
    jobs = []
    for image_set in sets:
        for m in models:
            for c in classes:
                target = targets[m.spec.label, c.label]
                files = list(c.files) if image_set == "own" else common.get(c.label, [])
                run = f"{'runs' if image_set == 'own' else 'runs-common'}/{m.spec.label}/{c.label}"
                job = _Job(m, image_set, c, target if isinstance(target, int) else None, files, run,
                           class_top1=accuracy.get((m.spec.label, c.label)))
                if isinstance(target, str):
                    job.error = target
                elif not c.files:
                    job.error = "the class holds no image files"
                elif not files:
                    job.error = "no photo of this class is classified correctly by every model of the sweep"
                job.key = json_digest({"model": m.spec.to_dict(), "weights": m.weights_sha256, "class": c.label,
                                 "target": job.target, "set": image_set, "stages": config.stages,
                                 "images": [f"{Path(f).name}:{_sha1(str(f))}" for f in files],
                                 "config": config.pipeline.to_dict(), "threads": config.threads, "vsum": __version__})
                jobs.append(job)
    return jobs


def _finished(job: _Job, sweep: Path) -> bool:
    """Whether a job's record says it finished with this key and its result is still there."""
    try:
        record = json.loads((sweep / job.record).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(record, dict) and record.get("key") == job.key and record.get("status") in _DONE
            and (sweep / job.run / "result.json").is_file())


def _tasks(jobs: list[_Job], pending: list[_Job], config: SweepConfig, force: bool,
           wait: bool) -> list[TaskSpec]:
    """The tasks that run the ``pending`` jobs, model by model.

    Classes smaller than a stage-1 batch share a task.  The groups are made
    over every job of the plan, finished or not, so they are the same in an
    interrupted and an uninterrupted sweep.
    """
    tasks, group, size = [], [], 0
    todo = {id(j) for j in pending}

    def flush():
        nonlocal group, size
        if any(id(j) in todo for j in group):
            head = group[0]
            spec = TaskSpec(head.model.spec, head.image_set,
                            tuple(ClassJob(j.cls.label, j.target, tuple(str(f) for f in j.files), j.run)
                                  for j in group),
                            config.stages, config.pipeline, config.device, config.threads, config.image_cache,
                            head.model.input_size, wait, force,
                            finished=tuple(j.cls.label for j in group if id(j) not in todo))
            tasks.append(spec)
        group, size = [], 0

    for job in (j for j in jobs if j.error is None):
        if group and (group[0].model is not job.model or group[0].image_set != job.image_set
                      or size + len(job.files) > job.model.batch):
            flush()
        group.append(job)
        size += len(job.files)
        if len(job.files) >= job.model.batch:
            flush()
    flush()
    return tasks


def sweep(root, models, out, *, labels=None, classes: Sequence[str] | None = None,
          config: SweepConfig | None = None, backend: str = "local", workers: int | None = None,
          address: str | None = None, force: bool = False, progress: bool = True, wait: bool = False) -> SweepResult:
    """Visual summaries of many classes with several models; ``vsum sweep`` in Python.

    Parameters
    ----------
    root : path-like
        One folder per class (named by class index, WordNet id or class
        name), or a flat folder with ``labels``.
    models : str or sequence of str
        ``[LABEL=]NAME[@WEIGHTS]`` entries (:func:`vsum.sweep_inputs.parse_models`).
    out : path-like
        The sweep folder (created).
    labels : path-like, optional
        ``image,class`` CSV for a flat ROOT.
    classes : sequence of str, optional
        Only these classes of ROOT.
    config : SweepConfig, optional
    backend : {"local", "ray"}
    workers : int, optional
        Tasks at once; default: the usable cores divided by ``config.threads``.
    address : str, optional
        Ray cluster address; None starts a local one (or uses the one this
        process already initialised).
    force : bool
        Recompute every task and stage.
    progress : bool
        One progress bar for the whole sweep.
    wait : bool
        Wait for another sweep writing ``out`` instead of stopping.

    Returns
    -------
    SweepResult
        ``table`` is the content of ``sweep.json``.
    """
    from .runlock import RunLock

    config = config or SweepConfig()
    if backend not in BACKENDS:
        raise VsumError(f"--backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = workers or max(1, cores // config.threads)
    specs = parse_models(models)
    found = discover_classes(root, labels, classes, config.max_images)
    with RunLock(out, wait=wait) as lock:
        folder = lock.folder
        loaded = _load_models(specs, config, progress)
        jobs = _plan(loaded, found, config, folder, progress)
        pending = [j for j in jobs if j.error is None and (force or not _finished(j, folder))]
        reused = sum(j.error is None for j in jobs) - len(pending)
        runner = (LocalBackend(workers, config.threads, _gpu_count(config.device)) if backend == "local"
                  else RayBackend(address, workers, config.threads, config.retries))
        outcome = _Progress(folder, pending, progress)
        try:
            tasks = _tasks(jobs, pending, config, force, wait)
            if backend == "ray":
                runner.run(tasks, folder, outcome.done, outcome.started, wait=wait)
            else:
                runner.run(tasks, folder, outcome.done, outcome.started)
        finally:
            outcome.close()
            table = _write(folder, root, labels, loaded, jobs, config, outcome.errors)
    failed = sum(r["status"] == "failed" for r in table["rows"])
    return SweepResult(folder, table, outcome.finished, failed, reused)


def _gpu_count(device: str) -> int:
    """GPUs this process sees (``--device cuda``), else 1."""
    if device != "cuda":
        return 1
    import torch

    return max(1, torch.cuda.device_count())


class _Progress:
    """The sweep's one progress bar and its task records."""

    def __init__(self, sweep: Path, pending: list[_Job], enabled: bool):
        from tqdm.auto import tqdm

        self.sweep = sweep
        self.by_run = {(j.image_set, j.model.spec.label, j.cls.label): j for j in pending}
        self.errors: dict[str, str] = {}
        self.finished = 0
        self.running = 0
        self.total = len(pending)
        self.bar = tqdm(total=sum(len(j.files) for j in pending), desc="sweep", unit="img", disable=not enabled,
                        dynamic_ncols=True)
        self._postfix()

    def _postfix(self) -> None:
        self.bar.set_postfix_str(f"tasks {self.finished}/{self.total} done, {self.running} running, "
                                 f"{len(self.errors)} failed", refresh=False)

    def started(self, spec: TaskSpec) -> None:
        self.running += len(spec.pending)
        self._postfix()
        self.bar.refresh()

    def done(self, spec: TaskSpec, outcomes, error) -> None:
        self.running = max(0, self.running - len(spec.pending))
        for job_spec in spec.pending:
            job = self.by_run[(spec.image_set, spec.model.label, job_spec.label)]
            status = "failed"
            if outcomes is not None:
                status = next(o["status"] for o in outcomes if o["class"] == job_spec.label)
                self.finished += 1
            else:
                self.errors[job.run] = error
            atomic_write_json(self.sweep / job.record, {"key": job.key, "status": status, "error": error,
                                                        "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
            self.bar.update(len(job.files))
        self._postfix()

    def close(self) -> None:
        self.bar.close()


def _write(sweep: Path, root, labels, models: list[_Model], jobs: list[_Job], config: SweepConfig,
           errors: dict[str, str]) -> dict:
    """Rows of every job (finished, failed or still pending) into ``sweep.csv`` and ``sweep.json``."""
    rows = []
    for job in jobs:
        args = (job.model.spec.label, job.cls.label, job.target,
                job.model.class_names[job.target] if job.target is not None else None, job.image_set, job.run)
        error = job.error or errors.get(job.run)
        if error is None and _finished(job, sweep):
            try:
                rows.append(row_from_run(sweep, *args))
                if job.image_set == "common":  # its photos are all correct by construction: report the class's
                    rows[-1]["top1"] = job.class_top1
                continue
            except (OSError, ValueError, KeyError) as exc:
                error = f"the run's result.json cannot be read ({exc})"
        status = "failed" if error else "pending"
        rows.append(failed_row(*args, error or "not run yet (the sweep was stopped)", status, len(job.files)))
    meta = {"vsum": __version__, "root": display_text(str(Path(root).resolve())),
            "labels": display_text(str(labels)) if labels else None, "stages": config.stages,
            "images": config.images, "image_sets": list(config.image_sets(len(models))),
            "config": config.to_dict(),
            "models": [{**m.spec.to_dict(), "resolved": m.name, "weights_file": m.weights, "input_size": m.input_size}
                       for m in models],
            "classes": list(dict.fromkeys(j.cls.label for j in jobs))}
    return write_tables(sweep, meta, rows)

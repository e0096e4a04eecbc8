"""The work of one sweep task, in the process that runs it (a local worker, a Ray worker or the driver).

A task is one model and one class, or one model and a few small classes
whose images share stage-1 batches (:class:`TaskSpec`).  :func:`execute`
loads the model (once per process), computes stage 1 for every image of the
task's classes together when more than one class needs it, then runs
:func:`vsum.pipeline.summarize` into each class's run folder, which reuses
those masks and every stage already finished there, and shares stages 2-3
through the sweep's :class:`vsum.image_cache.ImageCache`.

:func:`execute_shipped` runs the same on a worker that shares no file system
with the driver (Ray): the images, the run folders so far and the cache
entries the task needs arrive as bytes, and the run folders and new cache
entries go back as bytes, which the driver writes into the sweep folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .sweep_inputs import ModelSpec

__all__ = ["FAIL_ONCE_ENV", "ClassJob", "TaskSpec", "execute", "execute_shipped", "folder_files", "pack_folder",
           "unpack_folder"]

#: Test hook: ``"[crash:]<model label>/<class label>=<marker file>"``.  A task of
#: that model and class raises once (with ``crash:``, its process dies at once,
#: as on a kill or out of memory) and creates the marker; later attempts run.
FAIL_ONCE_ENV = "VSUM_SWEEP_FAIL_ONCE"

#: Files of a run folder that never travel: its lock, and temporaries of killed writers.
_LOCAL_ONLY = (".vsum.lock",)


@dataclass(frozen=True)
class ClassJob:
    """One class of a task: its label, the model's class index, its images and its run folder.

    ``files`` are paths on the driver; ``run`` is relative to the sweep folder
    (``runs/<model>/<class>`` or ``runs-common/<model>/<class>``).
    """

    label: str
    target: int
    files: tuple[str, ...]
    run: str


@dataclass(frozen=True)
class TaskSpec:
    """Everything a worker needs to run one task; picklable, no open handles.

    Attributes
    ----------
    model : ModelSpec
    image_set : {"own", "common"}
    jobs : tuple of ClassJob
        One class, or several small classes of the same model batched in stage 1.
    stages : {"all", "masks"}
    config : vsum.pipeline.PipelineConfig
    device : str
        ``"cpu"`` or ``"cuda"``.
    threads : int
        Threads of torch and of the compiled core inside the task; results
        do not depend on the number of workers, only on this.
    image_cache : bool
        Share stages 2-3 through ``SWEEP/cache``.
    side : int
        The model's input size (the grid of stages 2-5), for the cache keys.
    wait : bool
        Wait for a run folder another sweep holds, instead of failing.
    force : bool
        Recompute every stage of the task's runs.
    finished : tuple of str
        Labels of ``jobs`` a previous sweep finished: their run folders are
        not touched, but their photos still join the stage-1 batches, so that
        every class of a group gets the masks an uninterrupted sweep gives.
    """

    model: ModelSpec
    image_set: str
    jobs: tuple[ClassJob, ...]
    stages: str
    config: object
    device: str = "cpu"
    threads: int = 1
    image_cache: bool = True
    side: int = 0
    wait: bool = False
    force: bool = False
    finished: tuple[str, ...] = ()

    @property
    def pending(self) -> tuple[ClassJob, ...]:
        """The jobs this task runs (``finished`` ones only lend their photos to the shared stage-1 batches)."""
        return tuple(j for j in self.jobs if j.label not in self.finished)

    @property
    def name(self) -> str:
        labels = [j.label for j in self.pending]
        return f"{self.model.label}/{labels[0]}" + (f" (+{len(labels) - 1} classes)" if len(labels) > 1 else "")


_CLASSIFIERS: dict = {}


def _classifier(spec: ModelSpec, device: str):
    """The task's model, loaded once per process and kept for its later tasks."""
    from .models import load_model

    key = (spec.name, spec.weights, device)
    if key not in _CLASSIFIERS:
        _CLASSIFIERS.clear()  # one model per process at a time: a sweep runs models one after another
        _CLASSIFIERS[key] = load_model(spec.name, weights=spec.weights, device=device, allow_download=False)
    return _CLASSIFIERS[key]


def _fail_once(spec: TaskSpec) -> None:
    hook = os.environ.get(FAIL_ONCE_ENV)
    if not hook or "=" not in hook:
        return
    which, marker = hook.split("=", 1)
    crash = which.startswith("crash:")
    which = which.removeprefix("crash:")
    if which in {f"{spec.model.label}/{j.label}" for j in spec.pending} and not os.path.exists(marker):
        Path(marker).write_text("failed once\n", encoding="utf-8")
        if crash:
            os._exit(137)
        raise RuntimeError(f"{FAIL_ONCE_ENV}: task {which} made to fail once (test hook)")


def _stage1_together(spec: TaskSpec, classifier, sweep: Path) -> dict:
    """Stage 1 of every class of a group in shared batches -> per class label a MaskRun.

    Computed only when a pending class lacks stage 1, and then for the whole
    group, so that the batches (and so the masks, to the last bit) never
    depend on which classes an interrupted sweep had finished.
    """
    from .masks import MaskRun, compute_masks
    from .pipeline import stage1_is_cached

    config = spec.config.masks
    if len(spec.jobs) < 2 or not any(
            spec.force or not stage1_is_cached(sweep / j.run, [Path(f) for f in j.files], classifier, j.target, config)
            for j in spec.pending):
        return {}
    todo = spec.jobs
    paths = [Path(f) for j in todo for f in j.files]
    targets = [j.target for j in todo for _ in j.files]
    run = compute_masks(paths, classifier, target=targets, config=config, progress=False)
    runs, start = {}, 0
    for j in todo:
        part = run.results[start:start + len(j.files)]
        share = len(part) / max(len(paths), 1)
        runs[j.label] = MaskRun(part, config, run.model, seconds=run.seconds * share,
                                image_iterations=round(run.image_iterations * share), batch_size=run.batch_size)
        start += len(j.files)
    return runs


def execute(spec: TaskSpec, sweep: str | Path) -> list[dict]:
    """Run a task into the sweep folder ``sweep``; one outcome per class.

    Returns
    -------
    list of dict
        Per class of ``spec.jobs``: ``{"class", "run", "status", "seconds"}``
        (``status`` from the run's ``result.json``).  The rows of
        ``sweep.csv`` are built from the run folders by the driver.

    Raises
    ------
    Exception
        Whatever stops the task (a worker that runs out of memory, a run
        folder held by another sweep, the test hook); the driver records it.
    """
    from .pipeline import summarize
    from .threads import set_num_threads

    _fail_once(spec)
    sweep = Path(sweep)
    classifier = _classifier(spec.model, spec.device)
    set_num_threads(spec.threads)
    cache = sweep / "cache" if spec.image_cache else None
    together = _stage1_together(spec, classifier, sweep)
    outcomes = []
    for job in spec.pending:
        started = time.perf_counter()
        run = summarize([Path(f) for f in job.files], classifier, target=job.target, out=sweep / job.run,
                        config=spec.config, progress=False, wait=spec.wait, stages=spec.stages, image_cache=cache,
                        force=spec.force,
                        mask_results=together.get(job.label))
        outcomes.append({"class": job.label, "run": job.run, "status": run.result["status"],
                         "seconds": time.perf_counter() - started})
    return outcomes


# --------------------------------------------------------------------------- no shared file system


def folder_files(folder: Path, skip: tuple[str, ...] = ()) -> list[str]:
    """Relative posix paths of the regular files under ``folder``, without locks, temporaries and ``skip`` prefixes."""
    if not folder.is_dir():
        return []
    names = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if (path.is_file() and not path.is_symlink() and path.name not in _LOCAL_ONLY
                and not path.name.endswith(".vsum-tmp") and not rel.startswith(skip)):
            names.append(rel)
    return names


def pack_folder(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file of :func:`folder_files` as ``{relative posix path: bytes}``."""
    return {rel: (folder / rel).read_bytes() for rel in folder_files(folder, skip)}


def unpack_folder(files: dict[str, bytes], folder: Path) -> None:
    """Write ``files`` of :func:`pack_folder` under ``folder`` (plain writes: a private temporary folder)."""
    for rel, data in files.items():
        path = folder / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise ValueError(f"refusing to write {rel!r} outside {folder}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def execute_shipped(spec: TaskSpec, images: dict[str, list[tuple[str, bytes]]], runs: dict[str, dict[str, bytes]],
                    cache: dict[str, bytes]) -> tuple[list[dict], dict[str, dict[str, bytes]], dict[str, bytes]]:
    """:func:`execute` in a private temporary folder, inputs and outputs as bytes.

    Parameters
    ----------
    spec : TaskSpec
        Its jobs' ``files`` are ignored: ``images`` replaces them.
    images : dict
        Per class label, ``[(file name, bytes), ...]`` in the job's order.
    runs : dict
        Per run folder (relative to the sweep), its files so far (:func:`pack_folder`).
    cache : dict
        The image-cache entries the task may reuse, relative to ``SWEEP/cache``.

    Returns
    -------
    outcomes, runs, cache
        The outcomes of :func:`execute`, every file of each run folder
        afterwards, and the cache entries this task added.
    """
    with tempfile.TemporaryDirectory(prefix="vsum-task-") as tmp:
        root = Path(tmp)
        sweep = root / "sweep"
        jobs = []
        for k, job in enumerate(spec.jobs):
            files = []
            for n, (name, data) in enumerate(images[job.label]):
                path = root / "images" / str(k) / str(n) / name  # one folder per file keeps every name as it was
                path.parent.mkdir(parents=True)
                path.write_bytes(data)
                files.append(str(path))
            jobs.append(replace(job, files=tuple(files)))
            unpack_folder(runs.get(job.run, {}), sweep / job.run)
        unpack_folder(cache, sweep / "cache")
        outcomes = execute(replace(spec, jobs=tuple(jobs)), sweep)
        out_runs = {job.run: pack_folder(sweep / job.run) for job in spec.pending}
        new_cache = {rel: data for rel, data in pack_folder(sweep / "cache", skip=("locks/",)).items()
                     if rel not in cache}
        shutil.rmtree(sweep, ignore_errors=True)
    return outcomes, out_runs, new_cache

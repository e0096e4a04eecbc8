"""Where sweep tasks run: a process pool on this machine, or a Ray cluster.

Both backends take the same :class:`vsum.sweep_tasks.TaskSpec` list and call
``done(spec, outcomes, error)`` in the driver once per task, as tasks end
(``outcomes`` None and ``error`` a one-line reason for a task that failed).
A task runs in phases: one, or, with ``--device cuda``, stage 1 on a GPU
process and then stages 2-5 on a CPU worker (the second phase reuses the
masks the first stored).

- :class:`LocalBackend`: ``workers`` processes (``spawn``), each running one
  task at a time with ``threads`` threads, so ``workers x threads`` cores
  are used; with CUDA phases, one more process per GPU, each seeing only its
  GPU (``CUDA_VISIBLE_DEVICES``), runs stage 1.  A worker dies with the driver (``PR_SET_PDEATHSIG`` on Linux,
  else a watchdog thread), so a killed sweep leaves no orphan holding a run
  folder.  A worker that dies takes its running tasks with it: they are
  recorded as failed and the pool is restarted for the rest.  A task that
  raises is recorded as failed; the next run of the sweep retries it.
- :class:`RayBackend`: an existing cluster (``address``) or a local one.
  Tasks declare ``num_cpus=threads`` (and ``num_gpus=1`` for stage 1 on
  CUDA); Ray retries a task whose worker died, and one that raised up to
  ``retries`` times.  Workers need no shared file system: images, run folders
  and image-cache entries travel as bytes (:func:`vsum.sweep_tasks.execute_shipped`)
  and the driver writes the results, holding each run folder's lock while
  its task is out.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from .errors import VsumError
from .sweep_tasks import FAIL_ONCE_ENV, TaskSpec, execute, execute_shipped, folder_files, pack_folder

__all__ = ["BACKENDS", "LocalBackend", "RayBackend", "task_phases", "thread_environment"]

BACKENDS = ("local", "ray")

Done = Callable[[TaskSpec, "list[dict] | None", "str | None"], None]


def thread_environment(threads: int) -> dict[str, str]:
    """Environment variables that size the BLAS and OpenMP pools of a worker to ``threads``."""
    value = str(int(threads))
    return {"OMP_NUM_THREADS": value, "OPENBLAS_NUM_THREADS": value, "MKL_NUM_THREADS": value,
            "VSUM_NUM_THREADS": value}


def task_phases(spec: TaskSpec) -> list[TaskSpec]:
    """The phases of a task: itself, or on CUDA stage 1 on the GPU then the rest on the CPU."""
    if spec.device != "cuda":
        return [spec]
    first = replace(spec, stages="masks")
    return [first] if spec.stages == "masks" else [first, replace(spec, device="cpu")]


def error_text(exc: BaseException) -> str:
    """One line for a failed task: the exception's type and message, and where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    message = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {message}{where}"


# --------------------------------------------------------------------------- local processes


def _die_with_parent() -> None:
    """Worker initializer: end this process when the driver ends, however it ends."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # the parent died before the call
                os._exit(1)
            return
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        import time

        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="vsum-watch-parent", daemon=True).start()


def _run_local(spec: TaskSpec, sweep: str) -> list[dict]:
    return execute(spec, sweep)


def _gpu_worker(index: int) -> None:
    """Initializer of a GPU process: only GPU ``index`` is visible to it (set before torch starts CUDA)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
    _die_with_parent()


class LocalBackend:
    """A pool of ``workers`` processes on this machine (see the module docstring).

    With CUDA phases, one more process per GPU (``gpus``), each seeing only
    its GPU, runs stage 1; a phase goes to the least busy one.
    """

    def __init__(self, workers: int, threads: int, gpus: int = 1):
        self.workers, self.threads, self.gpus = int(workers), int(threads), max(1, int(gpus))

    @staticmethod
    def _pool(size: int, gpu: int | None = None) -> cf.ProcessPoolExecutor:
        context = multiprocessing.get_context("spawn")
        if gpu is None:
            return cf.ProcessPoolExecutor(max_workers=size, mp_context=context, initializer=_die_with_parent)
        return cf.ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_gpu_worker, initargs=(gpu,))

    def run(self, tasks: Sequence[TaskSpec], sweep: Path, done: Done,
            started: Callable[[TaskSpec], None] | None = None) -> None:
        """Run every task; ``started`` and ``done`` are called in this thread as each starts and ends."""
        saved = {k: os.environ.get(k) for k in thread_environment(self.threads)}
        os.environ.update(thread_environment(self.threads))  # spawned workers inherit it before importing numpy
        try:
            self._run(list(tasks), str(sweep), done, started or (lambda spec: None))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _pools(self, cuda: bool) -> tuple[cf.ProcessPoolExecutor, list[cf.ProcessPoolExecutor]]:
        return self._pool(self.workers), [self._pool(1, gpu=i) for i in range(self.gpus)] if cuda else []

    def _run(self, tasks: list[TaskSpec], sweep: str, done: Done, started: Callable[[TaskSpec], None]) -> None:
        queue = [(spec, task_phases(spec)) for spec in tasks]
        cuda = any(p[0].device == "cuda" for _, p in queue)
        cpu, gpus = self._pools(cuda)
        load: dict[int, int] = {}
        running: dict[cf.Future, tuple[TaskSpec, list[TaskSpec], cf.ProcessPoolExecutor]] = {}
        completed = False
        try:
            while queue or running:
                waiting = []
                for spec, phases in queue:  # submit every phase whose pool has room, in order
                    if phases[0].device == "cuda":
                        pool = min(gpus, key=lambda p: load.get(id(p), 0))
                        room = load.get(id(pool), 0) < 1
                    else:
                        pool, room = cpu, load.get(id(cpu), 0) < self.workers
                    if not room:
                        waiting.append((spec, phases))
                        continue
                    if len(phases) == len(task_phases(spec)):
                        started(spec)
                    load[id(pool)] = load.get(id(pool), 0) + 1
                    running[pool.submit(_run_local, phases[0], sweep)] = (spec, phases[1:], pool)
                queue = waiting
                ended, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                broken = False
                for future in ended:
                    spec, rest, pool = running.pop(future)
                    load[id(pool)] -= 1
                    try:
                        outcomes = future.result()
                    except cf.process.BrokenProcessPool as exc:
                        broken = True
                        done(spec, None, f"the worker process died ({exc or 'killed, or out of memory'})")
                        continue
                    except Exception as exc:  # noqa: BLE001 - recorded per task; the sweep goes on
                        done(spec, None, error_text(exc))
                        continue
                    if rest:
                        queue.insert(0, (spec, rest))
                    else:
                        done(spec, outcomes, None)
                if broken:  # a dead worker breaks its whole pool: record what ran on it, start new pools
                    for future, (spec, _, _) in list(running.items()):
                        future.cancel()
                        done(spec, None, "the worker process died while running this task")
                    running.clear()
                    load.clear()
                    for pool in (cpu, *gpus):
                        pool.shutdown(wait=False, cancel_futures=True)
                    cpu, gpus = self._pools(cuda)
            completed = True
        finally:  # on Ctrl-C do not wait for running tasks: the workers die with this process
            for pool in (cpu, *gpus):
                pool.shutdown(wait=completed, cancel_futures=True)


# --------------------------------------------------------------------------- Ray


def _import_ray():
    try:
        import ray
    except ImportError:
        raise VsumError("--backend ray needs Ray: pip install \"visual-summaries[ray]\"") from None
    return ray


class RayBackend:
    """Tasks on a Ray cluster (see the module docstring).

    Parameters
    ----------
    address : str or None
        ``"auto"``, ``"ray://host:port"``; None starts a local cluster of
        ``workers x threads`` CPUs, unless Ray is already initialised in this
        process (then that cluster is used as it is).
    workers, threads : int
        Tasks in flight at once, and CPUs per task.
    retries : int
        Retries of a task that raised (a task whose worker died is retried too).
    """

    def __init__(self, address: str | None, workers: int, threads: int, retries: int = 2):
        self.address, self.workers, self.threads = address, int(workers), int(threads)
        self.retries = int(retries)

    def _start(self):
        ray = _import_ray()
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.workers * self.threads, include_dashboard=False, log_to_driver=False)
        return ray

    @staticmethod
    def _payload(spec: TaskSpec, sweep: Path):
        """The task's images, run folders so far and the image-cache entries of its images, as bytes."""
        import hashlib

        from .image_cache import ImageCache

        images = {j.label: [(Path(f).name, Path(f).read_bytes()) for f in j.files] for j in spec.jobs}
        runs = {j.run: pack_folder(sweep / j.run) for j in spec.pending}
        cache = {}
        if spec.image_cache:
            for _, data in (item for files in images.values() for item in files):
                pkey = ImageCache.proposals_key(hashlib.sha1(data).hexdigest(), spec.side, spec.config.proposals)
                dkey = ImageCache.descriptors_key(pkey, spec.config.descriptors)
                for rel in (f"proposals/{pkey[:2]}/{pkey}.npy", f"descriptors/{dkey[:2]}/{dkey}.npy"):
                    if (sweep / "cache" / rel).is_file():
                        cache[rel] = (sweep / "cache" / rel).read_bytes()
        return images, runs, cache

    def run(self, tasks: Sequence[TaskSpec], sweep: Path, done: Done, started: Callable[[TaskSpec], None] | None = None,
            wait: bool = False) -> None:
        """Run every task on the cluster; the results are written into ``sweep`` by this process."""
        from .runlock import RunLock, RunLocked

        ray = self._start()
        env = thread_environment(self.threads)
        if os.environ.get(FAIL_ONCE_ENV):
            env[FAIL_ONCE_ENV] = os.environ[FAIL_ONCE_ENV]
        remote = ray.remote(execute_shipped)
        queue = [(spec, task_phases(spec)) for spec in tasks]
        running: dict = {}
        try:
            while queue or running:
                while queue and len(running) < self.workers:
                    spec, phases = queue.pop(0)
                    locks = []
                    try:
                        for job in spec.pending:
                            locks.append(RunLock(sweep / job.run, wait=wait).acquire())
                    except RunLocked as exc:
                        for lock in locks:
                            lock.release()
                        done(spec, None, str(exc))
                        continue
                    phase = phases[0]
                    if started is not None and len(phases) == len(task_phases(spec)):
                        started(spec)
                    options = {"num_cpus": self.threads, "max_retries": self.retries, "retry_exceptions": True,
                               "runtime_env": {"env_vars": env}}
                    if phase.device == "cuda":
                        options["num_gpus"] = 1
                    ref = remote.options(**options).remote(phase, *self._payload(phase, sweep))
                    running[ref] = (spec, phases[1:], locks)
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    spec, rest, locks = running.pop(ref)
                    try:
                        outcomes, runs, cache = ray.get(ref)
                        self._write(sweep, runs, cache)
                    except Exception as exc:  # noqa: BLE001 - recorded per task; the sweep goes on
                        for lock in locks:
                            lock.release()
                        done(spec, None, error_text(getattr(exc, "cause", None) or exc))
                        continue
                    for lock in locks:
                        lock.release()
                    if rest:
                        queue.insert(0, (spec, rest))
                    else:
                        done(spec, outcomes, None)
        finally:
            for _, _, locks in running.values():
                for lock in locks:
                    lock.release()

    @staticmethod
    def _write(sweep: Path, runs: dict, cache: dict) -> None:
        """Write returned run folders (removing files the task no longer has) and new cache entries."""
        from .io import atomic_write_bytes

        for run, files in runs.items():
            folder = sweep / run
            for stale in set(folder_files(folder)) - set(files):  # names only: the old files are not read
                (folder / stale).unlink(missing_ok=True)
            for rel, data in files.items():
                atomic_write_bytes(folder / rel, data)
        for rel, data in cache.items():
            if not (sweep / "cache" / rel).exists():
                atomic_write_bytes(sweep / "cache" / rel, data)

"""Small benchmark harness: registry, timing, machine/commit metadata, reports.

A benchmark is a function that yields :class:`Case` objects, registered under
a name with the :func:`benchmark` decorator in a module ``bench_<name>.py``
next to this file (found by :func:`discover`).  ``run.py`` times every case
(the measured callable and, when given, its reference baseline) and writes
``results/<name>.json`` and ``results/<name>.md`` atomically.

Registering a benchmark::

    from harness import Case, benchmark

    @benchmark("masks", description="stage-1 mask optimisation, CPU")
    def cases(quick: bool):
        for batch in ([4] if quick else [4, 16]):
            run = make_runner(batch)               # set-up is not timed
            yield Case(
                name=f"batch {batch}", fn=run, number=1,
                work=batch * 300, unit="image-iter",  # -> throughput column in image-iter/s
                params={"batch": batch, "model": "lite0"},
                measure=lambda result: {"peak MiB": peak_memory_mib()},
            )

Free-form ``params`` become table columns before the timings, ``extra``
(static) and the dict returned by ``measure`` (computed once, after timing)
become columns after them.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS_DIR = HERE / "results"


# ---------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------


@dataclass
class Case:
    """One measured configuration of a benchmark.

    Attributes
    ----------
    name : str
        Row label, unique within the benchmark.
    fn : callable
        ``fn()`` is the timed code (the "compiled"/candidate implementation).
    reference : callable, optional
        Baseline ``reference()`` timed the same way; gives the speed-up column
        ``reference median / fn median``.
    work : float, optional
        Units of work done by one call (pairs, boxes, image-iterations, ...);
        throughput = ``work / median`` in ``unit``/s.
    unit : str
        Name of one unit of work, shown with the throughput.
    params : dict
        Free-form description of the inputs, shown as columns before timings.
    extra : dict
        Free-form static columns shown after the timings.
    measure : callable, optional
        ``measure(result) -> dict`` called once after timing; its items are
        added to the extra columns (e.g. peak memory, final loss, accuracy).
    check : callable, optional
        ``check(fn_output, reference_output)`` called once before timing;
        should raise if the two implementations disagree.
    number : int, optional
        Calls per timed repeat; default: calibrated so a repeat lasts at least
        ``min_time`` seconds.  Reported times are per call.
    repeat : int, optional
        Overrides the run's ``--repeat`` for this case.
    reference_repeat : int, optional
        Repeats for the (often slow) reference; default: same as ``repeat``.
    warmup : bool
        Make one untimed call of each callable first (default).  Set False for
        long runs with a fixed ``number`` where a warm-up would double the cost.
    """

    name: str
    fn: Callable[[], Any]
    reference: Callable[[], Any] | None = None
    work: float | None = None
    unit: str = "items"
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    measure: Callable[["Result"], dict[str, Any]] | None = None
    check: Callable[[Any, Any], None] | None = None
    number: int | None = None
    repeat: int | None = None
    reference_repeat: int | None = None
    warmup: bool = True


@dataclass
class Timing:
    """Wall-time statistics of one callable, in seconds per call."""

    median_s: float
    min_s: float
    max_s: float
    repeats: int
    number: int
    times_s: list[float]

    @classmethod
    def from_times(cls, times: list[float], number: int) -> "Timing":
        return cls(statistics.median(times), min(times), max(times), len(times), number, times)


@dataclass
class Result:
    """Outcome of one :class:`Case`."""

    case: str
    params: dict[str, Any]
    timing: Timing
    reference: Timing | None
    work: float | None
    unit: str
    extra: dict[str, Any]

    @property
    def throughput(self) -> float | None:
        """Units of work per second (median time)."""
        return self.work / self.timing.median_s if self.work and self.timing.median_s > 0 else None

    @property
    def reference_throughput(self) -> float | None:
        if self.reference is None or not self.work or self.reference.median_s <= 0:
            return None
        return self.work / self.reference.median_s

    @property
    def speedup(self) -> float | None:
        """Reference median / measured median (> 1: faster than the reference)."""
        if self.reference is None or self.timing.median_s <= 0:
            return None
        return self.reference.median_s / self.timing.median_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "params": self.params,
            "unit": self.unit,
            "work": self.work,
            "timing": dataclasses.asdict(self.timing),
            "reference": dataclasses.asdict(self.reference) if self.reference else None,
            "throughput_per_s": self.throughput,
            "reference_throughput_per_s": self.reference_throughput,
            "speedup": self.speedup,
            "extra": self.extra,
        }


@dataclass
class Benchmark:
    """A registered benchmark: ``cases(quick)`` yields :class:`Case` objects."""

    name: str
    cases: Callable[[bool], Iterable[Case]]
    description: str = ""
    label: str = "compiled"  # column label of Case.fn
    reference_label: str = "reference"  # column label of Case.reference
    only_when_named: bool = False  # run.py runs it only when named (e.g. it needs a GPU)


REGISTRY: dict[str, Benchmark] = {}


def benchmark(name: str, *, description: str = "", label: str = "compiled", reference_label: str = "reference",
              only_when_named: bool = False):
    """Decorator registering ``fn(quick: bool) -> Iterable[Case]`` as benchmark ``name``.

    ``only_when_named``: ``run.py`` without names skips it (a benchmark that
    needs hardware the usual machine lacks, such as a GPU).
    """

    def register(fn: Callable[[bool], Iterable[Case]]):
        if name in REGISTRY and REGISTRY[name].cases is not fn:
            raise ValueError(f"benchmark {name!r} is registered twice")
        desc = description or next(iter((fn.__doc__ or "").strip().splitlines()), "")
        REGISTRY[name] = Benchmark(name, fn, desc, label, reference_label, only_when_named)
        return fn

    return register


def discover(directory: Path = HERE) -> dict[str, Benchmark]:
    """Import every ``bench_*.py`` in ``directory`` so that they register themselves."""
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    sys.modules.setdefault("harness", sys.modules[__name__])  # one registry however we were imported
    for path in sorted(directory.glob("bench_*.py")):
        importlib.import_module(path.stem)
    return REGISTRY


# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------


def _run(fn: Callable[[], Any], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - t0


def time_callable(
    fn: Callable[[], Any], repeat: int, number: int | None = None, min_time: float = 0.05, warmup: bool = True
) -> Timing:
    """Median/min wall time per call of ``fn`` over ``repeat`` repeats.

    With ``number=None`` the calls per repeat are calibrated so that one repeat
    lasts at least ``min_time`` (the calibration runs double as warm-up).
    """
    if number is None:
        number, elapsed = 1, _run(fn, 1)  # first call: warm-up (caches, lazy init, threads)
        while elapsed < min_time and number < 1_000_000:
            number = min(1_000_000, number * max(2, min(10, math.ceil(min_time / max(elapsed, 1e-9)))))
            elapsed = _run(fn, number)
    elif warmup:
        _run(fn, 1)
    times = [_run(fn, number) / number for _ in range(max(1, repeat))]
    return Timing.from_times(times, number)


def run_case(case: Case, repeat: int, min_time: float = 0.05) -> Result:
    if case.check is not None and case.reference is not None:
        case.check(case.fn(), case.reference())
    rep = case.repeat or repeat
    timing = time_callable(case.fn, rep, case.number, min_time, case.warmup)
    ref = None
    if case.reference is not None:
        ref = time_callable(case.reference, case.reference_repeat or rep, case.number, min_time, case.warmup)
    result = Result(case.name, dict(case.params), timing, ref, case.work, case.unit, dict(case.extra))
    if case.measure is not None:
        result.extra.update(case.measure(result))
    return result


# ---------------------------------------------------------------------------
# metadata
# ---------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_usable": usable,
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "arch": platform.machine(),
    }


def load_average() -> float | None:
    """1-minute load average (other work on the machine skews timings)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def software_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "numpy": _version("numpy"),
        "torch": _version("torch"),  # from package metadata: torch is not imported
        "visual-summaries": _version("visual-summaries"),
    }
    try:
        import vsum._core as core

        info["vsum_core"] = core.__file__
        info["vsum_num_threads"] = core.get_num_threads()
    except ImportError:
        info["vsum_core"] = None
    return info


def git_info(repo: Path = REPO) -> dict[str, Any]:
    """Commit of the working tree, whether tracked files differ from it, and untracked files.

    ``benchmarks/results/`` is ignored, so writing results does not make a
    later run look dirty.
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain", "--", ".", ":(exclude)benchmarks/results").splitlines()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "modified": [], "untracked": []}
    modified = [line[3:] for line in status if not line.startswith("??")]
    untracked = [line[3:] for line in status if line.startswith("??")]
    return {"commit": commit, "dirty": bool(modified), "modified": modified[:50], "untracked": untracked[:50]}


# ---------------------------------------------------------------------------
# reports
# ---------------------------------------------------------------------------


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder + os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def format_seconds(s: float | None) -> str:
    if s is None:
        return ""
    for scale, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


def format_rate(x: float | None, unit: str) -> str:
    if x is None:
        return ""
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:.3g} {prefix}{unit}/s"
    return f"{x:.3g} {unit}/s"


def table_cell(v: Any) -> str:
    """One markdown table cell: empty for None, 4 significant digits for floats, ``|`` escaped."""
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|")


def _keys(dicts: Iterable[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for d in dicts:
        keys += [k for k in d if k not in keys]
    return keys


def build_report(bench: Benchmark, results: list[Result], settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "benchmark": bench.name,
        "description": bench.description,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "software": software_info(),
        "git": git_info(),
        "settings": settings,
        "labels": {"measured": bench.label, "reference": bench.reference_label},
        "results": [r.to_dict() for r in results],
    }


def render_markdown(report: dict[str, Any], results: list[Result]) -> str:
    m, sw, g, st = report["machine"], report["software"], report["git"], report["settings"]
    label, ref_label = report["labels"]["measured"], report["labels"]["reference"]
    commit = (g["commit"] or "unknown")[:12] + (" (dirty: tracked files modified)" if g["dirty"] else "")
    if g.get("untracked"):
        commit += f" (+{len(g['untracked'])} untracked paths, listed in the JSON)"
    lines = [
        f"# Benchmark `{report['benchmark']}`",
        "",
        report["description"] or "",
        "",
        f"- date: {report['date']}",
        f"- commit: {commit}",
        f"- machine: {m['cpu']}, {m['cores_usable']} usable / {m['cores_logical']} logical cores, "
        f"{m['ram_gib']} GiB RAM, {m['os']}, 1-min load average {st.get('load_avg_1m_before')} before the run",
        f"- software: {sw['python']}, numpy {sw['numpy']}, torch {sw['torch']}, "
        f"visual-summaries {sw['visual-summaries']}, vsum threads {sw.get('vsum_num_threads')}",
        f"- settings: repeat {st['repeat']}, quick {st['quick']}; times are per call, "
        f"median and min over the repeats",
        "",
    ]
    pkeys = _keys(r.params for r in results)
    ekeys = _keys(r.extra for r in results)
    has_ref = any(r.reference for r in results)
    header = ["case", *pkeys, f"{label} median", f"{label} min", "repeats", "throughput"]
    if has_ref:
        header += [f"{ref_label} median", f"{ref_label} throughput", "speed-up"]
    header += ekeys
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in results:
        row = [r.case, *(table_cell(r.params.get(k)) for k in pkeys)]
        row += [
            format_seconds(r.timing.median_s),
            format_seconds(r.timing.min_s),
            f"{r.timing.repeats}x{r.timing.number}",
            format_rate(r.throughput, r.unit),
        ]
        if has_ref:
            row += [
                format_seconds(r.reference.median_s) if r.reference else "",
                format_rate(r.reference_throughput, r.unit),
                f"{r.speedup:.1f}x" if r.speedup else "",
            ]
        row += [table_cell(r.extra.get(k)) for k in ekeys]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "repeats = timed repeats x calls per repeat; speed-up = reference median / median.", ""]
    return "\n".join(lines)


def run_benchmark(
    bench: Benchmark,
    *,
    repeat: int = 7,
    quick: bool = False,
    out_dir: Path = RESULTS_DIR,
    min_time: float | None = None,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, Any], str]:
    """Run every case of ``bench``; write ``<out_dir>/<name>.json`` and ``.md``."""
    min_time = (0.01 if quick else 0.05) if min_time is None else min_time
    load_before = load_average()
    results: list[Result] = []
    for case in bench.cases(quick):
        result = run_case(case, repeat, min_time)
        speed = f", {result.speedup:.1f}x vs {bench.reference_label}" if result.speedup else ""
        log(f"  {bench.name}: {case.name}: {format_seconds(result.timing.median_s)}{speed}")
        results.append(result)
    settings = {"repeat": repeat, "quick": quick, "min_time_s": min_time, "load_avg_1m_before": load_before}
    report = build_report(bench, results, settings)
    text = render_markdown(report, results)
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / f"{bench.name}.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out_dir / f"{bench.name}.md", text)
    return report, text

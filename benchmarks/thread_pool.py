"""Benchmark `threads`: the persistent thread pool against an earlier build, side by side in one run.

The same two workloads run, alternately, with the installed vsum and with an
earlier build of it (``--baseline DIR``: a folder holding that build's
``vsum`` package, e.g. ``pip install --no-deps --target DIR <its wheel>``):

- ``all-pairs N=50``: :func:`vsum.pairs.all_pairs` on the cached proposals of
  50 photos (``bench_pairs.py``: 500 selective-search boxes and their
  descriptors per photo), pairs ``i < j`` (1,225), top-100 lists, no blocks;
- ``selective search``: :func:`vsum.proposals.selective_search` (quality
  mode, 500 boxes) on 20 albatross photos resized to 224 x 224.

Each run is a fresh child process with the default thread count (every
core).  The child samples its own thread count (``/proc/self/status``) every
2 ms while it works, and hashes its outputs, so the report shows the speed,
that the results are identical, and how many threads each build runs.

    python benchmarks/thread_pool.py --baseline /tmp/vsum-d897843 --label d897843 [--repeat 3]

Writes ``benchmarks/results/threads.{json,md}`` with the machine, the load
and the commit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SS_PHOTOS = 20
SS_SIDE = 224
PAIRS_N = 50


class ThreadSampler:
    """Samples the process's thread count (``/proc/self/status`` Threads) in a background thread."""

    def __init__(self, interval: float = 0.002):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def count() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.count())
            time.sleep(self.interval)

    def __enter__(self):
        self.before = self.count()  # main thread + library pools already started, before the sampler
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def child_pairs() -> dict:
    from vsum.pairs import all_pairs

    from bench_pairs import load_inputs

    boxes, descs, _ = load_inputs(PAIRS_N, log=lambda s: None)
    with ThreadSampler() as sampler:
        t0 = time.perf_counter()
        res = all_pairs(boxes, descs, topk=100, blocks=False, diagonal=False)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "pairs": res.pairs, "threads_before": sampler.before, "threads_peak": sampler.peak,
            "digest": _digest(res.topk_scores + res.topk_image + res.topk_index)}


def _ss_photos() -> list[np.ndarray]:
    from PIL import Image

    data = Path(os.environ.get("VSUM_DATA", HERE.parent.parent / "shared" / "data"))
    paths = sorted((data / "albatross").glob("*.jpg"))[:SS_PHOTOS]
    if len(paths) < SS_PHOTOS:
        raise FileNotFoundError(f"need {SS_PHOTOS} photos in {data / 'albatross'} (set VSUM_DATA)")
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("RGB").resize((SS_SIDE, SS_SIDE), Image.BILINEAR)))
    return out


def child_selective_search() -> dict:
    from vsum.proposals import selective_search

    photos = _ss_photos()
    selective_search(photos[0], num=500)  # warm-up: first-call costs are not the point here
    with ThreadSampler() as sampler:
        t0 = time.perf_counter()
        boxes = [selective_search(rgb, num=500)[0] for rgb in photos]
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "photos": len(photos), "threads_before": sampler.before,
            "threads_peak": sampler.peak, "digest": _digest(boxes)}


CHILDREN = {"all-pairs N=50": child_pairs, "selective search": child_selective_search}


def run_child(case: str, baseline: Path | None) -> dict:
    """One measurement in a fresh process; ``baseline`` puts the earlier build first on the path."""
    env = dict(os.environ)
    if baseline is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(baseline), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    code = ("import json, sys; sys.path.insert(0, %r); import thread_pool as b, vsum; "
            "r = b.CHILDREN[%r](); r['vsum'] = vsum.__file__; print(json.dumps(r))") % (str(HERE), case)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=HERE)
    if done.returncode != 0:
        raise RuntimeError(f"{case} ({'baseline' if baseline else 'current'}) failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    from harness import atomic_write_text, git_info, load_average, machine_info, software_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, type=Path, help="folder holding the earlier build's vsum package")
    parser.add_argument("--label", default="baseline", help="name of the earlier build in the report (e.g. its commit)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each build, alternated (default 3)")
    args = parser.parse_args(argv)
    if not (args.baseline / "vsum" / "__init__.py").is_file():
        parser.error(f"{args.baseline} holds no vsum package")

    load_before = load_average()
    runs: dict = {case: {"current": [], "baseline": []} for case in CHILDREN}
    for r in range(args.repeat):
        for case in CHILDREN:
            for which, base in (("baseline", args.baseline), ("current", None)):
                res = run_child(case, base)
                runs[case][which].append(res)
                print(f"[{r + 1}/{args.repeat}] {case:16s} {which:8s} {res['seconds']:7.2f} s  threads "
                      f"{res['threads_before']} -> peak {res['threads_peak']}  {res['digest']}", flush=True)

    rows = []
    for case, by in runs.items():
        cur = statistics.median(x["seconds"] for x in by["current"])
        base = statistics.median(x["seconds"] for x in by["baseline"])
        digests = {x["digest"] for x in by["current"] + by["baseline"]}
        rows.append({"case": case, "current_s": round(cur, 3), "baseline_s": round(base, 3),
                     "speedup": round(base / cur, 3), "identical": len(digests) == 1,
                     "threads_current": max(x["threads_peak"] - x["threads_before"] for x in by["current"]),
                     "threads_baseline": max(x["threads_peak"] - x["threads_before"] for x in by["baseline"])})
    report = {"benchmark": "threads", "baseline": {"label": args.label, "path": str(args.baseline)},
              "machine": machine_info(), "software": software_info(), "git": git_info(),
              "load_before": load_before, "load_after": load_average(), "repeat": args.repeat,
              "rows": rows, "runs": runs}
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    atomic_write_text(out / "threads.json", json.dumps(report, indent=1) + "\n")
    lines = [f"# threads: persistent pool ({report['git'].get('commit', '?')[:7]}) vs {args.label}", "",
             f"{report['machine'].get('cpu')}, {report['machine'].get('cores_usable')} cores, default thread "
             f"count; medians of {args.repeat} alternated runs, each in a fresh process; load before "
             f"{load_before}, after {report['load_after']}.", "",
             "| case | " + args.label + " | current | speed-up | results identical | threads started, "
             + args.label + " | threads started, current |",
             "|---|---:|---:|---:|---|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['case']} | {row['baseline_s']:.2f} s | {row['current_s']:.2f} s | "
                     f"{row['speedup']:.2f}x | {'yes' if row['identical'] else 'NO'} | {row['threads_baseline']} | "
                     f"{row['threads_current']} |")
    lines += ["", "Threads started: the most threads the process held beyond those it had before the measured "
              "work, sampled every 2 ms: the sampler itself, the threads vsum starts (the earlier build: a Python "
              "thread pool around the matcher and new threads inside every kernel call; this build: its persistent "
              "pool, T - 1 threads) and the pools libraries start on first use during the work (SciPy's BLAS in the "
              "whitening, tqdm's monitor).", ""]
    atomic_write_text(out / "threads.md", "\n".join(lines))
    print("\n".join(lines))
    return 0 if all(row["identical"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

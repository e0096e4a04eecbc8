"""A masks-only sweep over the 1000 classes of ``imagenet-samples``: throughput, memory over time, resume after kill.

Runs what a user types, with a labels file (``image,class``: the WordNet id
in each file name, as ImageNet's validation labels come)::

    vsum sweep $VSUM_DATA/imagenet-samples --labels labels.csv --models efficientnet_lite0 \
        --stages masks --smooth-iters 10 --sharp-iters 5 --out SWEEP -q

first killed with SIGKILL once ``--kill-after`` classes are finished, then
run again to the end.  While each runs, the resident memory of the sweep's
process tree (driver and workers) is sampled every second from ``/proc``.
Writes ``benchmarks/results/sweep_scale.{json,md}``: seconds, photos per
second, classes reused by the rerun, peak RSS of the largest process and of
the whole tree, and the tree's peak per tenth of each run (flat = no growth).

    python benchmarks/sweep_scale.py [--sweep runs/sweep-scale] [--kill-after 300]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import atomic_write_text, git_info, load_average, machine_info, software_info  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(root: int) -> tuple[float, float, list[int]]:
    """(sum, largest) resident MiB over ``root`` and its descendants, from ``/proc``, and their pids."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as fh:
                rss[int(entry)] = int(fh.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    todo, seen = [root], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo += children.get(pid, [])
    sizes = [rss.get(p, 0) / 2**20 for p in seen]
    return sum(sizes), max(sizes, default=0.0), seen


def finished(sweep: Path) -> int:
    return sum(1 for p in sweep.glob("tasks/own/*/*.json") if '"failed"' not in p.read_text())


def run(command: list[str], sweep: Path, kill_after: int | None) -> dict:
    """Run the sweep, sampling memory each second; SIGKILL it once ``kill_after`` classes are finished."""
    started = time.perf_counter()
    before = finished(sweep)
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             start_new_session=True)
    samples, killed, pids = [], False, set()
    while child.poll() is None:
        total, largest, tree = tree_rss(child.pid)
        pids.update(tree)
        samples.append((round(time.perf_counter() - started, 1), round(total, 1), round(largest, 1)))
        if kill_after is not None and finished(sweep) >= kill_after:
            os.kill(child.pid, signal.SIGKILL)  # the driver only; its workers must die with it
            killed = True
            break
        time.sleep(1.0)
    output = child.communicate()[0]
    seconds = time.perf_counter() - started
    if not killed and child.returncode != 0:
        raise SystemExit(f"sweep failed ({child.returncode}): {output[-2000:]}")
    time.sleep(2.0)
    orphans = [p for p in pids - {child.pid} if os.path.exists(f"/proc/{p}")]
    tenths = []
    for k in range(10):
        part = [s[1] for s in samples if k * seconds / 10 <= s[0] < (k + 1) * seconds / 10]
        tenths.append(max(part) if part else None)
    done = finished(sweep) - before
    return {"seconds": round(seconds, 1), "killed": killed, "classes_finished": done,
            "photos_per_second": round(done / seconds, 2), "peak_tree_rss_mib": max(s[1] for s in samples),
            "peak_process_rss_mib": max(s[2] for s in samples), "tree_rss_peak_per_tenth_mib": tenths,
            "worker_processes_left_after_kill": len(orphans) if killed else None,
            "output": output.strip().splitlines()[-1] if output.strip() else ""}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="runs/sweep-scale")
    parser.add_argument("--kill-after", type=int, default=300)
    parser.add_argument("--iters", type=int, nargs=2, default=(10, 5), metavar=("SMOOTH", "SHARP"))
    args = parser.parse_args(argv)
    data = Path(os.environ.get("VSUM_DATA", HERE.parent.parent / "shared" / "data"))
    sweep = Path(args.sweep).resolve()
    shutil.rmtree(sweep, ignore_errors=True)
    sweep.parent.mkdir(parents=True, exist_ok=True)
    labels = sweep.parent / (sweep.name + "-labels.csv")
    photos = sorted(p.name for p in (data / "imagenet-samples").iterdir())
    with open(labels, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "class"])
        writer.writerows([name, name.split("_")[0]] for name in photos)
    command = [sys.executable, "-m", "vsum", "sweep", str(data / "imagenet-samples"), "--labels", str(labels),
               "--models", "efficientnet_lite0", "--stages", "masks", "--smooth-iters", str(args.iters[0]),
               "--sharp-iters", str(args.iters[1]), "--out", str(sweep), "-q"]
    load = load_average()
    first = run(command, sweep, args.kill_after)
    manifests = {p: p.stat().st_mtime_ns for p in sweep.glob("runs/*/*/stages/masks.json")}
    second = run(command, sweep, None)
    untouched = sum(p.stat().st_mtime_ns == t for p, t in manifests.items())
    with open(sweep / "sweep.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    table = json.loads((sweep / "sweep.json").read_text(encoding="utf-8"))
    report = {
        "benchmark": "sweep_scale",
        "description": (f"`vsum sweep --stages masks` of efficientnet_lite0 over the {len(photos)} one-photo classes "
                        f"of imagenet-samples (labels file), stage-1 iterations {args.iters[0]} + {args.iters[1]}, "
                        "2 workers x 1 thread; killed with SIGKILL, then run again to the end."),
        "command": ["vsum", *command[3:]], "machine": machine_info(), "software": software_info(),
        "git": git_info(), "load_before": load,
        "killed_run": first, "resumed_run": second,
        "stage1_manifests_untouched_by_rerun": f"{untouched} of {len(manifests)}",
        "rows": len(rows), "statuses": {s: sum(r["status"] == s for r in rows) for s in {r["status"] for r in rows}},
        "top1": table["per_model"][0]["top1"],
        "photos_per_second_overall": round(len(rows) / (first["seconds"] + second["seconds"]), 2),
    }
    atomic_write_text(HERE / "results" / "sweep_scale.json", json.dumps(report, indent=2) + "\n")
    md = [f"# Scale run: {report['description']}", "",
          f"Machine: {report['machine']['cpu']}, {report['machine']['cores_usable']} cores; commit "
          f"{report['git'].get('commit', '?')[:10]}{' (dirty)' if report['git'].get('dirty') else ''}.", "",
          "| run | seconds | classes finished | photos/s | peak RSS, whole tree (MiB) | peak RSS, largest process (MiB) "
          "| tree RSS peak per tenth of the run (MiB) |", "|---|---|---|---|---|---|---|"]
    for name, r in (("killed midway (SIGKILL)", first), ("rerun to the end", second)):
        md.append(f"| {name} | {r['seconds']} | {r['classes_finished']} | {r['photos_per_second']} | "
                  f"{r['peak_tree_rss_mib']} | {r['peak_process_rss_mib']} | "
                  f"{', '.join(str(round(t)) if t is not None else '-' for t in r['tree_rss_peak_per_tenth_mib'])} |")
    md += ["", f"Rows in sweep.csv: {report['rows']} ({report['statuses']}); top-1 of Lite0 on the samples: "
               f"{report['top1']}. Stage-1 manifests of classes finished before the kill left untouched by the "
               f"rerun: {report['stage1_manifests_untouched_by_rerun']}. Worker processes left after the kill: "
               f"{first['worker_processes_left_after_kill']}. Rerun's last line: {second['output']}", ""]
    atomic_write_text(HERE / "results" / "sweep_scale.md", "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The paper's comparison with the offline models: EfficientNet-Lite0/1/2 over 20 classes, then ``vsum compare``.

Runs, as child processes, exactly what a user types::

    vsum sweep ROOT --models efficientnet_lite0,efficientnet_lite1,efficientnet_lite2 --out SWEEP \
        --max-images 8 --smooth-iters 40 --sharp-iters 20 -q
    vsum compare SWEEP

where ROOT links the 10 class folders of ``$VSUM_DATA/imagewoof`` and the 10
of ``$VSUM_DATA/imagenette`` (WordNet ids) side by side.  Images per class
and stage-1 iterations are reduced to fit a 2-core CPU (published: every
photo, 300 + 150 iterations); every other parameter is the published
default.  Each model runs on its own correctly classified photos and on the
photos every model classifies correctly (``--images both``, the default).

Writes ``benchmarks/results/sweep_compare.{json,md}`` (settings, machine,
commit, seconds, peak memory, the per-model and per-class tables and the
paired tests of ``compare.json``) and copies the grouped-bar plot to
``docs/images/sweep_summaries_per_class.png`` for the README.

    python benchmarks/sweep_compare.py [--sweep runs/sweep-compare] [--max-images 8] [--iters 40 20]
    python benchmarks/sweep_compare.py --compare-only     # rerun `vsum compare` on the stored sweep, rewrite the report
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import atomic_write_text, git_info, load_average, machine_info, software_info

MODELS = "efficientnet_lite0,efficientnet_lite1,efficientnet_lite2"


def run(command: list[str]) -> dict:
    """Run a child process; its exit status, seconds, peak RSS (largest process of its tree) and output tail."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = child.communicate()
    seconds = time.perf_counter() - started
    usage = __import__("resource").getrusage(__import__("resource").RUSAGE_CHILDREN)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{output[-3000:]}")
    return {"seconds": round(seconds, 1), "peak_rss_mib_children": round(usage.ru_maxrss / 1024, 1),
            "output": output.strip().splitlines()[-1] if output.strip() else ""}


def make_root(data: Path, root: Path) -> list[str]:
    """ROOT with one link per class folder of imagewoof and imagenette; the class labels."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    labels = []
    for dataset in ("imagewoof", "imagenette"):
        for folder in sorted((data / dataset).iterdir()):
            if folder.is_dir():
                (root / folder.name).symlink_to(folder.resolve(), target_is_directory=True)
                labels.append(folder.name)
    return labels


def _r(value, digits: int = 2):
    """A number for the table: rounded, or n/a."""
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(report: dict) -> str:
    cmp = report["compare"]
    names = {r["class"]: r.get("class_name") for r in cmp["per_class"] if r.get("class_name")}
    lines = [f"# Sweep comparison: {', '.join(cmp['models'])}", "",
             f"{report['description']}", "",
             (f"Machine: {report['machine'].get('cpu')}, {report['machine'].get('cores_usable')} cores; commit "
             f"{report['git'].get('commit', '?')[:10]}{' (dirty)' if report['git'].get('dirty') else ''}; "
             f"sweep {report['sweep_run']['seconds']:.0f} s, compare {report['compare_run']['seconds']:.0f} s."), "",
             f"Compared on: {cmp['note']}", "",
             ("| model | top-1 (own photos) | summaries/class, common photos (mean / median) | "
             "summaries/class, own photos (mean / median) | >= 5 photos (common) | merged (common) |"),
             "|---|---|---|---|---|---|"]
    for m in cmp["per_model"]:
        c, o = m.get("common") or {}, m.get("own") or {}
        lines.append(f"| {m['model']} | {_r(m['top1'], 3)} | {_r(c.get('summaries_mean'))} / "
                     f"{_r(c.get('summaries_median'), 1)} | {_r(o.get('summaries_mean'))} / "
                     f"{_r(o.get('summaries_median'), 1)} | {_r(c.get('summaries_5plus_mean'))} | "
                     f"{_r(c.get('summaries_merged_mean'))} |")
    lines += ["", "Paired Wilcoxon signed-rank tests across classes (summaries per class, compared photos):", "",
              "| A | B | classes | A more | B more | equal | p (A > B) | p (B > A) | p two-sided | verdict |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for t in cmp["tests"]:
        lines.append(f"| {t['a']} | {t['b']} | {t['classes']} | {t['a_more']} | {t['b_more']} | {t['equal']} | "
                     f"{_r(t['p_a_greater'], 3)} | {_r(t['p_b_greater'], 3)} | {_r(t['p_two_sided'], 3)} | "
                     f"{t['verdict']} |")
    models = cmp["models"]
    lines += ["", "Summaries per class (common photos; own photos in parentheses; photos kept in brackets):", "",
              "| class | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for label in cmp["classes"]:
        cells = []
        for model in models:
            rows = {r["image_set"]: r for r in cmp["per_class"] if r["class"] == label and r["model"] == model}
            c, o = rows.get("common", {}), rows.get("own", {})
            common = f"{c['summaries']} [{c['images_kept']}]" if c.get("summaries") is not None else "-"
            own = f"{o['summaries']} [{o['images_kept']}]" if o.get("summaries") is not None else "-"
            cells.append(f"{common} ({own})")
        lines.append(f"| {label} {names.get(label, '')} | " + " | ".join(cells) + " |")
    unfinished = [f"{r['model']}/{r['class']} ({r['image_set']}): {r['error']}" for r in cmp["failed"]]
    if unfinished:
        lines += ["", "Runs without a count (-): " + "; ".join(unfinished)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="runs/sweep-compare", help="sweep folder (default runs/sweep-compare)")
    parser.add_argument("--max-images", type=int, default=8)
    parser.add_argument("--iters", type=int, nargs=2, default=(40, 20), metavar=("SMOOTH", "SHARP"))
    parser.add_argument("--fresh", action="store_true", help="delete the sweep folder first (default: resume it)")
    parser.add_argument("--compare-only", action="store_true",
                        help="keep the stored sweep and its measured run, rerun `vsum compare`, rewrite the report")
    args = parser.parse_args(argv)
    data = Path(os.environ.get("VSUM_DATA", HERE.parent.parent / "shared" / "data"))
    sweep = Path(args.sweep).resolve()
    if args.fresh:
        shutil.rmtree(sweep, ignore_errors=True)
    root = sweep.parent / (sweep.name + "-root")
    classes = make_root(data, root)
    load = load_average()
    command = [sys.executable, "-m", "vsum", "sweep", str(root), "--models", MODELS, "--out", str(sweep),
               "--max-images", str(args.max_images), "--smooth-iters", str(args.iters[0]),
               "--sharp-iters", str(args.iters[1]), "-q"]
    stored = json.loads((HERE / "results" / "sweep_compare.json").read_text()) if args.compare_only else None
    sweep_run = stored["sweep_run"] if stored else run(command)
    compare_run = run([sys.executable, "-m", "vsum", "compare", str(sweep)])
    compare = json.loads((sweep / "compare.json").read_text(encoding="utf-8"))
    table = json.loads((sweep / "sweep.json").read_text(encoding="utf-8"))
    report = {
        "benchmark": "sweep_compare",
        "description": (f"`vsum sweep` of {MODELS.replace(',', ', ')} over the {len(classes)} classes of imagewoof "
                        f"and imagenette, the first {args.max_images} photos of each class, stage-1 iterations "
                        f"{args.iters[0]} + {args.iters[1]} (published: every photo, 300 + 150); everything else "
                        f"published; 2 workers x 1 thread; then `vsum compare`."),
        "command": ["vsum", *command[3:]],
        "machine": machine_info(), "software": software_info(),
        "git": stored["git"] if stored else git_info(), "load_before": stored["load_before"] if stored else load,
        "compare_git": git_info(),
        "sweep_run": sweep_run, "compare_run": compare_run,
        "per_model": table["per_model"], "compare": compare,
    }
    results = HERE / "results"
    atomic_write_text(results / "sweep_compare.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(results / "sweep_compare.md", markdown(report))
    images = HERE.parent / "docs" / "images"
    shutil.copyfile(sweep / compare["plots"]["summaries_per_class"], images / "sweep_summaries_per_class.png")
    shutil.copyfile(sweep / compare["plots"]["summaries_vs_top1"], images / "sweep_summaries_vs_top1.png")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

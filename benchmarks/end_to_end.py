"""End-to-end runs of the ``vsum`` command: ``vsum demo`` and a full class, as JSON + markdown.

Each case runs the exact command a user types, in a fresh run folder, as a
child process (wall time and peak memory include Python start-up and model
loading), then reads the run's ``result.json`` and records counts, seconds
per stage, the summaries and how many images each one's members come from.
Writes ``benchmarks/results/end_to_end.{json,md}`` with the machine, the load
and the commit.

    python benchmarks/end_to_end.py [--case demo] [--case albatross] [--runs runs/bench]

``albatross`` is ``vsum summarize $VSUM_DATA/albatross --model
efficientnet_lite0 --target 146`` with the published parameters (about 30
minutes on a 2-core CPU, nearly all of it stage 1); ``demo`` is ``vsum demo``
(its reduced stage-1 schedule is stated in its output).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import atomic_write_text, git_info, load_average, machine_info, software_info  # noqa: E402

STAGES = ("masks", "proposals", "descriptors", "pairs", "summaries")
MIN_IMAGES = 5  # issue 5: summaries whose members come from at least this many images


def _commands(data: Path) -> dict[str, list[str]]:
    return {
        "demo": ["demo"],
        "albatross": ["summarize", str(data / "albatross"), "--model", "efficientnet_lite0", "--target", "146"],
        "albatross-early-stop": ["summarize", str(data / "albatross"), "--model", "efficientnet_lite0",
                                 "--target", "146", "--early-stop"],
        "albatross-superpixels": ["summarize", str(data / "albatross"), "--model", "efficientnet_lite0",
                                  "--target", "146", "--superpixels", "2000"],
    }


def run_case(name: str, args: list[str], out: Path) -> dict:
    """Run ``vsum <args> --out <out> -q`` in a fresh folder; its outcome and resources."""
    if out.exists():
        shutil.rmtree(out)
    command = [sys.executable, "-m", "vsum", *args, "--out", str(out), "-q"]
    load_before = load_average()
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak memory, not the max over all children
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        stdout.seek(0)
        stderr.seek(0)
        printed, errors = stdout.read(), stderr.read()
    if child.returncode != 0:
        raise SystemExit(f"end_to_end: {name} failed ({child.returncode}):\n{errors}")
    result = json.loads((out / "result.json").read_text())
    config = json.loads((out / "config.json").read_text())["config"]
    images_per_summary = [len({m["image"] for m in s["members"]}) for s in result["summaries"]]
    return {
        "case": name,
        "command": "vsum " + " ".join(args),
        "stdout": printed.strip().splitlines(),
        "wall_seconds": round(wall, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "load_before": load_before,
        "load_after": load_average(),
        "mask_iterations": [config["masks"]["smooth"]["iterations"], config["masks"]["sharp"]["iterations"]],
        "target": result["target"],
        "status": result["status"],
        "counts": result["counts"],
        "timings": result["timings"],
        "images_per_summary": images_per_summary,
        f"summaries_with_{MIN_IMAGES}_images": sum(n >= MIN_IMAGES for n in images_per_summary),
        "report_mib": round((out / "report.html").stat().st_size / 2**20, 2),
        "skipped": result["skipped"],
    }


def mask_means(run: Path) -> dict:
    """Mean sharp-mask drop, area and Adam steps (both passes) over a run's kept images, from ``masks/metrics.csv``."""
    import csv

    with open(run / "masks" / "metrics.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["status"] == "ok"]

    def mean(key):
        values = [float(r[key]) for r in rows if r.get(key) not in (None, "", "nan")]
        return round(sum(values) / len(values), 4) if values else None

    return {"sharp drop": mean("sharp_drop"), "sharp area": mean("sharp_area"),
            "steps per image": round((mean("smooth_steps") or 0) + (mean("sharp_steps") or 0), 1)}


def mask_agreement(run: Path, reference: Path) -> dict:
    """Agreement of the binary sharp masks (saliency >= 128) of two runs on the photos both kept."""
    import numpy as np
    from PIL import Image

    agree = []
    for png in sorted((reference / "masks").glob("*_sharp.png")):
        other = run / "masks" / png.name
        if other.is_file():
            a, b = np.asarray(Image.open(png)) >= 128, np.asarray(Image.open(other)) >= 128
            agree.append(float((a == b).mean()))
    if not agree:
        return {}
    return {"photos compared": len(agree), "agree mean %": round(100 * sum(agree) / len(agree), 2),
            "agree min %": round(100 * min(agree), 2)}


def compare_variants(report: dict, runs: Path) -> None:
    """Add mask means to every case and, to each ``albatross-*`` case, its agreement with ``albatross``."""
    for case in report["cases"]:
        folder = runs / case["case"]
        if (folder / "masks" / "metrics.csv").is_file():
            case["masks"] = mask_means(folder)
        if case["case"].startswith("albatross-") and (runs / "albatross").is_dir():
            case["vs albatross"] = mask_agreement(folder, runs / "albatross")


def render_markdown(report: dict) -> str:
    m, g = report["machine"], report["git"]
    lines = [
        "# End-to-end runs (`vsum demo`, `vsum summarize`)",
        "",
        f"Machine: {m['cpu']}, {m['cores_usable']} usable cores, {m['ram_gib']} GiB; commit `{g['commit']}`"
        + (" (dirty)" if g["dirty"] else "") + f"; {report['date']}.",
        "",
        "| case | stage-1 iterations | images kept | proposals / valid / kept | clusters | summaries "
        f"| summaries with >= {MIN_IMAGES} images | " + " | ".join(f"{s} s" for s in STAGES)
        + " | wall s | peak RSS MiB | report MiB |",
        "|" + "---|" * (10 + len(STAGES)),
    ]
    for case in report["cases"]:
        c, t = case["counts"], case["timings"]
        lines.append(
            f"| {case['case']} | {case['mask_iterations'][0]} + {case['mask_iterations'][1]} "
            f"| {c['images_kept']} of {c['images']} | {c.get('proposals', 0)} / {c.get('valid', 0)} / {c.get('kept', 0)} "
            f"| {c.get('clusters', 0)} | {c.get('summaries', 0)} | {case[f'summaries_with_{MIN_IMAGES}_images']} | "
            + " | ".join(f"{t.get(s, 0):.1f}" for s in STAGES)
            + f" | {case['wall_seconds']:.0f} | {case['peak_rss_mib']:.0f} | {case['report_mib']:.1f} |")
    variants = [case for case in report["cases"] if "masks" in case and case["case"].startswith("albatross")]
    if variants:
        title = ("Stage-1 variants on albatross (sharp masks over the kept photos; agreement of the binary "
                 "sharp masks with the `albatross` case's on the photos both kept):")
        header = ("| case | Adam steps per photo | masks s | sharp drop | sharp area | agree mean % | agree min % "
                  f"| summaries | summaries with >= {MIN_IMAGES} images |")
        lines += ["", title, "", header, "|" + "---|" * 9]
        for case in variants:
            m, v = case["masks"], case.get("vs albatross", {})
            lines.append(f"| {case['case']} | {m['steps per image']} | {case['timings'].get('masks', 0):.1f} "
                         f"| {m['sharp drop']} | {m['sharp area']} | {v.get('agree mean %', '-')} "
                         f"| {v.get('agree min %', '-')} | {case['counts'].get('summaries', 0)} "
                         f"| {case[f'summaries_with_{MIN_IMAGES}_images']} |")
    lines += ["", "Commands (each with `--out <fresh folder> -q`):", ""]
    lines += [f"- {case['case']}: `{case['command']}` (load {case['load_before']} before, {case['load_after']} after)"
              for case in report["cases"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=tuple(_commands(Path("."))),
                        help="which runs (default: demo and albatross)")
    parser.add_argument("--runs", default="runs/bench", help="parent folder of the run folders (default runs/bench)")
    parser.add_argument("--compare-only", action="store_true",
                        help="run nothing: add the stage-1 comparisons of the run folders to the stored results")
    args = parser.parse_args(argv)
    out = HERE / "results"
    if args.compare_only:
        report = json.loads((out / "end_to_end.json").read_text())
        compare_variants(report, Path(args.runs))
        atomic_write_text(out / "end_to_end.json", json.dumps(report, indent=2) + "\n")
        atomic_write_text(out / "end_to_end.md", render_markdown(report))
        print(render_markdown(report))
        return 0
    data = Path(os.environ.get("VSUM_DATA", HERE.parent.parent / "shared" / "data"))
    commands = _commands(data)
    cases = args.case or ["demo", "albatross"]
    if any(case.startswith("albatross") for case in cases) and not (data / "albatross").is_dir():
        print(f"end_to_end: {data / 'albatross'} not found (set VSUM_DATA)", file=sys.stderr)
        return 2
    results = [run_case(name, commands[name], Path(args.runs) / name) for name in cases]
    report = {"benchmark": "end_to_end", "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine_info(),
              "software": software_info(), "git": git_info(), "cases": results}
    compare_variants(report, Path(args.runs))
    atomic_write_text(out / "end_to_end.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "end_to_end.md", render_markdown(report))
    print(render_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

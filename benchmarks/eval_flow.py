"""Flow quality on a keypoint dataset: `vsum eval-flow` for every matcher and hole fill, as JSON + markdown.

Runs :func:`vsum.evaluate.evaluate_flow` on ``$VSUM_DATA/keypoints/willow-dev``
(or the folder given with ``--dataset``) for NAM, PHM and LOM with the default
fill (the edge-aware fast global smoother), then LOM with the other fills (the
SD filter of the original, the nearest valid pixel) and LOM in the
order-independent (parallel) variant, and writes
``benchmarks/results/eval_flow.{json,md}`` with the machine and the commit.

    python benchmarks/eval_flow.py [--dataset DIR] [--quick]

``--quick`` skips the slow SD-filter run (about 1 s per pair).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import atomic_write_text, git_info, load_average, machine_info, software_info  # noqa: E402


def _variants(quick: bool):
    yield "default fill (fgs)", {"methods": ("nam", "phm", "lom")}
    yield "nearest fill", {"methods": ("lom",), "fill": "nearest"}
    yield "LOM parallel order", {"methods": ("lom",), "order": "parallel"}
    if not quick:
        yield "SD filter fill", {"methods": ("lom",), "fill": "sd"}


def main(argv=None) -> int:
    from vsum import evaluate as ev

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = Path(os.environ.get("VSUM_DATA", HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--dataset", default=str(data / "keypoints" / "willow-dev"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if not Path(args.dataset).is_dir():
        print(f"eval_flow: dataset not found: {args.dataset} (set VSUM_DATA)", file=sys.stderr)
        return 2

    load_before = load_average()
    prepared_cache: dict = {}
    prepare = ev.prepare_image

    def cached_prepare(rgb, num, seed, scale):  # stages 2-3 are identical in every variant: compute them once
        key = (rgb.shape, rgb.tobytes(), num, seed)
        if key not in prepared_cache:
            prepared_cache[key] = prepare(rgb, num, seed, scale)
        return prepared_cache[key]

    ev.prepare_image = cached_prepare
    runs = []
    for label, config_kw in _variants(args.quick):
        config = ev.FlowEvalConfig(**config_kw)
        t0 = time.perf_counter()
        result = ev.evaluate_flow(args.dataset, config, progress=False)
        print(f"{label}: {json.dumps(result['mean'])} ({time.perf_counter() - t0:.0f} s)", flush=True)
        runs.append({"label": label, "match": {"order": config.order}, "result": result})

    report = {"benchmark": "eval_flow", "dataset": args.dataset, "machine": machine_info(),
              "software": software_info(), "git": git_info(), "load_before": load_before, "runs": runs}
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    atomic_write_text(out / "eval_flow.json", json.dumps(report, indent=1) + "\n")
    lines = [f"# eval_flow: PCK on {Path(args.dataset).name}", "",
             f"commit {report['git']['commit']}, {report['machine'].get('cpu')}, load before {load_before}", ""]
    for run in runs:
        res = run["result"]
        lines += [f"## {run['label']}", "", ev.format_table(res), "",
                  "seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in res["seconds"].items()), ""]
    atomic_write_text(out / "eval_flow.md", "\n".join(lines))
    print(f"wrote {out / 'eval_flow.json'} and {out / 'eval_flow.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

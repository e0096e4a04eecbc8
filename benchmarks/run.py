#!/usr/bin/env python
"""Run registered benchmarks and write benchmarks/results/<name>.{json,md}.

Usage::

    python benchmarks/run.py                 # every benchmark (except those run only when named)
    python benchmarks/run.py boxes --repeat 9
    python benchmarks/run.py --quick         # smaller cases, fewer repeats (smoke test)
    python benchmarks/run.py --list

Benchmarks measure the *installed* package (``pip install .`` first).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder: harness + bench_*.py

import harness  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="benchmarks to run (default: all but those run only when named)")
    parser.add_argument("--repeat", type=int, default=None, help="timed repeats per case (default 7, quick 3)")
    parser.add_argument("--quick", action="store_true", help="small cases and few repeats")
    parser.add_argument("--list", action="store_true", help="list the registered benchmarks and exit")
    parser.add_argument("--out", type=Path, default=harness.RESULTS_DIR, help="output folder (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="vsum compiled-kernel threads (default: vsum's)")
    args = parser.parse_args(argv)

    registry = harness.discover()
    if args.list:
        width = max((len(n) for n in registry), default=0)
        for name, bench in sorted(registry.items()):
            note = " (run only when named)" if bench.only_when_named else ""
            print(f"{name:<{width}}  {bench.description}{note}")
        return 0
    unknown = [n for n in args.names if n not in registry]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(sorted(registry))}")
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.threads is not None:
        import vsum.threads

        vsum.threads.set_num_threads(args.threads)

    repeat = args.repeat or (3 if args.quick else 7)
    for name in args.names or sorted(n for n, b in registry.items() if not b.only_when_named):
        print(f"[{name}] {registry[name].description}", flush=True)
        _, text = harness.run_benchmark(registry[name], repeat=repeat, quick=args.quick, out_dir=args.out)
        print(text)
        print(f"wrote {args.out / (name + '.json')} and {args.out / (name + '.md')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

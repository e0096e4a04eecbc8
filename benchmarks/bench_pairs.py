"""Benchmark `pairs`: the all-pairs LOM driver (vsum.pairs.all_pairs) on real proposals.

Inputs: selective search ("quality", first 500 boxes, padded to exactly 500 by
repeating boxes) and :func:`vsum.features.describe` on real photos (the
albatross set, then imagenette), longer side resized to 224 px.  They are
computed once and cached per photo under ``runs/bench-cache/pairs/`` (git
ignored), so reruns only match.

Cases:

- ``N=10`` in-process: the driver vs the naive loop (``vsum.features.appearance``
  + ``vsum.flow.match`` per pair), blocks checked equal;
- ``N=10, 25, 50, 100`` (and ``200`` with ``VSUM_BENCH_PAIRS_LARGE=1``): each in
  its own subprocess (``--child``), ``blocks=False``, top-100 lists, pairs
  ``i <= j``; peak RSS is the child's ``VmHWM`` (inputs included);
- ``N=50`` pairs ``i < j`` only (1,225 pairs), the done-when number.

Run the cache builder alone with ``python benchmarks/bench_pairs.py --build-cache N``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = REPO / "runs" / "bench-cache" / "pairs"
DATA = Path(os.environ.get("VSUM_DATA", REPO.parent / "shared" / "data"))
PROPOSALS = 500
LONG_SIDE = 224
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".JPEG", ".JPG"}


def photo_paths(n: int) -> list[Path]:
    """The first ``n`` photos: albatross/ (sorted), then imagenette/<class>/ (sorted)."""
    paths = sorted(p for p in (DATA / "albatross").glob("*") if p.suffix in IMAGE_SUFFIXES)
    for folder in sorted(p for p in (DATA / "imagenette").glob("*") if p.is_dir()):
        if len(paths) >= n:
            break
        paths += sorted(p for p in folder.glob("*") if p.suffix in IMAGE_SUFFIXES)
    if len(paths) < n:
        raise FileNotFoundError(f"need {n} photos under {DATA}/albatross and imagenette/; found {len(paths)}")
    return paths[:n]


def _describe_photo(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    import cv2

    from vsum.features import describe
    from vsum.proposals import selective_search

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot read {path}")
    h, w = bgr.shape[:2]
    s = LONG_SIDE / max(h, w)
    size = (max(16, round(w * s)), max(16, round(h * s)))
    rgb = np.ascontiguousarray(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)[:, :, ::-1])
    boxes, _ = selective_search(rgb, num=PROPOSALS)
    boxes = boxes[np.arange(PROPOSALS) % len(boxes)]  # repeat boxes when fewer than 500
    return boxes, describe(rgb, boxes), rgb.shape[:2]


def load_inputs(n: int, log=print) -> tuple[list[np.ndarray], list[np.ndarray], list[tuple[int, int]]]:
    """Boxes (500, 4) int32, descriptors (500, 1984) float32 and (H, W) of the first ``n`` photos (cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    boxes, descs, shapes = [], [], []
    for k, path in enumerate(photo_paths(n)):
        cached = CACHE / f"{path.parent.name}__{path.stem}.npz"
        if not cached.is_file():
            t0 = time.perf_counter()
            b, d, hw = _describe_photo(path)
            tmp = cached.with_name(cached.stem + ".tmp.npz")
            np.savez(tmp, boxes=b, descriptors=d, shape=np.array(hw))
            os.replace(tmp, cached)
            log(f"  cached {k + 1}/{n} {path.name} ({time.perf_counter() - t0:.1f} s)")
        with np.load(cached) as z:
            boxes.append(z["boxes"])
            descs.append(z["descriptors"])
            shapes.append(tuple(int(v) for v in z["shape"]))
    return boxes, descs, shapes


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(n: int, diagonal: bool, topk: int) -> dict:
    """One scaling point, run in a fresh process: all_pairs on n cached photos, blocks=False."""
    from vsum.pairs import all_pairs

    boxes, descs, _ = load_inputs(n, log=lambda s: None)
    rss_inputs = peak_rss_mib()
    res = all_pairs(boxes, descs, topk=topk, blocks=False, diagonal=diagonal)
    return {
        "n": n,
        "pairs": res.pairs,
        "seconds": res.seconds,
        "timings": res.timings,
        "peak_rss_mib": peak_rss_mib(),
        "rss_after_load_mib": rss_inputs,
    }


def _run_child(n: int, diagonal: bool, topk: int = 100) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(n), "--topk", str(topk)]
    if not diagonal:
        cmd.append("--no-diagonal")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def naive_loop(boxes, descs) -> dict:
    """The loop the driver replaces: appearance + match per pair i <= j (keeps every matrix)."""
    from vsum.features import appearance
    from vsum.flow import match

    n = len(boxes)
    return {(i, j): match(boxes[i], boxes[j], appearance(descs[i], descs[j])) for i in range(n) for j in range(i, n)}


def _scaling_case(n: int, diagonal: bool = True):
    from harness import Case

    state: dict = {}

    def fn():
        state["stats"] = _run_child(n, diagonal)

    def measure(result):
        st = state["stats"]
        t = st["timings"]
        return {
            "pairs": st["pairs"],
            "driver s": round(st["seconds"], 2),
            "s / pair": round(st["seconds"] / max(1, st["pairs"]), 5),
            "LOM share": round(t["match"] / st["seconds"], 3),
            "BLAS share": round(t["appearance"] / st["seconds"], 3),
            "whiten share": round(t["whiten"] / st["seconds"], 3),
            "top-k share": round(t["topk"] / st["seconds"], 3),
            "peak RSS MiB": round(st["peak_rss_mib"], 1),
            "RSS after load MiB": round(st["rss_after_load_mib"], 1),
        }

    pairs = n * (n + 1) // 2 if diagonal else n * (n - 1) // 2
    return Case(
        name=f"N={n} {'i<=j' if diagonal else 'i<j'}",
        fn=fn,
        number=1,
        repeat=1,
        warmup=False,
        work=pairs,
        unit="pairs",
        params={"N": n, "pairs": "i<=j" if diagonal else "i<j", "blocks": False, "topk": 100},
        measure=measure,
    )


try:
    from harness import Case, benchmark
except ImportError:  # run as a script from elsewhere (--child / --build-cache)
    benchmark = None

if benchmark is not None:

    @benchmark(
        "pairs",
        description="all-pairs LOM driver (vsum.pairs.all_pairs) on real proposals, 500 per image: "
        "driver vs naive loop, and time / peak RSS against N",
        label="driver",
        reference_label="naive loop",
    )
    def cases(quick: bool):
        from vsum.pairs import all_pairs

        large = os.environ.get("VSUM_BENCH_PAIRS_LARGE", "") not in ("", "0")
        ns = [10] if quick else [10, 25, 50, 100] + ([200] if large else [])
        boxes, descs, _ = load_inputs(max(ns))

        b10, d10 = boxes[:10], descs[:10]

        def check(got, want):
            assert got.blocks.keys() == want.keys()
            for key, conf in want.items():
                np.testing.assert_array_equal(got.blocks[key], conf)

        yield Case(
            name="N=10 driver vs naive",
            fn=lambda: all_pairs(b10, d10),
            reference=lambda: naive_loop(b10, d10),
            check=check,
            number=1,
            repeat=1 if quick else 3,
            work=55,
            unit="pairs",
            params={"N": 10, "pairs": "i<=j", "blocks": True, "topk": 100},
        )
        for n in ns:
            yield _scaling_case(n)
            if n == 50:
                yield _scaling_case(50, diagonal=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", type=int, metavar="N", help="run one scaling point and print its JSON")
    p.add_argument("--topk", type=int, default=100)
    p.add_argument("--no-diagonal", action="store_true", help="pairs i < j only")
    p.add_argument("--build-cache", type=int, metavar="N", help="compute and cache the inputs of N photos")
    args = p.parse_args(argv)
    if args.build_cache:
        load_inputs(args.build_cache)
        return 0
    if args.child:
        print(json.dumps(child(args.child, not args.no_diagonal, args.topk)))
        return 0
    p.error("use benchmarks/run.py pairs, or --child N / --build-cache N")
    return 2


if __name__ == "__main__":
    sys.exit(main())

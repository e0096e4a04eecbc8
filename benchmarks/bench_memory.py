"""Benchmark `memory`: peak RSS and time of stages 4-5 (match_class, find_summaries) against the class size.

Inputs: real photos (imagenette, sorted; repeated when a size needs more
photos than there are), each resized whole to the 224 x 224 model grid, with
a synthetic saliency mask (a centred ellipse) and synthetic proposals:

- ``PARTS`` part boxes per image inside the ellipse, each with ``VARIANTS - 1``
  jittered copies (the near-duplicates selective search produces, which stage
  5 prunes as redundant): most of them valid;
- ``BACKGROUND`` boxes in the corners, outside the mask: invalid.

So an image has ``PARTS * VARIANTS + BACKGROUND`` = 64 proposals, about 54 of
them valid: at N = 1,000 images about V = 50,000 valid proposals, the size of
an ImageNet class, while the 500,500 pairs stay matchable on 2 cores (500
proposals per image would take hours).  Descriptors are
:func:`vsum.features.describe` on the photos, cached per photo under
``runs/bench-cache/memory/`` (git ignored).

Each point runs in a fresh process (``--child``): stage 4 (``match_class``,
storing ``similarity.npz`` as the pipeline does) and stage 5
(``find_summaries``), peak RSS (``VmHWM``) after each (the high-water mark is
reset between them through ``/proc/self/clear_refs``), times, V, the kept
proposals K and a digest of the clusters.  ``impl=old`` runs the code of
commit ``BASELINE`` (extracted with ``git archive``; same compiled core): the
in-memory blocks, then ``save``; it runs at small N only and its peak is
extrapolated to N = 1,000 by a least-squares fit ``a + b V^2``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = REPO / "runs" / "bench-cache" / "memory"
DATA = Path(os.environ.get("VSUM_DATA", REPO.parent / "shared" / "data"))
SIDE = 224
PARTS, VARIANTS, BACKGROUND = 6, 9, 10
#: The code before the bounded-memory stages 4-5 (the "old" implementation).
BASELINE = "1e81da6"
#: BLAS threads of the children: on a 2-core machine shared with other jobs, threaded OpenBLAS made stage 4's
#: small products (64 x 1984 x 64) ten times slower; old and new run with the same setting.
BLAS_THREADS = "1"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".JPEG", ".JPG"}


def photo_paths(n: int) -> list[Path]:
    """``n`` photos: imagenette/<class>/* sorted, repeated from the start when there are fewer than ``n``."""
    paths = []
    for folder in sorted(p for p in (DATA / "imagenette").glob("*") if p.is_dir()):
        paths += sorted(p for p in folder.glob("*") if p.suffix in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no photos under {DATA}/imagenette")
    return [paths[k % len(paths)] for k in range(n)]


def synthetic_mask(side: int = SIDE) -> np.ndarray:
    """(side, side) bool: a centred ellipse covering about 40 % of the image."""
    yy, xx = np.mgrid[:side, :side]
    c = (side - 1) / 2
    return ((yy - c) / (0.36 * side)) ** 2 + ((xx - c) / (0.36 * side)) ** 2 < 1


def synthetic_boxes(seed: int, side: int = SIDE) -> np.ndarray:
    """(PARTS * VARIANTS + BACKGROUND, 4) int32 inclusive boxes: jittered part boxes in the mask, background boxes.

    Parts have sides of 16-48 px, centred within 0.18 side of the image
    centre; a variant moves each corner by at most 2 px (redundant with its
    part).  Background boxes are 12-20 px squares in the image corners.
    """
    rng = np.random.default_rng(seed)
    c = (side - 1) / 2
    out = []
    for _ in range(PARTS):
        w, h = rng.integers(16, 49, 2)
        cx, cy = c + rng.uniform(-0.18, 0.18, 2) * side
        part = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        for v in range(VARIANTS):
            jitter = rng.integers(-2, 3, 4) if v else np.zeros(4)
            out.append(np.round(part + jitter))
    for _ in range(BACKGROUND):
        s = rng.integers(12, 21)
        x = rng.choice([0, side - 1 - s])
        y = rng.choice([0, side - 1 - s])
        out.append([x, y, x + s, y + s])
    return np.clip(np.array(out), 0, side - 1).astype(np.int32)


def _grid_image(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot read {path}")
    return np.ascontiguousarray(cv2.resize(bgr, (SIDE, SIDE), interpolation=cv2.INTER_AREA)[:, :, ::-1])


def load_inputs(n: int) -> tuple[list, list, list, list]:
    """Images (224, 224, 3) uint8, masks (224, 224) bool, boxes (64, 4) int32, descriptors (64, 1984) float32."""
    from vsum.features import describe

    CACHE.mkdir(parents=True, exist_ok=True)
    mask = synthetic_mask()
    images, masks, boxes, descs = [], [], [], []
    for k, path in enumerate(photo_paths(n)):
        rgb = _grid_image(path)
        b = synthetic_boxes(k)
        cached = CACHE / f"{k:05d}_{path.parent.name}__{path.stem}.npy"
        if cached.is_file():
            d = np.load(cached)
        else:
            d = describe(rgb, b)
            tmp = cached.with_name(cached.stem + ".tmp.npy")
            np.save(tmp, d)
            os.replace(tmp, cached)
        images.append(rgb)
        masks.append(mask)
        boxes.append(b)
        descs.append(d)
    return images, masks, boxes, descs


def _vm(field: str) -> float:
    """A field of /proc/self/status in MiB (VmHWM: peak RSS, VmRSS: current)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux ``clear_refs`` 5); False when not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(n: int, impl: str) -> dict:
    """One point in this (fresh) process: stages 4 and 5 of n images; the caller put ``impl``'s vsum first on sys.path."""
    from vsum.clusters import find_summaries
    from vsum.pairs import match_class

    images, masks, boxes, descs = load_inputs(n)
    rss_inputs = _vm("VmHWM")
    with tempfile.TemporaryDirectory(dir=REPO / "runs") as tmp:
        path = Path(tmp) / "similarity.npz"
        t0 = time.perf_counter()
        if impl == "new":
            pairs = match_class(masks, boxes, descs, store=path)
        else:
            pairs = match_class(masks, boxes, descs)
            pairs.save(path)
        t_pairs = time.perf_counter() - t0
        peak4 = _vm("VmHWM")
        reset = _reset_peak()
        t0 = time.perf_counter()
        summary = find_summaries(images, boxes, descs, pairs)
        t_summ = time.perf_counter() - t0
        peak5 = _vm("VmHWM")
        file_mib = path.stat().st_size / 2**20
    d = {k: v for k, v in summary.to_dict().items() if k != "timings"}  # clusters.json's content, less the times
    digest = hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()
    return {
        "n": n, "impl": impl, "pairs": pairs.pairs, "proposals": int(sum(len(b) for b in boxes)),
        "valid": int(summary.counts["valid"]), "kept": int(summary.counts["kept"]),
        "clusters": int(summary.counts["clusters"]), "summaries": int(summary.counts["summaries"]),
        "stage4_s": t_pairs, "stage5_s": t_summ, "stage5_timings": summary.timings,
        "rss_inputs_mib": rss_inputs, "peak_stage4_mib": peak4,
        "peak_stage5_mib": peak5 if reset else max(peak4, peak5), "peak_reset": reset,
        "peak_mib": max(peak4, peak5), "similarity_file_mib": file_mib, "clusters_sha1": digest,
    }


def baseline_source() -> Path:
    """``python/`` of commit BASELINE under the cache, with this checkout's compiled core copied in."""
    import vsum

    dest = CACHE / f"src-{BASELINE}"
    if not (dest / "vsum" / "__init__.py").is_file():
        staging = Path(tempfile.mkdtemp(dir=CACHE))
        archive = subprocess.run(["git", "-C", str(REPO), "archive", BASELINE, "python"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(staging)], input=archive, check=True)
        for so in Path(vsum.__file__).parent.glob("_core*.so"):
            shutil.copy2(so, staging / "python" / "vsum" / so.name)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging / "python", dest)
        shutil.rmtree(staging)
    return dest


def run_child(n: int, impl: str) -> dict:
    """:func:`child` in a fresh interpreter (this checkout's vsum, or the baseline's for ``impl="old"``)."""
    env = dict(os.environ)
    src = baseline_source() if impl == "old" else REPO / "python"
    env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
    env.setdefault("OPENBLAS_NUM_THREADS", BLAS_THREADS)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(n), "--impl", impl]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"child N={n} {impl} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fit_v2(points: list[dict]) -> tuple[float, float]:
    """Least-squares ``peak_mib = a + b V^2`` over (V, peak) points; (a, b)."""
    v2 = np.array([p["valid"] ** 2 for p in points], float)
    y = np.array([p["peak_mib"] for p in points], float)
    (a, b), *_ = np.linalg.lstsq(np.stack([np.ones_like(v2), v2], 1), y, rcond=None)
    return float(a), float(b)


def _case(n: int, impl: str, stats: dict, fits: dict):
    from harness import Case

    def fn():
        stats[(n, impl)] = run_child(n, impl)

    def measure(result):
        st = stats[(n, impl)]
        row = {
            "V (valid)": st["valid"], "K (kept)": st["kept"], "pairs": st["pairs"],
            "stage 4 s": round(st["stage4_s"], 1), "stage 5 s": round(st["stage5_s"], 1),
            "S + AP s": round(st["stage5_timings"].get("cluster", float("nan")), 1),
            "peak RSS stage 4 MiB": round(st["peak_stage4_mib"], 0),
            "peak RSS stage 5 MiB": round(st["peak_stage5_mib"], 0),
            "peak RSS MiB": round(st["peak_mib"], 0), "inputs MiB": round(st["rss_inputs_mib"], 0),
            "similarity.npz MiB": round(st["similarity_file_mib"], 0),
            "clusters": st["clusters"], "summaries": st["summaries"], "clusters sha1": st["clusters_sha1"][:10],
        }
        old = stats.get((n, "old"))
        if impl == "new" and old is not None:
            row["same clusters as old"] = old["clusters_sha1"] == st["clusters_sha1"]
        if impl == "new" and "old" in fits:
            a, b = fits["old"]
            row["old peak MiB (fit a + b V^2)"] = round(a + b * st["valid"] ** 2, 0)
        return row

    return Case(name=f"N={n} {impl}", fn=fn, number=1, repeat=1, warmup=False, work=n * (n + 1) // 2,
                unit="pairs", params={"N": n, "impl": impl if impl == "new" else f"old ({BASELINE})",
                                      "proposals/image": PARTS * VARIANTS + BACKGROUND,
                                      "BLAS threads": os.environ.get("OPENBLAS_NUM_THREADS", BLAS_THREADS)},
                measure=measure)


try:
    from harness import benchmark
except ImportError:  # run as a script (--child)
    benchmark = None

if benchmark is not None:

    @benchmark(
        "memory",
        description="stages 4-5 (match_class + find_summaries) of one class: peak RSS and time against N, "
        f"real imagenette photos on the 224 grid, synthetic masks and {PARTS * VARIANTS + BACKGROUND} "
        f"synthetic proposals per image; old = commit {BASELINE}",
        label="time",
    )
    def cases(quick: bool):
        stats: dict = {}
        fits: dict = {}
        old_ns = [20, 40] if quick else [50, 100, 200, 300]
        new_ns = [20, 40] if quick else [50, 100, 200, 300] + [int(os.environ.get("VSUM_BENCH_MEMORY_N", "1000"))]
        for n in old_ns:
            yield _case(n, "old", stats, fits)
        fits["old"] = fit_v2([stats[(n, "old")] for n in old_ns])
        for n in new_ns:
            yield _case(n, "new", stats, fits)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", type=int, metavar="N", help="run one point and print its JSON")
    p.add_argument("--impl", choices=("new", "old"), default="new")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.impl)))
        return 0
    p.error("use benchmarks/run.py memory, or --child N [--impl old]")
    return 2


if __name__ == "__main__":
    sys.exit(main())

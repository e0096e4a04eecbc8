#!/usr/bin/env python
"""Estimate the background HOG statistics used to whiten proposal descriptors.

Hariharan, Malik and Ramanan ("Discriminative decorrelation for clustering and
classification", ECCV 2012): the HOG of natural images is modelled as a
stationary process, described by the mean cell ``mu`` (31,) and the
cell-to-cell covariances at spatial offsets::

    gamma[dy + K, dx + K] = E[(f(y, x) - mu) (f(y + dy, x + dx) - mu)^T]     |dy|, |dx| <= K

(31 x 31 each; K = 7 covers every offset inside the 8 x 8 cell window of a
descriptor).  They are estimated from :func:`vsum.features.hog` (8 px cells)
of many natural photos at a few scales, pooled over all positions and images.
Covariances are centred with the global ``mu``.

Default images: the shared test photos (not copied anywhere),
``imagenet-samples/`` (1000 ImageNet photos) and ``imagenette/`` (1000
224 x 224 photos).  Output: ``python/vsum/data/hog_stats.npz`` with ``mu``,
``gamma`` (float32), the counts per offset and the provenance (images used,
scales, date, software versions).  Takes a few minutes on 2 cores::

    python scripts/estimate_hog_stats.py [--data DIR] [--out FILE] [--scales 1 0.75 0.5]
"""

from __future__ import annotations

import os

# Many small matrix products from two worker threads: a multi-threaded BLAS
# only oversubscribes the cores (20x slower on a loaded 2-core machine).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import vsum  # noqa: E402
from vsum.features import hog  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "python" / "vsum" / "data" / "hog_stats.npz"
DEFAULT_SETS = ("imagenet-samples", "imagenette")
SUFFIXES = {".jpg", ".jpeg", ".png"}
K = 7  # largest offset, in cells
NF = 31


def default_data_dir() -> Path:
    env = os.environ.get("VSUM_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def list_photos(data: Path, sets) -> list[Path]:
    paths = []
    for name in sets:
        folder = data / name
        if not folder.is_dir():
            raise SystemExit(f"image folder not found: {folder}")
        paths += sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)
    return paths


def image_moments(path: Path, scales, max_side: int):
    """Per-image sums: (n_cells, sum f, and per offset: count, sum f_a, sum f_b, sum f_a f_b^T)."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        if max(img.size) > max_side:
            img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
        base = img.copy()
    n = 0
    s1 = np.zeros(NF)
    cnt = np.zeros((2 * K + 1, 2 * K + 1), np.int64)
    sa = np.zeros((2 * K + 1, 2 * K + 1, NF))
    sb = np.zeros((2 * K + 1, 2 * K + 1, NF))
    sab = np.zeros((2 * K + 1, 2 * K + 1, NF, NF))
    for s in scales:
        w, h = max(1, round(base.width * s)), max(1, round(base.height * s))
        im = base if s == 1 else base.resize((w, h), Image.Resampling.BILINEAR)
        f = hog(np.asarray(im)).astype(np.float64)
        H, W = f.shape[:2]
        if H == 0 or W == 0:
            continue
        n += H * W
        s1 += f.sum(axis=(0, 1))
        for dy in range(-K, K + 1):
            ya, yb = max(0, -dy), min(H, H - dy)
            if ya >= yb:
                continue
            for dx in range(-K, K + 1):
                xa, xb = max(0, -dx), min(W, W - dx)
                if xa >= xb:
                    continue
                a = f[ya:yb, xa:xb].reshape(-1, NF)
                b = f[ya + dy : yb + dy, xa + dx : xb + dx].reshape(-1, NF)
                i, j = dy + K, dx + K
                cnt[i, j] += a.shape[0]
                sa[i, j] += a.sum(0)
                sb[i, j] += b.sum(0)
                sab[i, j] += a.T @ b
    return n, s1, cnt, sa, sb, sab


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir(), help="shared photo folder")
    parser.add_argument("--sets", nargs="+", default=list(DEFAULT_SETS), help="sub-folders of --data to use")
    parser.add_argument("--scales", nargs="+", type=float, default=[1.0, 0.75, 0.5])
    parser.add_argument("--max-side", type=int, default=500, help="shrink larger photos to this side first")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N photos (testing)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    paths = list_photos(args.data, args.sets)[: args.limit]
    print(f"{len(paths)} photos from {', '.join(args.sets)} in {args.data}; scales {args.scales}", flush=True)
    t0 = time.perf_counter()
    n, s1 = 0, np.zeros(NF)
    cnt = np.zeros((2 * K + 1, 2 * K + 1), np.int64)
    sa = np.zeros((2 * K + 1, 2 * K + 1, NF))
    sb = np.zeros_like(sa)
    sab = np.zeros((2 * K + 1, 2 * K + 1, NF, NF))
    used = []
    with ThreadPoolExecutor(args.workers) as pool:
        results = pool.map(lambda p: image_moments(p, args.scales, args.max_side), paths)
        for k, (path, r) in enumerate(zip(paths, results)):  # summed in path order: deterministic
            n += r[0]
            s1 += r[1]
            cnt += r[2]
            sa += r[3]
            sb += r[4]
            sab += r[5]
            used.append(str(path.relative_to(args.data)))
            if (k + 1) % 200 == 0:
                print(f"  {k + 1}/{len(paths)} photos, {n} cells, {time.perf_counter() - t0:.0f} s", flush=True)

    mu = s1 / n
    c = cnt[..., None, None].astype(np.float64)
    # E[(a - mu)(b - mu)^T] = (S_ab - S_a mu^T - mu S_b^T + N mu mu^T) / N
    gamma = (sab - sa[..., :, None] * mu[None, None, None, :] - mu[None, None, :, None] * sb[..., None, :]) / c
    gamma += np.outer(mu, mu)
    # Stationarity: gamma(-d) = gamma(d)^T; average the two estimates.
    gamma = 0.5 * (gamma + gamma[::-1, ::-1].transpose(0, 1, 3, 2))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, suffix=".npz")
    os.close(fd)
    np.savez_compressed(
        tmp,
        mu=mu.astype(np.float32),
        gamma=gamma.astype(np.float32),
        counts=cnt,
        n_cells=np.int64(n),
        cell=np.int64(8),
        max_offset=np.int64(K),
        scales=np.asarray(args.scales, np.float64),
        max_side=np.int64(args.max_side),
        images=np.asarray(used),
        image_root=np.asarray(str(args.data)),
        created=np.asarray(dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")),
        software=np.asarray(
            f"vsum {vsum.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
            f"script scripts/estimate_hog_stats.py"
        ),
    )
    os.replace(tmp, args.out)
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): {len(used)} photos, {n} cells, "
        f"{time.perf_counter() - t0:.0f} s; mean diag of gamma(0) {np.trace(gamma[K, K]) / NF:.4g}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

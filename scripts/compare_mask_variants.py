"""Figure: the sharp masks of several stage-1 variants side by side, on the same photos.

    python scripts/compare_mask_variants.py RUN_A RUN_B [RUN_C ...] --labels A,B,C --out figure.png
                                            [--photos 4] [--images PHOTO_FOLDER]

Each RUN is a ``vsum summarize`` (or ``vsum masks``) run folder.  Rows are
photos kept by every run (the first ``--photos`` in name order); the first
column is the photo as stage 1 saw it, then each run's sharp saliency mask
over the photo (salient pixels, saliency >= 0.5, in colour).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def _photo(folders: list[Path], stem: str, side: int) -> np.ndarray:
    """The photo of ``stem`` resized whole to ``side`` x ``side`` (as stage 1 saw it), or grey when none is found."""
    for folder in folders:
        for path in sorted(folder.glob(f"{stem}.*")) if folder.is_dir() else []:
            return np.asarray(Image.open(path).convert("RGB").resize((side, side), Image.BILINEAR))
    return np.full((side, side, 3), 128, np.uint8)


def main(argv=None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--labels", required=True, help="comma-separated column titles, one per run")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--images", type=Path, default=None,
                        help="folder of the original photos (default: the first run's images/ folder)")
    args = parser.parse_args(argv)
    labels = args.labels.split(",")
    if len(labels) != len(args.runs):
        parser.error("give one label per run")
    stems = set.intersection(*[{p.name[: -len("_sharp.png")] for p in (run / "masks").glob("*_sharp.png")}
                               for run in args.runs])
    stems = sorted(stems)[: args.photos]
    if not stems:
        parser.error("the runs share no kept photo")
    figure, axes = plt.subplots(len(stems), len(args.runs) + 1, figsize=(2.2 * (len(args.runs) + 1), 2.2 * len(stems)),
                                squeeze=False)
    for row, stem in enumerate(stems):
        saliency = [np.asarray(Image.open(run / "masks" / f"{stem}_sharp.png")) for run in args.runs]
        side = saliency[0].shape[0]
        photo = _photo([p for p in (args.images, args.runs[0] / "images") if p is not None], stem, side)
        axes[row, 0].imshow(photo)
        axes[row, 0].set_title(stem[:18] if row == 0 else "", fontsize=7)
        for col, (mask, label) in enumerate(zip(saliency, labels), start=1):
            overlay = photo.astype(np.float32) * 0.35
            salient = mask >= 128
            overlay[salient] = photo[salient] * 0.6 + np.array([255, 80, 0]) * 0.4
            axes[row, col].imshow(overlay.astype(np.uint8))
            axes[row, col].set_title(f"{label}\narea {salient.mean():.3f}" if row == 0 else f"area {salient.mean():.3f}",
                                     fontsize=7)
    for axis in axes.ravel():
        axis.axis("off")
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out} ({len(stems)} photos x {len(args.runs)} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

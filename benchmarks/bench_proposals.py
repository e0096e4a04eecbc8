"""Benchmark `proposals`: our selective search vs OpenCV contrib's, speed and proposal quality.

Both run on the same photos resized (whole, aspect not kept) to 224 x 224 and
written as PNG files to a temporary folder; OpenCV reads those files.

OpenCV side: ``cv2.ximgproc.segmentation.createSelectiveSearchSegmentation``
(``setBaseImage`` + ``switchToSelectiveSearchQuality`` / ``...Fast`` +
``process``), from the package ``opencv-contrib-python-headless``, which
clashes with the project's ``opencv-python-headless`` and therefore lives in
its own virtual environment (``$VSUM_CVCONTRIB_PYTHON``, default
``/work/venv-cvcontrib/bin/python``; create it with ``python3 -m venv
/work/venv-cvcontrib && /work/venv-cvcontrib/bin/pip install
opencv-contrib-python-headless numpy``).  It runs as a persistent worker
process: the harness times ``reference()``, which asks the worker for one
pass over all images and waits for its answer (pipe round trip < 1 ms against
seconds of work), so both sides get the same warm-up, repeats and medians.
OpenCV's boxes ``(x, y, w, h)`` become inclusive corners
``(x, y, x + w - 1, y + h - 1)``.  Both use the same number of threads
(``vsum`` threads; ``cv2.setNumThreads``).

Proposal quality (MABO): the targets are the connected components
(8-connected, area >= 1% of the image) of the binary stage-1 sharp masks
``$VSUM_MASKS_DIR/masks/<stem>_sharp.png`` (224 x 224, set = pixel > 128;
default ``runs/albatross-masks`` in the repository, written by the README's
``vsum masks`` command), each described by its bounding box.
MABO = mean over all targets of the best IoU (:func:`vsum.boxes.iou`) among
the first 500 proposals of a method; recall@0.5 / @0.7 = fraction of targets
with best IoU >= 0.5 / 0.7.  The quality columns are left empty, with a
message, when the mask folder is absent.  Up to 20 albatross photos with a
mask are used (the first 20 photos when there are no masks).
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import tempfile
import weakref
from pathlib import Path

import numpy as np

from harness import Case, benchmark

SIDE = 224
NUM = 500
MAX_IMAGES = 20

WORKER = r"""
import json, sys
import cv2
paths, threads = json.loads(sys.stdin.readline())
cv2.setNumThreads(threads)
images = [cv2.imread(p, cv2.IMREAD_COLOR) for p in paths]   # BGR, as OpenCV expects
if any(im is None for im in images):
    raise SystemExit("could not read an image")
last = {}
def run(mode):
    out = []
    for im in images:
        ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
        ss.setBaseImage(im)
        (ss.switchToSelectiveSearchQuality if mode == "quality" else ss.switchToSelectiveSearchFast)()
        out.append(ss.process())
    last[mode] = out
print(json.dumps({"version": cv2.__version__, "threads": cv2.getNumThreads()}), flush=True)
for line in sys.stdin:
    cmd, mode = line.split()
    if cmd == "run":
        run(mode)
        print("{}", flush=True)
    elif cmd == "boxes":
        if mode not in last:
            run(mode)
        boxes = [[[int(x), int(y), int(x + w - 1), int(y + h - 1)] for x, y, w, h in r[:%d]] for r in last[mode]]
        print(json.dumps(boxes), flush=True)
""" % NUM


def _data_root() -> Path:
    return Path(os.environ.get("VSUM_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


class OpenCVWorker:
    """The OpenCV selective search in its own interpreter, driven over a pipe."""

    def __init__(self, python: str, paths: list[Path], threads: int):
        self.proc = subprocess.Popen(
            [python, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self._finalizer = weakref.finalize(self, OpenCVWorker._close, self.proc)
        atexit.register(self._finalizer)
        self.info = self._ask(json.dumps([[str(p) for p in paths], threads]))

    @staticmethod
    def _close(proc) -> None:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=30)

    def _ask(self, line: str):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the OpenCV worker exited (code {self.proc.wait()})")
        return json.loads(answer)

    def run(self, mode: str) -> None:
        self._ask(f"run {mode}")

    def boxes(self, mode: str) -> list[np.ndarray]:
        return [np.asarray(b, dtype=np.int32).reshape(-1, 4) for b in self._ask(f"boxes {mode}")]


def mask_targets(mask_path: Path) -> np.ndarray:
    """(t, 4) inclusive boxes of the 8-connected components (>= 1% of the image) of mask > 128."""
    from PIL import Image
    from scipy import ndimage

    with Image.open(mask_path) as im:
        mask = np.asarray(im.convert("L")) > 128
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    boxes = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is not None and np.count_nonzero(labels[sl] == i) >= 0.01 * mask.size:
            boxes.append([sl[1].start, sl[0].start, sl[1].stop - 1, sl[0].stop - 1])
    return np.asarray(boxes, dtype=np.int32).reshape(-1, 4)


def quality(proposals: list[np.ndarray], targets: list[np.ndarray]) -> dict:
    """MABO and recall of the first NUM proposals of each image against its targets."""
    from vsum.boxes import iou

    best = []
    for boxes, tg in zip(proposals, targets):
        if len(tg) == 0:
            continue
        boxes = boxes[:NUM]
        best += (iou(tg, boxes).max(axis=1) if len(boxes) else np.zeros(len(tg))).tolist()
    best = np.asarray(best)
    if best.size == 0:
        return {}
    return {
        "MABO": round(float(best.mean()), 4),
        "recall@0.5": round(float((best >= 0.5).mean()), 4),
        "recall@0.7": round(float((best >= 0.7).mean()), 4),
    }


@benchmark(
    "proposals",
    description="selective search on 224x224 photos: vsum (C++) vs OpenCV contrib ximgproc, speed and MABO",
    label="vsum",
    reference_label="OpenCV",
)
def cases(quick: bool):
    from PIL import Image

    import vsum.boxes
    from vsum.proposals import selective_search

    folder = _data_root() / "albatross"
    if not folder.is_dir():
        raise SystemExit(f"bench proposals needs the albatross photos in {folder} (set VSUM_DATA)")
    default_masks = Path(__file__).resolve().parents[1] / "runs" / "albatross-masks"  # the README's `vsum masks` run
    masks_dir = Path(os.environ.get("VSUM_MASKS_DIR", default_masks)) / "masks"
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    with_mask = [p for p in photos if (masks_dir / f"{p.stem}_sharp.png").is_file()]
    if with_mask:
        photos = with_mask
    else:
        print(f"[proposals] no masks in {masks_dir} (set VSUM_MASKS_DIR): MABO is skipped", flush=True)
    photos = photos[: 4 if quick else MAX_IMAGES]
    targets = [mask_targets(masks_dir / f"{p.stem}_sharp.png") for p in photos] if with_mask else None

    tmp = tempfile.TemporaryDirectory(prefix="vsum-bench-proposals-")
    atexit.register(tmp.cleanup)
    images, paths = [], []
    for p in photos:
        with Image.open(p) as im:
            rgb = np.asarray(im.convert("RGB").resize((SIDE, SIDE), Image.BILINEAR))
        path = Path(tmp.name) / f"{p.stem}.png"
        Image.fromarray(rgb).save(path)
        images.append(rgb)
        paths.append(path)

    threads = vsum.threads.get_num_threads()
    python = os.environ.get("VSUM_CVCONTRIB_PYTHON", "/work/venv-cvcontrib/bin/python")
    worker = None
    if Path(python).is_file():
        worker = OpenCVWorker(python, paths, threads)
    else:
        print(f"[proposals] {python} not found (set VSUM_CVCONTRIB_PYTHON): no OpenCV baseline", flush=True)

    for mode in ("quality",) if quick else ("quality", "fast"):

        def ours(mode=mode):
            return [selective_search(img, num=NUM, seed=0, mode=mode)[0] for img in images]

        def measure(result, mode=mode, ours=ours):
            extra = {}
            if worker is not None:
                extra["vsum / OpenCV time"] = round(result.timing.median_s / result.reference.median_s, 3)
                extra["OpenCV version"] = worker.info["version"]
            if targets is not None:
                extra["targets"] = int(sum(len(t) for t in targets))
                mine = ours()
                extra["vsum boxes/img"] = round(float(np.mean([len(b) for b in mine])), 1)
                extra.update({f"vsum {k}": v for k, v in quality(mine, targets).items()})
                if worker is not None:
                    theirs = worker.boxes(mode)
                    extra["OpenCV boxes/img"] = round(float(np.mean([len(b) for b in theirs])), 1)
                    extra.update({f"OpenCV {k}": v for k, v in quality(theirs, targets).items()})
            return extra

        yield Case(
            name=f"{mode}, {len(images)} photos",
            fn=ours,
            reference=(lambda mode=mode: worker.run(mode)) if worker is not None else None,
            number=1,
            repeat=3 if quick else None,
            work=len(images),
            unit="img",
            params={"mode": mode, "images": len(images), "size": f"{SIDE}x{SIDE}", "threads": threads, "num": NUM},
            measure=measure,
        )

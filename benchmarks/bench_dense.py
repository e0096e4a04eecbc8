"""Benchmark `dense`: sparse flow field (vsum.flow.match_field) vs the NumPy reference, and the FGS fill.

One real pair (two PF-WILLOW car photos resized to 400 pixels wide, 500 fast
selective-search proposals each, HOG + whitened appearance, LOM confidence;
random boxes on random images when the shared data is absent).  Set-up is not
timed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from harness import Case, benchmark

WIDTH = 400
N = 500


def _data_root() -> Path:
    return Path(os.environ.get("VSUM_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _pair():
    """(img_a, img_b, source) as (H, W, 3) uint8, WIDTH pixels wide."""
    folder = _data_root() / "keypoints" / "willow-dev" / "car_G"
    if (folder / "keypoints.json").is_file():
        from PIL import Image

        names = sorted(json.loads((folder / "keypoints.json").read_text()))[:2]
        out = []
        for n in names:
            im = Image.open(folder / n).convert("RGB")
            im = im.resize((WIDTH, round(im.size[1] * WIDTH / im.size[0])), Image.BILINEAR)
            out.append(np.asarray(im))
        return out[0], out[1], f"willow car_G {names[0]} / {names[1]}"
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (300, WIDTH, 3), dtype=np.uint8),
            rng.integers(0, 256, (300, WIDTH, 3), dtype=np.uint8), "random")


def _setup():
    import vsum.flow as vf
    from vsum.features import appearance, describe
    from vsum.proposals import selective_search

    img_a, img_b, source = _pair()
    boxes_a = selective_search(img_a, num=N, mode="fast")[0]
    boxes_b = selective_search(img_b, num=N, mode="fast")[0]
    app = np.maximum(np.asarray(appearance(describe(img_a, boxes_a), describe(img_b, boxes_b))), 0)
    conf = vf.match(boxes_a, boxes_b, app, "lom")
    return img_a, img_b, boxes_a, boxes_b, conf, source


def _same(got, want) -> None:
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@benchmark("dense", description="dense flow of one ~300 x 400 real pair, 500 proposals each: match_field "
                                 "(compiled vs NumPy reference), FGS fill, nearest fill, whole dense_flow")
def cases(quick: bool):
    import vsum.flow as vf
    from vsum.reference import dense as ref

    img_a, img_b, boxes_a, boxes_b, conf, source = _setup()
    ha, wa = img_a.shape[:2]
    params = {"pair": source, "A": f"{ha}x{wa}", "boxes": f"{len(boxes_a)}x{len(boxes_b)}"}
    vx, vy, valid, _ = vf.match_field(boxes_a, boxes_b, conf, img_a.shape, img_b.shape)
    frac = {"valid %": round(100.0 * float(valid.mean()), 1)}
    yield Case(
        name="match_field",
        fn=lambda: vf.match_field(boxes_a, boxes_b, conf, img_a.shape, img_b.shape),
        reference=lambda: ref.match_field(boxes_a, boxes_b, conf, img_a.shape, img_b.shape),
        check=_same, work=ha * wa, unit="px", params=params, extra=frac,
    )
    yield Case(
        name="fill_flow fgs (T=3)",
        fn=lambda: vf.fill_flow(vx, vy, valid, img_a),
        work=ha * wa, unit="px", params=params,
    )
    yield Case(
        name="nearest fill (scipy EDT)",
        fn=lambda: vf._fill_nearest(vx, vy, valid),
        work=ha * wa, unit="px", params=params,
    )
    yield Case(
        name="dense_flow fgs",
        fn=lambda: vf.dense_flow(img_a, img_b, boxes_a, boxes_b, conf),
        work=ha * wa, unit="px", params=params,
    )

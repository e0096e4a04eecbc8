"""``vsum eval-parts``: part consistency of summaries on synthetic runs whose answer is known.

A fake run folder (``config.json``, ``result.json``) and a keypoint folder
are written directly: 12 photos of 100 x 50 pixels on a 200-pixel grid (so
keypoints scale by 2 in x and 4 in y), each with a "head" and a "tail"
keypoint at places that differ from photo to photo.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vsum.cli import main
from vsum.errors import VsumError
from vsum.parts import PartsConfig, evaluate_parts, held_groups, load_parts

SIDE, WIDTH, HEIGHT, PHOTOS = 200, 100, 50, 12
PARTS = {"keypoints": ["head", "tail"], "groups": {"head": [0], "tail": [1]}}


def _grid(x: float, y: float) -> tuple[float, float]:
    return (x + 0.5) * SIDE / WIDTH - 0.5, (y + 0.5) * SIDE / HEIGHT - 0.5


def make_class(folder: Path, rng: np.random.Generator) -> dict[str, list]:
    """Photos and keypoints.json; head and tail at random places, the tail sometimes not visible."""
    folder.mkdir(parents=True)
    points = {}
    for k in range(PHOTOS):
        name = f"photo_{k:02d}.png"
        Image.fromarray(np.full((HEIGHT, WIDTH, 3), 40 + 10 * k, np.uint8)).save(folder / name)
        head = [float(rng.uniform(5, 95)), float(rng.uniform(5, 45))]
        tail = [float(rng.uniform(5, 95)), float(rng.uniform(5, 45))] if k % 4 else None
        points[name] = [head, tail]
    (folder / "keypoints.json").write_text(json.dumps(points))
    (folder.parent / "parts.json").write_text(json.dumps(PARTS))
    return points


def make_run(folder: Path, names: list[str], summaries: list[list[tuple[str, list[int]]]]) -> Path:
    """A finished run folder whose summaries have the given (photo, box) members."""
    folder.mkdir(parents=True)
    config = {"hash": "x", "config": {"images": [{"name": n, "sha1": "0"} for n in names]}}
    entries = [{"summary": k, "png": f"summaries/summary_{k}.png", "strip": f"summaries/summary_{k}_strip.png",
                "images": len(members), "score": 1.0,
                "members": [{"image": Path(n).stem, "box": box, "index": 0, "similarity": 1.0, "ssim": 0.2,
                             "exemplar": i == 0} for i, (n, box) in enumerate(members)]}
               for k, members in enumerate(summaries)]
    result = {"status": "ok", "reason": None, "model": "m", "target": 0, "target_name": "x", "image_side": SIDE,
              "counts": {"images": len(names), "images_kept": len(names)}, "timings": {}, "summaries": entries,
              "skipped": [], "notes": [], "images": [], "debug": [], "outputs": {"report": "report.html"}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "result.json").write_text(json.dumps(result))
    return folder


def box_around(point, half: int = 6) -> list[int]:
    x, y = _grid(*point)
    return [int(x) - half, int(y) - half, int(x) + half + 1, int(y) + half + 1]


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(0)
    points = make_class(tmp_path / "kp" / "animal", rng)
    return tmp_path, points, rng


def test_members_all_on_the_head_give_consistency_one_far_above_chance(dataset):
    tmp, points, _ = dataset
    names = sorted(points)
    heads = [[(n, box_around(points[n][0])) for n in names[:8]]]
    run = make_run(tmp / "run", names, heads)
    result = evaluate_parts(run, tmp / "kp" / "animal", tmp / "kp" / "parts.json")
    summary = result["summaries"][0]
    assert summary["dominant"] == "head" and summary["consistency"] == 1.0 and summary["counted"] == 8
    assert summary["chance"] < 0.5 and summary["p_value"] < 0.05
    assert result["class"]["dominant_parts"] == ["head"]
    saved = json.loads((run / "parts.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert json.loads((run / "result.json").read_text())["outputs"]["parts"] == "parts.json"
    page = (run / "report.html").read_text()
    assert "Part consistency" in page and "head" in page


def test_boxes_unrelated_to_the_keypoints_score_near_chance(dataset):
    tmp, points, rng = dataset
    names = sorted(points)
    summaries = []
    for _ in range(30):  # members at random places: their own keypoints are no likelier inside than another's
        chosen = rng.choice(names, 6, replace=False)
        summaries.append([(n, [int(x), int(y), int(x) + 60, int(y) + 60])
                          for n, x, y in zip(chosen, rng.uniform(0, 140, 6), rng.uniform(0, 140, 6))])
    run = make_run(tmp / "run", names, summaries)
    result = evaluate_parts(run, tmp / "kp" / "animal", tmp / "kp" / "parts.json", PartsConfig(draws=100))
    c = result["class"]
    assert abs(c["mean_consistency"] - c["mean_chance"]) < 0.1
    assert np.mean([s["p_value"] for s in result["summaries"]]) > 0.2


def test_each_keypoint_is_a_part_without_parts_json(dataset):
    tmp, points, _ = dataset
    names = sorted(points)
    tails = [[(n, box_around(points[n][1])) for n in names if points[n][1] is not None][:6]]
    run = make_run(tmp / "run", names, tails)
    summary = evaluate_parts(run, tmp / "kp" / "animal")["summaries"][0]
    assert summary["dominant"] == "keypoint 1" and summary["consistency"] == 1.0


def test_held_groups_and_invisible_points():
    points = np.array([[10.0, 10.0], [np.nan, np.nan], [50.0, 50.0]])
    groups = {"a": [0], "b": [1], "c": [1, 2]}
    assert held_groups(points, [10, 10, 10, 10], groups) == ["a"]  # inclusive corners
    assert held_groups(points, [40, 40, 60, 60], groups) == ["c"]
    assert held_groups(points, [0, 0, 5, 5], groups) == []


def test_bad_inputs(dataset, tmp_path):
    tmp, points, _ = dataset
    with pytest.raises(VsumError, match="not a finished run"):
        evaluate_parts(tmp_path / "nothing", tmp / "kp" / "animal")
    run = make_run(tmp / "run", sorted(points), [])
    with pytest.raises(VsumError, match="holds no keypoints.json"):
        evaluate_parts(run, tmp / "kp")
    bad = tmp / "bad_parts.json"
    bad.write_text(json.dumps({"groups": {"head": [0, 7]}}))
    with pytest.raises(VsumError, match="indices in 0..1"):
        load_parts(bad, 2)
    with pytest.raises(ValueError, match="draws"):
        PartsConfig(draws=0)


def test_cli_prints_the_table(dataset, capsys):
    tmp, points, _ = dataset
    names = sorted(points)
    run = make_run(tmp / "run", names, [[(n, box_around(points[n][0])) for n in names[:5]]])
    assert main(["eval-parts", str(run), str(tmp / "kp" / "animal"), "--parts", str(tmp / "kp" / "parts.json"),
                 "--draws", "50"]) == 0
    out = capsys.readouterr().out
    assert "head" in out and "Mean consistency 1.0" in out
    assert main(["eval-parts", str(tmp / "missing"), str(tmp / "kp" / "animal")]) == 2

"""The ``vsum`` command end to end (subprocesses, as a user runs it)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import require_data


def vsum(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vsum", *args], capture_output=True, text=True, cwd=cwd, timeout=900)


def test_models_lists_offline_and_paper_models():
    done = vsum("models")
    assert done.returncode == 0, done.stderr
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "alexnet", "vgg16",
                 "googlenet", "inception_v3", "resnet50"):
        assert name in done.stdout


def test_output_piped_into_a_closed_reader_is_not_an_error():
    done = subprocess.run(f"{sys.executable} -m vsum models --all | head -n 2", shell=True, capture_output=True,
                          text=True, timeout=300)
    assert len(done.stdout.splitlines()) == 2
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


@pytest.mark.parametrize("args, message", [
    (["classify", "IMAGES", "--model", "nosuchnet", "--out", "p.csv"], "unknown model 'nosuchnet'"),
    (["classify", "IMAGES", "--model", "resnet50", "--weights", "missing.pth", "--out", "p.csv"], "weight file not found"),
    (["classify", "IMAGES", "--model", "resnet50", "--weights", "BADFILE", "--out", "p.csv"], "not a loadable state dict"),
    (["masks", "IMAGES", "--target", "99999", "--out", "o"], "outside the model's 1000 classes"),
    (["masks", "IMAGES", "--target", "no such class", "--out", "o"], "neither a class index nor a class name"),
])
def test_errors_are_one_line_without_traceback(tmp_path, args, message):
    (tmp_path / "bad.pth").write_text("not torch")
    images = tmp_path / "imgs"
    images.mkdir()
    args = [str(images) if a == "IMAGES" else str(tmp_path / "bad.pth") if a == "BADFILE" else a for a in args]
    done = vsum(*args, cwd=tmp_path)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vsum: error:") and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_classify_writes_predictions(tmp_path, data_dir):
    folder = data_dir / "paper-examples"
    require_data(folder.is_dir(), str(folder))
    out = tmp_path / "preds.csv"
    done = vsum("classify", str(folder), "--model", "efficientnet_lite0", "--top", "3", "--out", str(out), "-q")
    assert done.returncode == 0, done.stderr
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["image", "top1", "top1_name", "p_top1", "top2", "top3", "status"]
    assert len(rows) == len([p for p in folder.iterdir() if p.is_file()])
    flutes = [r for r in rows if r["image"].startswith("flute")]
    assert flutes and all(r["top1"] == "558" and r["top1_name"] == "flute" for r in flutes)
    assert all(0.0 < float(r["p_top1"]) <= 1.0 and r["status"] == "ok" for r in rows)


def test_masks_command(tmp_path, data_dir):
    folder = data_dir / "albatross"
    require_data(folder.is_dir(), str(folder))
    images = tmp_path / "imgs"
    images.mkdir()
    for source in sorted(folder.iterdir())[1:3]:
        (images / source.name).write_bytes(source.read_bytes())
    (images / "broken.jpg").write_bytes(b"")
    out = tmp_path / "run"
    done = vsum("masks", str(images), "--target", "albatross", "--smooth-iters", "4", "--sharp-iters", "2",
                "--batch-size", "2", "--out", str(out), "-q")
    assert done.returncode == 0, done.stderr
    assert "Explained 2 of 3 images for class 146 'albatross'" in done.stdout
    assert len(list((out / "masks").glob("*_smooth.png"))) == 2
    assert len(list((out / "masks").glob("*_sharp.png"))) == 2
    result = json.loads((out / "result.json").read_text())
    assert result["skipped"] == [{"image": "broken.jpg", "reason": "empty file (0 bytes)"}]
    assert result["config"]["smooth"]["iterations"] == 4


def test_masks_demo(tmp_path):
    out = tmp_path / "demo"
    done = vsum("masks", "--demo", "--smooth-iters", "2", "--sharp-iters", "1", "--out", str(out), "-q")
    assert done.returncode == 0, done.stderr
    assert len(list((out / "masks").glob("*_sharp.png"))) >= 4

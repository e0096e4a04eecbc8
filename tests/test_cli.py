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


# --------------------------------------------------------------------------- issue 11: no traceback from any input
# In-process (vsum.cli.main) so that the model loads quickly; an exception escaping main fails the test.


def _small_images(folder: Path, names=("a.png", "b.png")) -> Path:
    import os

    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        path = os.path.join(os.fsencode(folder), name if isinstance(name, bytes) else name.encode())
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(path, format="PNG")
    return folder


def _error_line(capsys, code: int, *words: str) -> str:
    """Check ``main``'s exit status 2 and that stderr is exactly one ``vsum: error:`` line holding ``words``."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("vsum: error:"), err
    assert all(w in lines[0] for w in words), err
    assert "Traceback" not in err
    return lines[0]


TINY = ["--smooth-iters", "1", "--sharp-iters", "1", "-q"]


@pytest.mark.parametrize("args, words", [
    (["masks", "IMAGES", "--threads", "-1", "--out", "OUT"], ["--threads", "-1"]),
    (["masks", "IMAGES", "--threads", "5000", "--out", "OUT"], ["--threads", "5000"]),
    (["eval-flow", "IMAGES", "--threads", "0"], ["--threads", "0"]),
    (["masks", "IMAGES", "--seed", str(2 ** 70), "--out", "OUT", *TINY], ["--seed", str(2 ** 70)]),
    (["summarize", "IMAGES", "--seed", "-1", "--out", "OUT", *TINY], ["--seed", "-1"]),
    (["masks", "IMAGES", "--smooth-iters", "-5", "--sharp-iters", "1", "--out", "OUT", "-q"], ["--smooth-iters", "-5"]),
    (["masks", "IMAGES", "--smooth-iters", "1", "--sharp-iters", "0", "--out", "OUT", "-q"], ["--sharp-iters", "0"]),
    (["demo", "--sharp-iters", "-1", "--out", "OUT"], ["--sharp-iters", "-1"]),
    (["classify", "IMAGES", "--top", "0", "--out", "OUT", "-q"], ["--top", "0"]),
    (["masks", "IMAGES", "--batch-size", "0", "--out", "OUT", *TINY], ["--batch-size", "0"]),
    (["masks", "IMAGES", "--threads", "two", "--out", "OUT"], ["--threads", "two"]),
])
def test_bad_numbers_are_one_error_line(tmp_path, capsys, restore_threads, args, words):
    from vsum.cli import main

    images = _small_images(tmp_path / "imgs")
    args = [str(images) if a == "IMAGES" else str(tmp_path / "out") if a == "OUT" else a for a in args]
    _error_line(capsys, main(args), *words)


def test_target_with_a_non_ascii_digit_is_one_error_line(tmp_path, capsys):
    from vsum.cli import main

    images = _small_images(tmp_path / "imgs")
    code = main(["masks", str(images), "--target", "\u00b2", "--out", str(tmp_path / "o"), *TINY])
    _error_line(capsys, code, "--target", "\u00b2", "neither a class index nor a class name")


@pytest.mark.parametrize("command", ["masks", "summarize", "classify", "eval-flow"])
def test_out_naming_an_existing_file_or_folder_is_one_error_line(tmp_path, capsys, command):
    from vsum.cli import main

    images = _small_images(tmp_path / "imgs")
    taken = tmp_path / "taken"
    if command in ("classify", "eval-flow"):  # --out is a file: a folder there is the mistake
        taken.mkdir()
    else:
        taken.write_text("a file, not a folder")
    extra = {"eval-flow": [], "classify": ["-q"]}.get(command, TINY)
    _error_line(capsys, main([command, str(images), "--out", str(taken), *extra]), "--out", str(taken))


def test_out_below_a_file_is_one_error_line(tmp_path, capsys):
    from vsum.cli import main

    images = _small_images(tmp_path / "imgs")
    (tmp_path / "file").write_text("x")
    _error_line(capsys, main(["masks", str(images), "--out", str(tmp_path / "file" / "run"), *TINY]),
                "--out", "Not a directory")


def _failing_atomic_open(error: int):
    import contextlib
    import os

    @contextlib.contextmanager
    def atomic_open(path):
        raise OSError(error, os.strerror(error), str(path))
        yield  # pragma: no cover

    return atomic_open


@pytest.mark.parametrize("error", ["ENOSPC", "EACCES", "EROFS"])
def test_write_errors_are_one_line_naming_the_path_and_reason(tmp_path, capsys, monkeypatch, error):
    """A full disk, a folder that turned unwritable, a read-only file system: the OS reason, no traceback."""
    import errno
    import os

    import vsum.io
    from vsum.cli import main

    images = _small_images(tmp_path / "imgs")
    monkeypatch.setattr(vsum.io, "atomic_open", _failing_atomic_open(getattr(errno, error)))
    out = tmp_path / "preds.csv"
    code = main(["classify", str(images), "--out", str(out), "-q"])
    _error_line(capsys, code, str(out), os.strerror(getattr(errno, error)))


def test_internal_errors_are_one_line_unless_debugging(tmp_path, capsys, monkeypatch):
    """A bug in vsum: one line saying so and how to see the traceback; VSUM_DEBUG=1 shows it."""
    import vsum.cli
    from vsum.cli import main

    def bug(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(vsum.cli, "cmd_models", bug)
    monkeypatch.delenv("VSUM_DEBUG", raising=False)
    assert main(["models"]) == 1
    err = capsys.readouterr().err
    expected = ("vsum: internal error: ZeroDivisionError: division by zero (a bug in vsum; "
                "rerun with VSUM_DEBUG=1 to see the traceback)")
    assert err.splitlines() == [expected]
    monkeypatch.setenv("VSUM_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["models"])


def test_non_utf8_and_case_colliding_names_get_distinct_outputs(tmp_path, capsys):
    """b"x\\xff.png" crashed the CSV writer after stage 1; Cat.png / cat.png collided on macOS and Windows."""
    from vsum.cli import main

    names = [b"x\xff.png", b"Cat.png", b"cat.png"]
    images = _small_images(tmp_path / "imgs", names)
    out = tmp_path / "run"
    code = main(["masks", str(images), "--out", str(out), "--batch-size", "3", *TINY])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    with open(out / "metrics.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["image"] for r in rows) == ["Cat.png", "cat.png", "x\\xff.png"]
    pngs = [p.name for p in (out / "masks").iterdir()]
    assert len(pngs) == 6 and len({p.casefold() for p in pngs}) == 6
    assert all(p.isascii() for p in pngs)
    json.loads((out / "result.json").read_text(encoding="utf-8"))

    preds = tmp_path / "preds.csv"
    assert main(["classify", str(images), "--out", str(preds), "-q"]) == 0
    with open(preds, newline="", encoding="utf-8") as fh:
        assert sorted(r["image"] for r in csv.DictReader(fh)) == ["Cat.png", "cat.png", "x\\xff.png"]

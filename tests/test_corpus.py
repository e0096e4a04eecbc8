"""The fuzz corpus (tests/make_corpus.py): every file decodes to RGB or is skipped with its reason, and
``vsum masks``, ``vsum classify`` and ``vsum summarize`` on the corpus finish, listing every bad file with its
reason, without a traceback.

The corpus is generated into a temporary folder (deterministic, nothing binary in git).  The decoding test,
``vsum masks`` and ``vsum classify`` cover the hand-made cases and 300 fuzzed variants; ``vsum summarize`` (stages
2-5 grow with the square of the kept images) the hand-made cases and the first 60 fuzzed variants (the same
files).  The commands run a small random-weight model with one iteration per pass: about a minute on 2 cores.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from make_corpus import NON_UTF8_NAME, write_corpus

from vsum.io import ImageSkip, display_text, list_images, read_image

SUMMARIZE_FUZZED = 60
MODEL = ["--model", "mobilenet_v3_small", "--weights", "random", "--offline"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[bytes, str]]:
    folder = tmp_path_factory.mktemp("corpus")
    return folder, write_corpus(folder, fuzzed=300, seed=0)


def _reasons(folder: Path) -> dict[str, str]:
    """Per corpus file (named as outputs write it): ``"ok"`` or the skip reason read_image gives."""
    outcome = {}
    for path in list_images(folder):
        try:
            read_image(path, max_side=224)
            outcome[display_text(path.name)] = "ok"
        except ImageSkip as exc:
            outcome[display_text(path.name)] = str(exc)
    return outcome


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The hand-made cases and the first SUMMARIZE_FUZZED fuzzed variants, with :func:`_reasons`."""
    folder = tmp_path_factory.mktemp("small-corpus")
    write_corpus(folder, fuzzed=SUMMARIZE_FUZZED, seed=0)
    return folder, _reasons(folder)


def _outcome(path: Path) -> str:
    try:
        record = read_image(path, max_side=224)
    except ImageSkip as exc:
        reason = str(exc)
        assert reason and "\n" not in reason
        reason.encode("utf-8")  # a reason is written into CSV and JSON outputs
        return "skip: " + reason
    rgb = record.rgb
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and min(rgb.shape[:2]) >= 8
    assert rgb.flags["C_CONTIGUOUS"]
    return "ok"


def test_corpus_is_deterministic(tmp_path):
    first = write_corpus(tmp_path / "a", fuzzed=30, seed=0)
    second = write_corpus(tmp_path / "b", fuzzed=30, seed=0)
    assert first == second
    for name in first:
        a, b = os.path.join(os.fsencode(tmp_path / "a"), name), os.path.join(os.fsencode(tmp_path / "b"), name)
        if os.path.islink(a):
            assert os.readlink(a) == os.readlink(b)
        else:
            assert Path(os.fsdecode(a)).read_bytes() == Path(os.fsdecode(b)).read_bytes()


def test_every_corpus_file_decodes_or_is_skipped_with_its_reason(corpus):
    folder, expected = corpus
    listed = {os.fsencode(p.name) for p in list_images(folder)}
    assert listed == set(expected)  # the broken link and the non-UTF-8 name included
    outcomes = {name: _outcome(Path(os.fsdecode(os.path.join(os.fsencode(folder), name)))) for name in expected}
    for name, want in expected.items():
        got = outcomes[name]
        if want == "ok":
            assert got == "ok", (name, got)
        elif want.startswith("skip: "):
            assert got.startswith(want), (name, got)
    fuzzed = [outcomes[n] for n, want in expected.items() if want == "any"]
    assert len(fuzzed) == 300
    assert 30 < sum(o == "ok" for o in fuzzed) < 270  # the mutations both break files and leave some readable


def test_corpus_notes_say_what_was_converted(corpus):
    folder, _ = corpus
    notes = {name: read_image(folder / name).note for name in ("exif_rotated.jpg", "animated.gif",
                                                               "multipage_damaged.tif", "sixteen_bit.png",
                                                               "float.tif", "cmyk.jpg", "la.png")}
    assert "exif orientation 6 applied" in notes["exif_rotated.jpg"]
    assert "first of 3 frames" in notes["animated.gif"]
    assert "later frames unreadable (TypeError: Missing dimensions)" in notes["multipage_damaged.tif"]
    assert "16-bit->8-bit" in notes["sixteen_bit.png"] and "float->8-bit" in notes["float.tif"]
    assert "cmyk->rgb" in notes["cmyk.jpg"] and "alpha composited on white" in notes["la.png"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "VSUM_DEBUG": "1", "VSUM_NUM_THREADS": "2"}  # a bug would show its traceback
    return subprocess.run([sys.executable, "-m", "vsum", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600, check=False)


def _check_finished(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr[-3000:]


def _check_skipped(skipped: list[dict], outcome: dict[str, str], allowed_extra=("misclassified",)) -> None:
    """Every file read_image rejects is in ``skipped`` with exactly that reason; the rest only for ``allowed``."""
    listed = {item["image"]: item["reason"] for item in skipped}
    bad = {name: reason for name, reason in outcome.items() if reason != "ok"}
    assert {n: listed.get(n) for n in bad} == bad
    assert all(listed[n].startswith(allowed_extra) for n in set(listed) - set(bad))


def test_masks_on_the_corpus(corpus, tmp_path):
    folder, outcome = corpus[0], _reasons(corpus[0])
    done = _run("masks", str(folder), *MODEL, "--smooth-iters", "1", "--sharp-iters", "1", "--batch-size", "32",
                "--out", "run", "-q", cwd=tmp_path)
    _check_finished(done)
    result = json.loads((tmp_path / "run" / "result.json").read_text(encoding="utf-8"))
    _check_skipped(result["skipped"], outcome, allowed_extra=())
    with open(tmp_path / "run" / "metrics.csv", newline="", encoding="utf-8") as fh:
        rows = {r["image"]: r for r in csv.DictReader(fh)}
    assert set(rows) == set(outcome) and display_text(os.fsdecode(NON_UTF8_NAME)) in rows
    kept = [n for n, o in outcome.items() if o == "ok"]
    pngs = [p.name for p in (tmp_path / "run" / "masks").iterdir()]
    assert len(pngs) == 2 * len(kept) and len({p.casefold() for p in pngs}) == len(pngs)


def test_classify_on_the_corpus(corpus, tmp_path):
    folder, outcome = corpus[0], _reasons(corpus[0])
    done = _run("classify", str(folder), *MODEL, "--top", "2", "--out", "preds.csv", "-q", cwd=tmp_path)
    _check_finished(done)
    with open(tmp_path / "preds.csv", newline="", encoding="utf-8") as fh:
        rows = {r["image"]: r["status"] for r in csv.DictReader(fh)}
    # classify decodes with the same reader, so its reasons are read_image's
    assert rows == {n: "ok" if o == "ok" else f"skipped: {o}" for n, o in outcome.items()}


def test_summarize_on_the_corpus(small_corpus, tmp_path):
    folder, outcome = small_corpus
    done = _run("summarize", str(folder), *MODEL, "--smooth-iters", "1", "--sharp-iters", "1", "--proposals", "20",
                "--batch-size", "32", "--out", "run", "-q", cwd=tmp_path)
    _check_finished(done)
    result = json.loads((tmp_path / "run" / "result.json").read_text(encoding="utf-8"))
    _check_skipped(result["skipped"], outcome, allowed_extra=())
    assert result["counts"]["images"] == len(outcome)
    assert "report.html not written" not in " ".join(result["notes"])
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert display_text(os.fsdecode(NON_UTF8_NAME)) in html  # the metrics table lists it by its display name

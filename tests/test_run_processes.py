"""Run folders under real processes: SIGKILL in the middle of stage 1, and two runs on one ``--out``.

Each test runs ``python -m vsum summarize`` in child processes with the
offline EfficientNet-Lite0 on synthetic bird photos (no shared data), with
few stage-1 iterations and one image per batch so that stage 1 has several
batches and lasts a few seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vsum.pipeline import STAGES

from pipeline_helpers import write_birds

SMOOTH, SHARP = 12, 6
N_IMAGES = 6


def command(photos: Path, out: Path, *extra: str, smooth: int = SMOOTH, sharp: int = SHARP) -> list[str]:
    return [sys.executable, "-m", "vsum", "summarize", str(photos), "--model", "efficientnet_lite0", "--out", str(out),
            "--smooth-iters", str(smooth), "--sharp-iters", str(sharp), "--batch-size", "1", "--proposals", "40",
            "--threads", "1", "--device", "cpu", "--quiet", *extra]


def run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 240.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (status {proc.returncode}) before {what}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    write_birds(folder, N_IMAGES)
    return folder


@pytest.fixture(scope="module")
def uninterrupted(photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    done = run(command(photos, out))
    assert done.returncode == 0, done.stderr
    return out


def test_sigkill_in_stage_1_resumes_at_the_next_unfinished_batch(photos, uninterrupted, tmp_path):
    out = tmp_path / "run"
    batches = out / "masks" / "batches"
    proc = subprocess.Popen(command(photos, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        wait_for(lambda: (batches / "batch_00001.npz").is_file(), proc, what="the second batch was saved")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "stages" / "masks.json").exists(), "stage 1 finished before the kill: the test proves nothing"
    saved = {p.name: p.stat().st_mtime_ns for p in batches.glob("batch_*.npz")}
    assert 2 <= len(saved) < N_IMAGES

    resumed = run(command(photos, out))
    assert resumed.returncode == 0, resumed.stderr
    manifest = read_json(out / "stages" / "masks.json")
    # the saved batches were restored, not optimised again: count the optimiser steps
    assert manifest["batches"] == {"restored": len(saved), "computed": N_IMAGES - len(saved)}
    assert manifest["image_iterations"] == (N_IMAGES - len(saved)) * (SMOOTH + SHARP)
    assert {name: (batches / name).stat().st_mtime_ns for name in saved} == saved

    with np.load(out / "masks" / "saliency.npz") as got, np.load(uninterrupted / "masks" / "saliency.npz") as want:
        assert sorted(got.files) == sorted(want.files)
        for key in want.files:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    for png in sorted((uninterrupted / "masks").glob("*.png")):
        assert (out / "masks" / png.name).read_bytes() == png.read_bytes(), png.name
    got, want = read_json(out / "result.json"), read_json(uninterrupted / "result.json")
    assert got["summaries"] == want["summaries"] and got["counts"] == want["counts"]
    assert read_json(out / "clusters.json")["clusters"] == read_json(uninterrupted / "clusters.json")["clusters"]


def test_two_runs_on_one_out(photos, tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(command(photos, out, smooth=40, sharp=20), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=_env())
    try:
        def holds_lock() -> bool:
            try:
                return read_json(out / ".vsum.lock")["pid"] == first.pid
            except (OSError, ValueError, KeyError):
                return False

        wait_for(holds_lock, first, what="the first run took the lock")
        second = run(command(photos, out, smooth=40, sharp=20), timeout=120)
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vsum: error: ") and f"in use by process {first.pid}" in lines[0]
        assert "Traceback" not in second.stderr and second.stdout == ""

        third = subprocess.Popen(command(photos, out, "--wait", smooth=40, sharp=20), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=_env())
        assert first.wait(300) == 0, first.stderr.read()
        third_out, third_err = third.communicate(timeout=300)
    finally:
        for proc in (first,):
            if proc.poll() is None:
                proc.kill()
    assert third.returncode == 0, third_err
    assert "vsum: waiting for" in third_err and f"in use by process {first.pid}" in third_err
    # the first run's outputs were intact: the waiting run checked every one and reused every stage
    assert read_json(out / "result.json")["reused"] == list(STAGES)
    assert "masks" in third_out and "(cached)" in third_out

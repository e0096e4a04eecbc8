"""The built-in demo class (``vsum.demo``, ``vsum demo``) and the top-level ``vsum.summarize``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vsum.demo import DemoConfig, altered_view, write_demo_views


def test_views_are_deterministic_distinct_and_kept_on_rerun(tmp_path):
    paths = write_demo_views(tmp_path / "a", views=5, seed=3)
    assert [p.name for p in paths] == [f"chelsea_{k:02d}.png" for k in range(5)]
    from skimage import data

    from vsum.io import read_image

    views = [read_image(p).rgb for p in paths]
    assert np.array_equal(views[0], data.chelsea())  # the photo itself comes first
    for view in views[1:]:
        assert view.dtype == np.uint8 and view.ndim == 3 and view.shape[2] == 3
        assert 0.55 * 300 <= view.shape[0] <= 0.96 * 300 and 0.55 * 451 <= view.shape[1] <= 0.96 * 451
        assert not any(view.shape == other.shape and np.array_equal(view, other) for other in views if other is not view)
    again = write_demo_views(tmp_path / "b", views=5, seed=3)
    assert all(np.array_equal(read_image(p).rgb, v) for p, v in zip(again, views))
    other_seed = write_demo_views(tmp_path / "c", views=5, seed=4)
    assert not np.array_equal(read_image(other_seed[1]).rgb, views[1])
    stamps = [p.stat().st_mtime_ns for p in paths]
    write_demo_views(tmp_path / "a", views=5, seed=3)
    assert [p.stat().st_mtime_ns for p in paths] == stamps  # unchanged files are not rewritten


def test_altered_view_of_a_constant_photo_is_constant():
    grey = np.full((60, 90, 3), 128, np.uint8)
    view = altered_view(grey, np.random.default_rng(0))
    assert view.shape[2] == 3 and np.ptp(view) == 0  # warps keep a flat picture flat; only the tone changes


@pytest.mark.parametrize("field, value", [("views", 1), ("smooth_iterations", 0), ("sharp_iterations", -3),
                                          ("views", 2.5), ("views", True)])
def test_demo_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        DemoConfig(**{field: value})


def test_majority_class_uses_stage1_preprocessing(tmp_path, lite0):
    from vsum.demo import majority_class

    paths = write_demo_views(tmp_path, views=3)
    target = majority_class(paths, lite0)
    assert lite0.class_name(target) in ("tabby", "tiger cat", "Egyptian cat")


def test_vsum_demo_command(tmp_path, lite0):
    """``vsum demo`` end to end with tiny iteration counts: states them, writes a full run folder."""
    out = tmp_path / "demo"
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-m", "vsum", "demo", "--out", str(out), "--views", "3",
                           "--smooth-iters", "3", "--sharp-iters", "2", "-q"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "3 smooth + 2 sharp (published: 300 + 150)" in done.stdout
    assert "Summarized class" in done.stdout and "report.html" in done.stdout
    result = json.loads((out / "result.json").read_text())
    assert result["counts"]["images"] == 3 and result["status"] in ("ok", "no_summaries")
    assert lite0.class_name(result["target"]) in ("tabby", "tiger cat", "Egyptian cat")
    assert (out / "report.html").is_file() and len(list((out / "images").glob("chelsea_*.png"))) == 3
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["masks"]["smooth"]["iterations"] == 3 and config["masks"]["sharp"]["iterations"] == 2
    assert config["proposals"]["num"] == 500  # everything but stage-1 iterations is the published default
    rerun = subprocess.run([sys.executable, "-m", "vsum", "demo", "--out", str(out), "--views", "3",
                            "--smooth-iters", "3", "--sharp-iters", "2", "-q"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads((out / "result.json").read_text())["reused"] == ["masks", "proposals", "descriptors", "pairs",
                                                                        "summaries"]


def test_demo_bad_option_is_one_line_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "vsum", "demo", "--out", str(tmp_path), "--views", "1", "-q"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.strip() == "vsum: error: DemoConfig: views must be an integer >= 2; got 1"


def test_vsum_summarize_is_the_pipeline_function():
    import inspect

    import vsum
    import vsum.pipeline as pipeline

    assert inspect.isfunction(vsum.summarize) and vsum.summarize is pipeline.summarize
    params = list(inspect.signature(vsum.summarize).parameters)
    assert params == ["images", "model", "target", "out", "config", "force", "progress", "device", "wait", "stages",
                      "image_cache", "mask_results"]

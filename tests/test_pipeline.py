"""End-to-end run of one class (``vsum.pipeline.run_class``, ``vsum summarize``).

Stage 1 is replaced by synthetic masks (a stub classifier, no torch model) so
that the file stays fast; the stages 2-5, the cache and the outputs are real.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import vsum.pipeline as pipeline  # noqa: E402
from vsum.masks import MaskConfig, MaskResult, MaskRun  # noqa: E402
from vsum.pipeline import PipelineConfig, ProposalConfig, run_class  # noqa: E402
from vsum.summarize import summarize_class  # noqa: E402

SIDE = 128


class StubClassifier:
    """What the pipeline reads of a classifier (stage 1 itself is faked)."""

    name = "stub"
    weights = "none"
    input_size = SIDE
    class_names = ["albatross", "other"]
    num_classes = 2

    def class_name(self, index):
        return self.class_names[index]


def blob_saliency(kind: str) -> np.ndarray:
    sal = np.zeros((SIDE, SIDE), np.uint8)
    if kind == "blob":
        sal[16:112, 12:116] = 255
    return sal


def fake_masks(kind: str = "blob", calls: list | None = None):
    """A stand-in for ``compute_masks``: every image kept with a fixed mask, or all misclassified."""

    def compute(paths, classifier, target=None, config=None, progress=True):
        if calls is not None:
            calls.append(len(paths))
        results = []
        for p in paths:
            if kind == "misclassified":
                results.append(MaskResult(image=Path(p), status="skipped: misclassified (top-1 1 'other' p=0.9)",
                                          target=0, predicted=1, p0=0.05))
            else:
                sal = blob_saliency(kind)
                results.append(MaskResult(image=Path(p), status="ok", target=0, predicted=0, p0=0.9,
                                          saliency={"smooth": sal, "sharp": sal}))
        return MaskRun(results, config or MaskConfig(), classifier.name, seconds=0.01)

    return compute


def counting(fn, calls: list):
    def wrapped(*args, **kwargs):
        calls.append(1)
        return fn(*args, **kwargs)

    return wrapped


CONFIG = PipelineConfig(proposals=ProposalConfig(num=40), summary_cell=64)


@pytest.fixture(scope="module")
def photos(data_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for path in sorted((data_dir / "albatross").glob("*.jpg"))[:4]:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture
def stub(monkeypatch):
    monkeypatch.setattr(pipeline, "compute_masks", fake_masks("blob"))
    return StubClassifier()


@pytest.fixture(scope="module")
def clean_run(photos, tmp_path_factory):
    """One uninterrupted run (stage 1 faked), shared by the tests that compare against it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "compute_masks", fake_masks("blob"))
        return run_class(photos, StubClassifier(), target=0, out=tmp_path_factory.mktemp("clean"), config=CONFIG,
                         progress=False)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_run_directory_layout(clean_run):
    out = clean_run.out
    result = read_json(out / "result.json")
    assert result == json.loads(json.dumps(clean_run.result))
    assert result["status"] == "ok" and result["reason"] is None
    counts = result["counts"]
    assert counts["images"] == counts["images_kept"] == 4 and counts["images_skipped"] == 0
    assert counts["proposals"] >= counts["valid"] >= counts["kept"] > 0
    assert counts["summaries"] == len(result["summaries"]) >= 1
    assert set(result["timings"]) == set(pipeline.STAGES) | {"total"}
    config = read_json(out / "config.json")
    assert len(config["hash"]) == 16 and config["hash"] == result["config_hash"]
    assert config["config"]["image_side"] == SIDE and config["config"]["proposals"]["num"] == 40
    for name in ("proposals.npz", "descriptors.npz", "similarity.npz", "clusters.json", "masks/metrics.csv",
                 "masks/saliency.npz"):
        assert (out / name).is_file(), name
    for stage in pipeline.STAGES:
        assert read_json(out / "stages" / f"{stage}.json")["stage"] == stage
    clusters = read_json(out / "clusters.json")
    assert len(clusters["clusters"]) == counts["clusters"]
    assert len(list((out / "summaries" / "debug").glob("cluster_*.png"))) == counts["clusters"]
    for entry in result["summaries"]:
        assert (out / entry["png"]).is_file() and (out / entry["strip"]).is_file()
        for member in entry["members"]:
            assert member["image"] in clusters["images"]
            x1, y1, x2, y2 = member["box"]
            assert 0 <= x1 <= x2 < SIDE and 0 <= y1 <= y2 < SIDE
            assert member["similarity"] is not None
    assert not list(out.rglob("*.tmp")), "a temporary file was left behind"


def test_stage5_equals_summarize_class(clean_run):
    """The pipeline's stage 5 (from the stored stage-4 result) is summarize_class's."""
    out = clean_run.out
    grid = [pipeline.model_grid_image(p, SIDE) for p in clean_run.images]
    masks = [np.load(out / "masks" / "saliency.npz")[f"sharp_{i}"] >= 128 for i in range(4)]
    with np.load(out / "proposals.npz") as pz, np.load(out / "descriptors.npz") as dz:
        boxes = [pz[f"boxes_{i}"] for i in range(4)]
        descs = [dz[f"desc_{i}"] for i in range(4)]
    direct = summarize_class(grid, masks, boxes, descs, CONFIG.summary).to_dict()
    ours = clean_run.summary.to_dict()
    for d in (direct, ours):
        d.pop("timings")
    assert ours == direct


def test_resume_after_kill_in_stage4(photos, clean_run, tmp_path, monkeypatch):
    out = tmp_path / "run"
    masks_calls, ss_calls, desc_calls = [], [], []
    monkeypatch.setattr(pipeline, "compute_masks", fake_masks("blob", masks_calls))
    monkeypatch.setattr(pipeline, "selective_search", counting(pipeline.selective_search, ss_calls))
    monkeypatch.setattr(pipeline, "describe", counting(pipeline.describe, desc_calls))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed in stage 4")

    real_all_pairs = pipeline.all_pairs
    monkeypatch.setattr(pipeline, "all_pairs", killed)
    with pytest.raises(KeyboardInterrupt):
        run_class(photos, StubClassifier(), target=0, out=out, config=CONFIG, progress=False)
    assert len(masks_calls) == 1 and len(ss_calls) == 4 and len(desc_calls) == 4
    assert not (out / "stages" / "pairs.json").exists() and not (out / "result.json").exists()
    # what a SIGKILL in the middle of a write leaves (an exception cleans up, a kill cannot)
    (out / ".similarity.npz.k1ll3d.tmp").write_bytes(b"half")
    (out / "masks" / ".x_sharp.png.k1ll3d.tmp").write_bytes(b"half")

    monkeypatch.setattr(pipeline, "all_pairs", real_all_pairs)
    resumed = run_class(photos, StubClassifier(), target=0, out=out, config=CONFIG, progress=False)
    assert not list(out.rglob("*.tmp")), "stale temporary files of the killed run were left"
    assert len(masks_calls) == 1 and len(ss_calls) == 4 and len(desc_calls) == 4, "stages 1-3 were recomputed"
    assert resumed.reused == ["masks", "proposals", "descriptors"]
    assert resumed.summaries == clean_run.summaries
    assert read_json(out / "result.json")["summaries"] == read_json(clean_run.out / "result.json")["summaries"]

    again = run_class(photos, StubClassifier(), target=0, out=out, config=CONFIG, progress=False)
    assert again.reused == list(pipeline.STAGES) and again.summaries == clean_run.summaries

    # a stage-5 setting reruns stage 5 only; force reruns everything
    other = PipelineConfig(proposals=CONFIG.proposals, summary_cell=CONFIG.summary_cell,
                           summary=pipeline.SummaryConfig(preference_factor=1.0))
    changed = run_class(photos, StubClassifier(), target=0, out=out, config=other, progress=False)
    assert changed.reused == ["masks", "proposals", "descriptors", "pairs"]
    # killed while stage 5 recomputes: its stale manifest is gone, so nothing half-written is trusted
    real_stage5 = pipeline.summarize_from_pairs
    monkeypatch.setattr(pipeline, "summarize_from_pairs", killed)
    assert run_class(photos, StubClassifier(), target=0, out=out, config=other, progress=False).reused == list(
        pipeline.STAGES)  # same settings: stage 5 reused, not started
    with pytest.raises(KeyboardInterrupt):
        run_class(photos, StubClassifier(), target=0, out=out, config=CONFIG, progress=False)
    assert not (out / "stages" / "summaries.json").exists()
    monkeypatch.setattr(pipeline, "summarize_from_pairs", real_stage5)
    forced = run_class(photos, StubClassifier(), target=0, out=out, config=CONFIG, force=True, progress=False)
    assert forced.reused == [] and len(masks_calls) == 2 and len(ss_calls) == 8
    assert forced.summaries == clean_run.summaries


def check_no_summaries(out: Path, run, phrase: str):
    result = read_json(out / "result.json")
    assert result["status"] == "no_summaries" and result["summaries"] == []
    assert phrase in result["reason"] and run.reason == result["reason"]
    return result


def test_single_image(photos, tmp_path, stub):
    one = sorted(photos.glob("*.jpg"))[:1]
    run = run_class(one, stub, target=0, out=tmp_path, config=CONFIG, progress=False)
    result = check_no_summaries(tmp_path, run, "at least 2 images")
    assert result["counts"]["images"] == 1


def test_no_valid_proposals(photos, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "compute_masks", fake_masks("empty"))
    run = run_class(photos, StubClassifier(), target=0, out=tmp_path, config=CONFIG, progress=False)
    result = check_no_summaries(tmp_path, run, "no valid proposal")
    assert result["counts"]["valid"] == 0 and result["counts"]["images_kept"] == 4


def test_every_image_misclassified(photos, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "compute_masks", fake_masks("misclassified"))
    run = run_class(photos, StubClassifier(), target=0, out=tmp_path, config=CONFIG, progress=False)
    result = check_no_summaries(tmp_path, run, "no image left after stage 1")
    assert "4 misclassified" in result["reason"]
    assert len(result["skipped"]) == 4 and all(s["reason"].startswith("misclassified") for s in result["skipped"])


def test_bad_input(tmp_path, stub):
    from vsum import VsumError

    with pytest.raises(VsumError, match="no image files"):
        run_class(tmp_path, stub, out=tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="num"):
        ProposalConfig(num=0)
    with pytest.raises(ValueError, match="PipelineConfig"):
        run_class(tmp_path, stub, out=tmp_path / "run", config={"masks": None}, progress=False)


def test_cli_summarize(photos, tmp_path, monkeypatch, capsys):
    from vsum import cli

    monkeypatch.setattr(pipeline, "compute_masks", fake_masks("blob"))
    monkeypatch.setattr(cli, "_load", lambda args: StubClassifier())
    argv = ["summarize", str(photos), "--target", "albatross", "--out", str(tmp_path / "run"), "--proposals", "40",
            "--smooth-iters", "3", "--sharp-iters", "2", "--quiet"]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "kept 4 of 4 images" in text and "summaries" in text and str(tmp_path / "run") in text
    assert read_json(tmp_path / "run" / "result.json")["target"] == 0
    assert read_json(tmp_path / "run" / "config.json")["config"]["masks"]["smooth"]["iterations"] == 3
    assert cli.main(argv) == 0
    assert "(cached)" in capsys.readouterr().out

    assert cli.main(["summarize", str(tmp_path / "nothing"), "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("vsum: error:")
    assert cli.main(argv + ["--smooth-iters", "0"]) == 2
    assert "--smooth-iters" in capsys.readouterr().err


def test_lazy_api_does_not_import_torch_on_import():
    import subprocess
    import sys

    code = ("import sys, vsum; assert 'torch' not in sys.modules; "
            "assert callable(vsum.summarize_images) and callable(vsum.summarize)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_real_stage1_end_to_end(photos, lite0, tmp_path):
    """Stage 1 with the real model (1 + 1 iterations): masks and images share the model grid."""
    two = sorted(photos.glob("*.jpg"))[:2]
    config = PipelineConfig(masks=MaskConfig().with_iterations(1, 1), proposals=ProposalConfig(num=30),
                            summary_cell=64)
    run = run_class(two, lite0, target=None, out=tmp_path, config=config, progress=False)
    result = read_json(tmp_path / "result.json")
    assert result["image_side"] == lite0.input_size and result["counts"]["images"] == 2
    assert result["status"] in ("ok", "no_summaries") and (result["status"] == "ok") == (result["reason"] is None)
    assert len(list((tmp_path / "masks").glob("*_sharp.png"))) == result["counts"]["images_kept"]
    with np.load(tmp_path / "masks" / "saliency.npz") as saliency:
        assert len(saliency.files) == result["counts"]["images_kept"]
        for key in saliency.files:
            assert saliency[key].shape == (lite0.input_size, lite0.input_size)
    assert run.reused == []

"""One class end to end (``vsum.summarize``, ``vsum summarize``): layout, cache keys, resume, edge cases.

Stage 1 is replaced by the silhouettes of a synthetic bird class (a stub
classifier, no torch model, no shared data) so that the file stays fast; the
stages 2-5, the cache and the outputs are real.  One test runs the real
stage 1 on shared photos.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import vsum
import vsum.pipeline as pipeline
from vsum.clusters import ClusterConfig, find_summaries
from vsum.features import DescriptorConfig
from vsum.masks import MaskConfig
from vsum.manifest import file_sha256
from vsum.pairs import AllPairsResult, PairsConfig, match_class
from vsum.pipeline import PipelineConfig, summarize
from vsum.proposals import ProposalConfig

from helpers import require_data
from pipeline_helpers import CONFIG, SIDE, StubClassifier, fake_masks, uninterrupted_run, write_birds


@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    """A folder of 4 synthetic bird photos and their silhouettes (file name -> mask)."""
    folder = tmp_path_factory.mktemp("birds")
    return folder, write_birds(folder, 4)


@pytest.fixture
def stub(monkeypatch, birds):
    monkeypatch.setattr(pipeline, "compute_masks", fake_masks(birds[1]))
    return StubClassifier()


@pytest.fixture(scope="module")
def clean_run(birds, tmp_path_factory):
    """One uninterrupted run (stage 1 faked), shared by the tests that compare against it."""
    return uninterrupted_run(birds[0], birds[1], tmp_path_factory.mktemp("clean"))


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def counting(fn, calls: list):
    def wrapped(*args, **kwargs):
        calls.append(1)
        return fn(*args, **kwargs)

    return wrapped


def killed(*args, **kwargs):
    raise KeyboardInterrupt("killed")


def test_run_directory_layout(clean_run):
    out = clean_run.out
    result = read_json(out / "result.json")
    assert result == json.loads(json.dumps(clean_run.result))
    assert result["status"] == "ok" and result["reason"] is None and result["notes"] == []
    counts = result["counts"]
    assert counts["images"] == counts["images_kept"] == 4 and counts["images_skipped"] == 0
    assert counts["proposals"] >= counts["valid"] >= counts["kept"] > 0
    assert counts["summaries"] == len(result["summaries"]) >= 1
    assert set(result["timings"]) == set(pipeline.STAGES) | {"total"}
    config = read_json(out / "config.json")
    assert len(config["hash"]) == 16 and config["hash"] == result["config_hash"] and config["vsum"] == vsum.__version__
    assert config["config"]["image_side"] == SIDE and config["config"]["proposals"]["num"] == 40
    assert set(config["config"]) >= {"masks", "proposals", "descriptors", "pairs", "clusters", "render"}
    for name in ("proposals.npz", "descriptors.npz", "similarity.npz", "clusters.json", "masks/metrics.csv",
                 "masks/saliency.npz"):
        assert (out / name).is_file(), name
    for stage in pipeline.STAGES:
        manifest = read_json(out / "stages" / f"{stage}.json")
        assert manifest["stage"] == stage and len(manifest["key"]) == 16
    clusters = read_json(out / "clusters.json")
    assert len(clusters["clusters"]) == counts["clusters"]
    assert len(list((out / "summaries" / "debug").glob("cluster_*.png"))) == counts["clusters"]
    for entry in result["summaries"]:
        assert (out / entry["png"]).is_file() and (out / entry["strip"]).is_file()
        assert entry["images"] == len(entry["members"]) >= 1
        for member in entry["members"]:
            assert member["image"] in clusters["images"]
            x1, y1, x2, y2 = member["box"]
            assert 0 <= x1 <= x2 < SIDE and 0 <= y1 <= y2 < SIDE
            assert member["similarity"] is not None
    assert not list(out.rglob("*.vsum-tmp")), "a temporary file was left behind"


def test_stage5_equals_find_summaries(clean_run):
    """The pipeline's stage 5 is find_summaries on the stored stages 1-4."""
    out = clean_run.out
    grid = [pipeline.model_grid_image(p, SIDE) for p in clean_run.images]
    with np.load(out / "masks" / "saliency.npz") as sz, np.load(out / "proposals.npz") as pz, \
            np.load(out / "descriptors.npz") as dz:
        masks = [sz[f"sharp_{i}"] >= 128 for i in range(4)]
        boxes = [pz[f"boxes_{i}"] for i in range(4)]
        descs = [dz[f"desc_{i}"] for i in range(4)]
    pairs = AllPairsResult.load(out / "similarity.npz")
    assert pairs.mismatch(method="lom", order="sequential", topk=100, ridge=0.01, rows=match_class(
        masks, boxes, descs).rows) is None
    direct = find_summaries(grid, boxes, descs, pairs, CONFIG.clusters).to_dict()
    ours = clean_run.summary.to_dict()
    for d in (direct, ours):
        d.pop("timings")
    assert ours == direct


def test_resume_after_kill_in_stage4(birds, clean_run, tmp_path, monkeypatch):
    out = tmp_path / "run"
    masks_calls, ss_calls, desc_calls = [], [], []
    monkeypatch.setattr(pipeline, "compute_masks", fake_masks(birds[1], calls=masks_calls))
    monkeypatch.setattr(pipeline, "selective_search", counting(pipeline.selective_search, ss_calls))
    monkeypatch.setattr(pipeline, "describe", counting(pipeline.describe, desc_calls))
    real_match_class = pipeline.match_class
    monkeypatch.setattr(pipeline, "match_class", killed)
    with pytest.raises(KeyboardInterrupt):
        summarize(birds[0], StubClassifier(), target=0, out=out, config=CONFIG, progress=False)
    assert len(masks_calls) == 1 and len(ss_calls) == 4 and len(desc_calls) == 4
    assert not (out / "stages" / "pairs.json").exists() and not (out / "result.json").exists()
    # what a SIGKILL in the middle of a write leaves (an exception cleans up, a kill cannot)
    (out / ".similarity.npz.k1ll3d.vsum-tmp").write_bytes(b"half")
    (out / "masks" / ".x_sharp.png.k1ll3d.vsum-tmp").write_bytes(b"half")
    (out / ".someone-elses.tmp").write_bytes(b"not ours")  # not vsum's kind: left alone

    monkeypatch.setattr(pipeline, "match_class", real_match_class)
    resumed = summarize(birds[0], StubClassifier(), target=0, out=out, config=CONFIG, progress=False)
    assert not list(out.rglob("*.vsum-tmp")), "stale temporary files of the killed run were left"
    assert (out / ".someone-elses.tmp").read_bytes() == b"not ours"
    assert len(masks_calls) == 1 and len(ss_calls) == 4 and len(desc_calls) == 4, "stages 1-3 were recomputed"
    assert resumed.reused == ["masks", "proposals", "descriptors"]
    assert resumed.summaries == clean_run.summaries
    assert read_json(out / "result.json")["summaries"] == read_json(clean_run.out / "result.json")["summaries"]

    again = summarize(birds[0], StubClassifier(), target=0, out=out, config=CONFIG, progress=False)
    assert again.reused == list(pipeline.STAGES) and again.summaries == clean_run.summaries

    # a stage-5 setting reruns stage 5 only; force reruns everything
    other = dataclasses.replace(CONFIG, clusters=ClusterConfig(preference_factor=1.0))
    changed = summarize(birds[0], StubClassifier(), target=0, out=out, config=other, progress=False)
    assert changed.reused == ["masks", "proposals", "descriptors", "pairs"]
    # killed while stage 5 recomputes: its stale manifest is gone, so nothing half-written is trusted
    monkeypatch.setattr(pipeline, "find_summaries", killed)
    assert summarize(birds[0], StubClassifier(), target=0, out=out, config=other, progress=False).reused == list(
        pipeline.STAGES)  # same settings: stage 5 reused, not started
    with pytest.raises(KeyboardInterrupt):
        summarize(birds[0], StubClassifier(), target=0, out=out, config=CONFIG, progress=False)
    assert not (out / "stages" / "summaries.json").exists()
    monkeypatch.undo()
    monkeypatch.setattr(pipeline, "compute_masks", fake_masks(birds[1], calls=masks_calls))
    forced = summarize(birds[0], StubClassifier(), target=0, out=out, config=CONFIG, force=True, progress=False)
    assert forced.reused == [] and len(masks_calls) == 2
    assert forced.summaries == clean_run.summaries


# One new field per stage configuration, with a default: the stage it belongs to and every later stage
# must recompute, the earlier ones are reused.
def _with_new_field(cls):
    return dataclasses.make_dataclass(f"{cls.__name__}Plus", [("new_setting", int, dataclasses.field(default=1))],
                                      bases=(cls,), frozen=True)


@pytest.mark.parametrize("stage, field, cls", [
    ("masks", "masks", MaskConfig), ("proposals", "proposals", ProposalConfig),
    ("descriptors", "descriptors", DescriptorConfig), ("pairs", "pairs", PairsConfig),
    ("summaries", "clusters", ClusterConfig),
])
def test_a_new_config_field_recomputes_its_stage(birds, clean_run, tmp_path, stub, stage, field, cls):
    out = tmp_path / "run"
    summarize(birds[0], stub, target=0, out=out, config=CONFIG, progress=False)
    old = getattr(CONFIG, field)
    extended = _with_new_field(cls)(**{f.name: getattr(old, f.name) for f in dataclasses.fields(old)})
    run = summarize(birds[0], stub, target=0, out=out, config=dataclasses.replace(CONFIG, **{field: extended}),
                    progress=False)
    k = pipeline.STAGES.index(stage)
    assert run.reused == list(pipeline.STAGES[:k])
    assert run.summaries == clean_run.summaries  # the new field changes nothing it computes


def test_stored_pairs_of_another_lom_order_are_not_reused(birds, clean_run, tmp_path, stub):
    out = tmp_path / "run"
    first = summarize(birds[0], stub, target=0, out=out, config=CONFIG, progress=False)
    stored = AllPairsResult.load(out / "similarity.npz")
    assert (stored.method, stored.order, stored.topk, stored.diagonal) == ("lom", "sequential", 100, True)
    rows = stored.rows
    assert stored.mismatch(method="lom", order="sequential", topk=100, ridge=0.01, rows=rows) is None
    assert stored.mismatch(method="lom", order="parallel", topk=100, ridge=0.01, rows=rows) == (
        "it was made with order 'sequential', not 'parallel'")
    assert "topk" in stored.mismatch(method="lom", order="sequential", topk=50, ridge=0.01, rows=rows)
    assert "rows of image 1" in stored.mismatch(method="lom", order="sequential", topk=100, ridge=0.01,
                                                 rows=[rows[0], rows[1][1:], *rows[2:]])

    # another order in the configuration: a new stage-4 key, stage 4 recomputes
    parallel = dataclasses.replace(CONFIG, pairs=PairsConfig(order="parallel"))
    run = summarize(birds[0], stub, target=0, out=out, config=parallel, progress=False)
    assert run.reused == ["masks", "proposals", "descriptors"]
    assert AllPairsResult.load(out / "similarity.npz").order == "parallel"

    # a stored result of another order under a matching manifest (copied in by hand): detected, recomputed
    summarize(birds[0], stub, target=0, out=out, config=CONFIG, progress=False)
    manifest = read_json(out / "stages" / "pairs.json")
    with np.load(out / "masks" / "saliency.npz") as sz, np.load(out / "proposals.npz") as pz, \
            np.load(out / "descriptors.npz") as dz:
        masks = [sz[f"sharp_{i}"] >= 128 for i in range(4)]
        boxes = [pz[f"boxes_{i}"] for i in range(4)]
        descs = [dz[f"desc_{i}"] for i in range(4)]
    match_class(masks, boxes, descs, PairsConfig(order="parallel")).save(out / "similarity.npz")
    assert read_json(out / "stages" / "pairs.json") == manifest
    # the replaced file no longer matches the size and checksum its manifest records
    swapped = summarize(birds[0], stub, target=0, out=out, config=CONFIG, progress=False)
    assert swapped.reused == ["masks", "proposals", "descriptors"]
    assert any("similarity.npz" in note and "recomputing from stage 'pairs' on" in note
               for note in swapped.result["notes"])
    # ... and with a manifest rewritten to match it, the recorded settings still give it away
    match_class(masks, boxes, descs, PairsConfig(order="parallel")).save(out / "similarity.npz")
    manifest = read_json(out / "stages" / "pairs.json")
    manifest["files"]["similarity.npz"] = {"size": (out / "similarity.npz").stat().st_size,
                                           "sha256": file_sha256(out / "similarity.npz")}
    (out / "stages" / "pairs.json").write_text(json.dumps(manifest))
    again = summarize(birds[0], stub, target=0, out=out, config=CONFIG, progress=False)
    # stage 4 recomputed, and every stage after it
    assert again.reused == ["masks", "proposals", "descriptors"]
    assert any("order 'parallel', not 'sequential'" in note for note in again.result["notes"])
    assert AllPairsResult.load(out / "similarity.npz").order == "sequential"
    assert again.summaries == first.summaries == clean_run.summaries


def check_no_summaries(out: Path, run, phrase: str):
    result = read_json(out / "result.json")
    assert result["status"] == "no_summaries" and result["summaries"] == []
    assert phrase in result["reason"] and run.reason == result["reason"]
    return result


def test_single_image(birds, tmp_path, stub):
    one = sorted(birds[0].glob("*.png"))[:1]
    run = summarize(one, stub, target=0, out=tmp_path, config=CONFIG, progress=False)
    result = check_no_summaries(tmp_path, run, "at least 2 images")
    assert result["counts"]["images"] == 1


def test_no_valid_proposals(birds, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "compute_masks", fake_masks(birds[1], "empty"))
    run = summarize(birds[0], StubClassifier(), target=0, out=tmp_path, config=CONFIG, progress=False)
    result = check_no_summaries(tmp_path, run, "no valid proposal")
    assert result["counts"]["valid"] == 0 and result["counts"]["images_kept"] == 4
    assert AllPairsResult.load(tmp_path / "similarity.npz").pairs == 0  # nothing stage 5 could use was matched


def test_every_image_misclassified(birds, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "compute_masks", fake_masks(birds[1], "misclassified"))
    run = summarize(birds[0], StubClassifier(), target=0, out=tmp_path, config=CONFIG, progress=False)
    result = check_no_summaries(tmp_path, run, "no image left after stage 1")
    assert "4 misclassified" in result["reason"]
    assert len(result["skipped"]) == 4 and all(s["reason"].startswith("misclassified") for s in result["skipped"])


def test_bad_input(tmp_path, stub):
    from vsum import VsumError

    with pytest.raises(VsumError, match="no image files"):
        summarize(tmp_path, stub, out=tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="num"):
        ProposalConfig(num=0)
    with pytest.raises(ValueError, match="PipelineConfig"):
        summarize(tmp_path, stub, out=tmp_path / "run", config={"masks": None}, progress=False)
    with pytest.raises(ValueError, match="PipelineConfig: pairs"):
        PipelineConfig(pairs=ClusterConfig())


def test_cli_summarize(birds, tmp_path, monkeypatch, capsys):
    from vsum import cli

    monkeypatch.setattr(pipeline, "compute_masks", fake_masks(birds[1]))
    monkeypatch.setattr(cli, "_load", lambda args: StubClassifier())
    argv = ["summarize", str(birds[0]), "--target", "bird", "--out", str(tmp_path / "run"), "--proposals", "40",
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


def test_real_stage1_end_to_end(data_dir, lite0, tmp_path):
    """The real stage 1 (3 + 2 iterations) on three albatross photos: masks and images share the model grid."""
    files = sorted((data_dir / "albatross").glob("*.jpg"))[1:4]
    require_data(len(files) == 3, f"albatross photos in {data_dir / 'albatross'}")
    config = PipelineConfig(masks=MaskConfig().with_iterations(3, 2), proposals=ProposalConfig(num=30),
                            render=CONFIG.render)
    run = summarize(files, lite0, target=146, out=tmp_path, config=config, progress=False)
    result = read_json(tmp_path / "result.json")
    assert result["image_side"] == lite0.input_size and result["counts"]["images"] == 3
    assert result["counts"]["images_kept"] == 3 and result["skipped"] == []
    assert result["status"] == "ok" and result["reason"] is None and len(result["summaries"]) >= 1
    assert len(list((tmp_path / "masks").glob("*_sharp.png"))) == 3
    with np.load(tmp_path / "masks" / "saliency.npz") as saliency:
        assert len(saliency.files) == 3
        for key in saliency.files:
            assert saliency[key].shape == (lite0.input_size, lite0.input_size)
            assert 0 < (saliency[key] >= 128).mean() < 1  # a mask, neither empty nor everything
    for entry in result["summaries"]:
        for member in entry["members"]:
            assert all(0 <= v < lite0.input_size for v in member["box"])
    assert run.reused == []

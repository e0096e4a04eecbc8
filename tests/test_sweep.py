"""``vsum sweep`` end to end on real photos: local processes and Ray, resume after SIGKILL, retries, bad input.

One sweep folder (``main_sweep``) is made with the command a user types:
EfficientNet-Lite0 and Lite1, three imagenette classes of 4 photos with
3 + 2 stage-1 iterations, plus classes that cannot work (an empty folder, a
folder named like an HTML tag that no model knows, unreadable files only,
photos of another class).  The other tests run the same sweep another way
(Ray, killed and resumed) and compare their tables with it.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vsum.errors import VsumError
from vsum.sweep import SweepConfig, sweep
from vsum.sweep_inputs import discover_classes, parse_models, resolve_class
from vsum.sweep_table import SUMMARY_COLUMNS, TIMING_COLUMNS, duplicate_groups
from vsum.sweep_tasks import FAIL_ONCE_ENV

MODELS = "efficientnet_lite0,efficientnet_lite1"
EVIL = "<img src=x onerror=alert(1)>"
GOOD = {"n01440764": "n01440764", "n03028079": "n03028079", "n03888257": "n03888257"}
ITERS = ["--smooth-iters", "3", "--sharp-iters", "2"]


def make_root(data: Path, root: Path) -> Path:
    """Three real classes (4+ photos each) and four classes that cannot give summaries."""
    for label, wnid in GOOD.items():
        (root / label).mkdir(parents=True)
        for photo in sorted((data / "imagenette" / wnid).iterdir())[:5]:
            (root / label / photo.name).symlink_to(photo)
    (root / "goldfish").mkdir()  # a known class, no photos
    (root / EVIL).mkdir()  # no model knows this class
    shutil.copyfile(sorted((data / "imagenette" / "n01440764").iterdir())[0], root / EVIL / "a.JPEG")
    (root / "garbage truck").mkdir()  # a class name with a space; unreadable files only
    (root / "garbage truck" / "empty.jpg").write_bytes(b"")
    (root / "garbage truck" / "text.png").write_bytes(b"not an image at all")
    (root / "n03445777").mkdir()  # golf ball, holding photos of tench: all misclassified
    for photo in sorted((data / "imagenette" / "n01440764").iterdir())[5:7]:
        (root / "n03445777" / photo.name).symlink_to(photo)
    return root


def vsum_sweep(root: Path, out: Path, *extra: str, env: dict | None = None, check: bool = True):
    command = [sys.executable, "-m", "vsum", "sweep", str(root), "--models", MODELS, "--out", str(out),
               "--max-images", "4", *ITERS, "-q", *extra]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=900)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def read_rows(folder: Path) -> list[dict]:
    with open(folder / "sweep.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def outcome(rows: list[dict]) -> list[dict]:
    """Every column but the measured seconds."""
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


@pytest.fixture(scope="module")
def sweep_root(data_dir, tmp_path_factory) -> Path:
    return make_root(data_dir, tmp_path_factory.mktemp("root"))


@pytest.fixture(scope="module")
def main_sweep(sweep_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "s"
    done = vsum_sweep(sweep_root, out)
    assert "failed" in done.stdout
    return out


def test_local_sweep_completes_with_a_row_per_model_class_and_set(main_sweep):
    rows = read_rows(main_sweep)
    classes = {*GOOD, "goldfish", EVIL, "garbage truck", "n03445777"}
    assert {(r["model"], r["class"], r["image_set"]) for r in rows} == {
        (m, c, s) for m in MODELS.split(",") for c in classes for s in ("own", "common")}
    good = [r for r in rows if r["class"] in GOOD]
    assert all(r["status"] in ("ok", "no_summaries") for r in good), [(r["class"], r["error"]) for r in good]
    assert sum(int(r["summaries"]) for r in good) > 0
    for r in good:
        assert int(r["images"]) == (4 if r["image_set"] == "own" else int(r["images"]))
        assert int(r["images_kept"]) + int(r["skipped_misclassified"]) + int(r["skipped_unreadable"]) == int(r["images"])
        assert (Path(main_sweep) / r["run"] / "report.html").is_file()
        result = json.loads((Path(main_sweep) / r["run"] / "result.json").read_text())
        assert int(r["summaries"]) == len(result["summaries"])
    table = json.loads((main_sweep / "sweep.json").read_text())
    assert {m["model"] for m in table["per_model"]} == set(MODELS.split(","))
    for m in table["per_model"]:
        assert m["classes"] == 7 and m["summaries_mean"] is not None and 0 <= m["top1"] <= 1


def test_bad_classes_are_recorded_per_task_with_a_reason(main_sweep):
    rows = {(r["model"], r["class"], r["image_set"]): r for r in read_rows(main_sweep)}
    for model in MODELS.split(","):
        empty = rows[model, "goldfish", "own"]
        assert empty["status"] == "failed" and "no image files" in empty["error"]
        unknown = rows[model, EVIL, "own"]
        assert unknown["status"] == "failed" and "does not know this class" in unknown["error"]
        unreadable = rows[model, "garbage truck", "own"]
        assert unreadable["status"] == "no_summaries" and unreadable["skipped_unreadable"] == "2"
        assert unreadable["class_name"] == "garbage truck"
        wrong = rows[model, "n03445777", "own"]
        assert wrong["status"] == "no_summaries" and wrong["skipped_misclassified"] == "2"
        assert "misclassified" in wrong["error"]
        assert "every model" in rows[model, "n03445777", "common"]["error"]


def test_second_model_reuses_the_first_models_proposals(sweep_root, tmp_path):
    out = tmp_path / "shared"
    sweep(sweep_root, "a=efficientnet_lite0,b=efficientnet_lite0", out, classes=["n01440764"],
          config=SweepConfig(max_images=3, images="own", pipeline=_pipeline()), workers=1, progress=False)
    manifests = {m: json.loads((out / "runs" / m / "n01440764" / "stages" / "proposals.json").read_text())
                 for m in ("a", "b")}
    kept = json.loads((out / "runs" / "b" / "n01440764" / "result.json").read_text())["counts"]["images_kept"]
    assert kept >= 2
    assert manifests["a"]["image_cache"] == {"computed": kept, "reused": 0}
    assert manifests["b"]["image_cache"] == {"computed": 0, "reused": kept}  # no selective search for b
    descriptors = json.loads((out / "runs" / "b" / "n01440764" / "stages" / "descriptors.json").read_text())
    assert descriptors["image_cache"] == {"computed": 0, "reused": kept}
    a, b = (read_rows(out)[i] for i in (0, 1))
    assert {k: a[k] for k in SUMMARY_COLUMNS} == {k: b[k] for k in SUMMARY_COLUMNS}


def _pipeline():
    from vsum.masks import MaskConfig
    from vsum.pipeline import PipelineConfig

    return PipelineConfig(masks=MaskConfig().with_iterations(3, 2))


def test_ray_gives_identical_summary_columns_and_retries_a_failed_task(main_sweep, sweep_root, tmp_path,
                                                                       monkeypatch):
    import ray

    marker = tmp_path / "failed-once"
    monkeypatch.setenv(FAIL_ONCE_ENV, f"efficientnet_lite1/n03028079={marker}")
    config = SweepConfig(max_images=4, pipeline=_pipeline())
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = sweep(sweep_root, MODELS, tmp_path / "ray", config=config, backend="ray", progress=False)
    finally:
        ray.shutdown()
    assert marker.is_file(), "the test hook did not make the task fail"
    local, remote = read_rows(main_sweep), read_rows(tmp_path / "ray")
    assert [{k: r[k] for k in ("model", "class", "image_set", *SUMMARY_COLUMNS, "error")} for r in remote] == \
        [{k: r[k] for k in ("model", "class", "image_set", *SUMMARY_COLUMNS, "error")} for r in local]
    planned = sum(r["status"] == "failed" for r in local)  # the bad classes; the retried task finished
    assert result.failed == planned and planned > 0
    assert (tmp_path / "ray" / "runs" / "efficientnet_lite1" / "n03028079" / "result.json").is_file()


def test_local_failure_is_recorded_and_a_rerun_finishes_it(sweep_root, tmp_path, monkeypatch):
    marker = tmp_path / "failed-once"
    monkeypatch.setenv(FAIL_ONCE_ENV, f"efficientnet_lite0/n03888257={marker}")
    out = tmp_path / "local"
    config = SweepConfig(max_images=2, images="own", pipeline=_pipeline())
    first = sweep(sweep_root, "efficientnet_lite0", out, classes=list(GOOD), config=config, progress=False)
    rows = {r["class"]: r for r in first.rows}
    assert rows["n03888257"]["status"] == "failed" and "made to fail once" in rows["n03888257"]["error"]
    assert all(rows[c]["status"] in ("ok", "no_summaries") for c in ("n01440764", "n03028079"))
    second = sweep(sweep_root, "efficientnet_lite0", out, classes=list(GOOD), config=config, progress=False)
    assert second.failed == 0 and second.reused == 2 and second.finished == 1
    assert {r["class"]: r["status"] for r in second.rows}["n03888257"] in ("ok", "no_summaries")


def _manifests(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in folder.glob("runs*/*/*/stages/*.json")}


def test_sigkill_midway_then_rerun_reuses_finished_tasks_and_matches(main_sweep, sweep_root, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "vsum", "sweep", str(sweep_root), "--models", MODELS, "--out", str(out),
               "--max-images", "4", *ITERS, "-q"]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and child.poll() is None:
        done = [p for p in out.glob("tasks/own/*/*.json") if json.loads(p.read_text())["status"] != "failed"]
        if len(done) >= 2:
            break
        time.sleep(0.2)
    assert child.poll() is None, "the sweep ended before it could be killed midway"
    os.kill(child.pid, signal.SIGKILL)  # the driver only: its workers must die with it
    child.wait()
    time.sleep(1.0)
    finished = [p for p in out.glob("tasks/*/*/*.json") if json.loads(p.read_text())["status"] != "failed"]
    assert 2 <= len(finished) < 12
    before = _manifests(out)
    rerun = vsum_sweep(sweep_root, out)
    assert f"{len(finished)} finished earlier" in rerun.stdout
    after = _manifests(out)
    for record in finished:
        kind, model, name = record.parts[-3], record.parts[-2], record.stem
        run = f"{'runs' if kind == 'own' else 'runs-common'}/{model}/{name}/"
        kept = {k: v for k, v in before.items() if k.startswith(run)}
        assert kept and all(after[k] == v for k, v in kept.items()), f"{run} was touched by the rerun"
    assert outcome(read_rows(out)) == outcome(read_rows(main_sweep))


def test_compare_page_of_the_sweep(main_sweep, tmp_path):
    done = subprocess.run([sys.executable, "-m", "vsum", "compare", str(main_sweep), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "compare.html").read_text(encoding="utf-8")
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page
    result = json.loads((tmp_path / "compare.json").read_text())
    assert result["image_set"] == "common" and len(result["tests"]) == 1


# --------------------------------------------------------------------------- inputs


def test_parse_models():
    specs = parse_models("efficientnet_lite0, b=resnet50@/w/r50.pth")
    assert [(s.label, s.name, s.weights) for s in specs] == [("efficientnet_lite0", "efficientnet_lite0", None),
                                                             ("b", "resnet50", "/w/r50.pth")]
    for bad, why in [("", "at least one"), ("a,,b", "empty entry"), ("x/y=resnet50", "label"),
                     ("resnet50,resnet50", "given twice")]:
        with pytest.raises(VsumError, match=why):
            parse_models(bad)


def test_discover_classes_errors(tmp_path, data_dir):
    with pytest.raises(VsumError, match="not a folder"):
        discover_classes(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VsumError, match="holds nothing"):
        discover_classes(tmp_path / "empty")
    flat = tmp_path / "flat"
    flat.mkdir()
    photo = sorted((data_dir / "imagenet-samples").iterdir())[0]
    (flat / "x.jpg").symlink_to(photo)
    with pytest.raises(VsumError, match="--labels"):
        discover_classes(flat)
    labels = tmp_path / "labels.csv"
    labels.write_text("image,class\nx.jpg\n")
    with pytest.raises(VsumError, match="row 1: expected 'image,class'"):
        discover_classes(flat, labels)
    labels.write_text("x.jpg,tench\ny.jpg,tench\n")
    with pytest.raises(VsumError, match="not in"):
        discover_classes(flat, labels)
    labels.write_text("image,class\nx.jpg,tench\n")
    assert [(c.label, [p.name for p in c.files]) for c in discover_classes(flat, labels)] == [("tench", ["x.jpg"])]
    with pytest.raises(VsumError, match="--classes: beagel is not a class"):
        discover_classes(flat, labels, classes=["beagel"])


def test_resolve_class():
    from vsum.models import imagenet_categories

    names = imagenet_categories()
    assert resolve_class("207", names) == 207
    assert resolve_class("n02099601", names) == 207
    assert resolve_class("golden_retriever", names) == 207
    assert resolve_class("Golden Retriever", names) == 207
    assert resolve_class("n02099601_golden_retriever", names) == 207
    with pytest.raises(VsumError, match="outside"):
        resolve_class("1000", names)
    with pytest.raises(VsumError, match="neither"):
        resolve_class("unicorn", names)


def test_duplicate_groups_merge_summaries_on_the_same_part():
    def members(boxes):
        return [{"image": img, "box": box} for img, box in boxes]

    eye = members([("a", [10, 10, 20, 20]), ("b", [30, 30, 40, 40]), ("c", [0, 0, 9, 9])])
    inner = members([("a", [12, 12, 18, 18]), ("b", [31, 31, 38, 38]), ("d", [0, 0, 5, 5])])  # inside eye on a, b
    other = members([("a", [50, 50, 60, 60]), ("b", [30, 30, 40, 40])])  # overlaps on one of two shared photos
    single = members([("a", [10, 10, 20, 20])])  # one shared photo: never merged
    groups = duplicate_groups([{"members": m} for m in (eye, inner, other, single)])
    assert sorted(map(sorted, groups)) == [[0, 1], [2], [3]]


def test_labels_file_masks_only_sweep_batches_small_classes_together(data_dir, tmp_path):
    photos = sorted((data_dir / "imagenet-samples").iterdir())[:6]
    labels = tmp_path / "labels.csv"
    labels.write_text("image,class\n" + "".join(f"{p.name},{p.name.split('_')[0]}\n" for p in photos))
    config = SweepConfig(stages="masks", pipeline=_pipeline())
    result = sweep(data_dir / "imagenet-samples", "efficientnet_lite0", tmp_path / "s", labels=labels,
                   config=config, progress=False, workers=1)
    assert [r["class"] for r in result.rows] == sorted(p.name.split("_")[0] for p in photos)
    assert [r["class_index"] for r in result.rows] == list(range(6))
    assert all(r["status"] == "masks_only" for r in result.rows), [r["error"] for r in result.rows]
    batched = 0
    for r in result.rows:
        manifest = json.loads((tmp_path / "s" / r["run"] / "stages" / "masks.json").read_text())
        batched += manifest["batches"] == "computed elsewhere"
        assert not (tmp_path / "s" / r["run"] / "proposals.npz").exists()
    assert batched >= 4  # one-photo classes share stage-1 batches


def test_task_phases_put_stage1_on_the_gpu_process():
    from vsum.sweep_backends import task_phases
    from vsum.sweep_inputs import ModelSpec
    from vsum.sweep_tasks import ClassJob, TaskSpec

    spec = TaskSpec(ModelSpec("m", "efficientnet_lite0"), "own", (ClassJob("c", 0, ("a.jpg",), "runs/m/c"),), "all",
                    _pipeline(), device="cuda")
    first, second = task_phases(spec)
    assert (first.device, first.stages) == ("cuda", "masks") and (second.device, second.stages) == ("cpu", "all")
    assert task_phases(TaskSpec(**{**spec.__dict__, "stages": "masks"})) == [first]
    cpu = TaskSpec(**{**spec.__dict__, "device": "cpu"})
    assert task_phases(cpu) == [cpu]


def test_cuda_without_a_gpu_is_one_clear_error(sweep_root, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")  # the error is for machines without one
    with pytest.raises(VsumError, match="no CUDA device"):
        sweep(sweep_root, "efficientnet_lite0", tmp_path / "s", config=SweepConfig(device="cuda"), progress=False)


# --------------------------------------------------------------------------- the shared image cache


def test_image_cache_computes_each_entry_once_and_recovers_a_damaged_one(tmp_path):
    import numpy as np

    from vsum.image_cache import ImageCache

    calls = []

    def compute():
        calls.append(1)
        return np.arange(12, dtype=np.int32).reshape(3, 4)

    first, second = ImageCache(tmp_path), ImageCache(tmp_path)
    a = first.get("proposals", "k" * 24, compute)
    b = second.get("proposals", "k" * 24, compute)
    assert np.array_equal(a, b) and len(calls) == 1
    assert first.counts()["proposals"] == {"computed": 1, "reused": 0}
    assert second.counts()["proposals"] == {"computed": 0, "reused": 1}
    path = tmp_path / "proposals" / "kk" / f"{'k' * 24}.npy"
    path.write_bytes(b"damaged")
    assert np.array_equal(ImageCache(tmp_path).get("proposals", "k" * 24, compute), a) and len(calls) == 2
    with pytest.raises(ValueError, match="kind"):
        first.get("masks", "x", compute)


def test_summarize_with_an_image_cache_gives_the_same_run(tmp_path):
    import vsum.pipeline as pipeline

    from pipeline_helpers import CONFIG, StubClassifier, fake_masks, write_birds

    masks = write_birds(tmp_path / "photos", 4)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "compute_masks", fake_masks(masks))
        plain = pipeline.summarize(tmp_path / "photos", StubClassifier(), target=0, out=tmp_path / "plain",
                                   config=CONFIG, progress=False)
        cached = [pipeline.summarize(tmp_path / "photos", StubClassifier(), target=0, out=tmp_path / name,
                                     config=CONFIG, progress=False, image_cache=tmp_path / "cache")
                  for name in ("first", "second")]
    assert plain.summaries and all(run.summaries == plain.summaries for run in cached)
    for run, expect in zip(cached, ({"computed": 4, "reused": 0}, {"computed": 0, "reused": 4})):
        manifest = json.loads((run.out / "stages" / "proposals.json").read_text())
        assert manifest["image_cache"] == expect
    assert (tmp_path / "plain" / "proposals.npz").read_bytes() == (tmp_path / "second" / "proposals.npz").read_bytes()


def test_masks_only_run_is_reused_by_a_full_run(tmp_path):
    import vsum.pipeline as pipeline

    from pipeline_helpers import CONFIG, StubClassifier, fake_masks, write_birds

    masks = write_birds(tmp_path / "photos", 3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "compute_masks", fake_masks(masks))
        first = pipeline.summarize(tmp_path / "photos", StubClassifier(), target=0, out=tmp_path / "run",
                                   config=CONFIG, progress=False, stages="masks")
        assert first.result["status"] == "masks_only" and first.result["stages"] == ["masks"]
        assert not (tmp_path / "run" / "proposals.npz").exists() and (tmp_path / "run" / "report.html").is_file()
        full = pipeline.summarize(tmp_path / "photos", StubClassifier(), target=0, out=tmp_path / "run",
                                  config=CONFIG, progress=False)
    assert full.reused == ["masks"] and full.result["status"] in ("ok", "no_summaries")
    with pytest.raises(ValueError, match="stages"):
        pipeline.summarize(tmp_path / "photos", StubClassifier(), target=0, out=tmp_path / "x", stages="pairs")


def test_cuda_phase_runs_in_a_gpu_process_and_its_failure_is_recorded(tmp_path):
    """The GPU path of the local backend on a machine without a GPU: the stage-1 phase goes to a GPU process
    (CUDA_VISIBLE_DEVICES set), fails there with CUDA's absence as its reason, and the sweep records it."""
    import torch

    from vsum.sweep_backends import LocalBackend
    from vsum.sweep_inputs import ModelSpec
    from vsum.sweep_tasks import ClassJob, TaskSpec

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the GPU tests cover the path")
    spec = TaskSpec(ModelSpec("m", "efficientnet_lite0"), "own", (ClassJob("c", 0, ("a.jpg",), "runs/m/c"),), "all",
                    _pipeline(), device="cuda")
    ended, began = [], []
    LocalBackend(workers=1, threads=1, gpus=2).run([spec], tmp_path, lambda *a: ended.append(a), began.append)
    assert began == [spec] and len(ended) == 1
    assert ended[0][1] is None and "CUDA" in ended[0][2], ended


def test_a_worker_that_dies_is_recorded_and_the_others_finish(sweep_root, tmp_path, monkeypatch):
    marker = tmp_path / "crashed-once"
    monkeypatch.setenv(FAIL_ONCE_ENV, f"crash:efficientnet_lite0/n01440764={marker}")
    config = SweepConfig(max_images=4, images="own", pipeline=_pipeline())  # 4 photos: one task per class
    first = sweep(sweep_root, "efficientnet_lite0", tmp_path / "s", classes=list(GOOD), config=config,
                  progress=False, workers=1)
    rows = {r["class"]: r for r in first.rows}
    assert marker.is_file() and rows["n01440764"]["status"] == "failed"
    assert "worker process died" in rows["n01440764"]["error"]
    assert all(rows[c]["status"] in ("ok", "no_summaries") for c in ("n03028079", "n03888257"))
    second = sweep(sweep_root, "efficientnet_lite0", tmp_path / "s", classes=list(GOOD), config=config,
                   progress=False, workers=1)
    assert second.failed == 0 and second.finished == 1 and second.reused == 2

"""Run folders you can trust (stage 1 faked, synthetic birds, a stub classifier; no shared data).

* every stored artefact is checked against the size and SHA-256 its manifest
  records; a damaged one is recomputed from its stage on, with one line;
* a stage that recomputes removes the outputs it owns, and the report shows
  only what ``result.json`` lists, and only files inside the run folder;
* the cache key follows the weights' content and the vsum version;
* one writer per run folder (:class:`vsum.runlock.RunLock`).

The tests with real processes (SIGKILL in stage 1, two ``vsum summarize``
at once) are in ``tests/test_run_processes.py``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import vsum.pipeline as pipeline
from vsum.digests import cached_sha256
from vsum.manifest import OWNED, file_sha256
from vsum.pipeline import summarize
from vsum.report import render_report
from vsum.runlock import LOCK_NAME, RunLock, RunLocked

from pipeline_helpers import CONFIG, StubClassifier, fake_masks, uninterrupted_run, write_birds


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("birds")
    return folder, write_birds(folder, 4)


@pytest.fixture(scope="module")
def clean(birds, tmp_path_factory):
    """An uninterrupted run, to compare with."""
    return uninterrupted_run(birds[0], birds[1], tmp_path_factory.mktemp("clean"))


@pytest.fixture
def stub(monkeypatch, birds):
    monkeypatch.setattr(pipeline, "compute_masks", fake_masks(birds[1]))
    return StubClassifier()


def copy_run(src: Path, dst: Path) -> Path:
    subprocess.run(["cp", "-a", f"{src}/.", str(dst)], check=True)
    return dst


# --------------------------------------------------------------------------- checked artefacts

#: artefact -> the first stage that must recompute when it is damaged
ARTEFACTS = {
    "masks/saliency.npz": "masks",
    "masks/metrics.csv": "masks",
    "masks/bird_00_sharp.png": "masks",
    "proposals.npz": "proposals",
    "descriptors.npz": "descriptors",
    "similarity.npz": "pairs",
    "clusters.json": "summaries",
    "summaries/summary_0.png": "summaries",
    "summaries/debug/cluster_0.png": "summaries",
}


def test_every_stage_records_its_outputs_with_size_and_checksum(clean):
    for stage in pipeline.STAGES:
        manifest = read_json(clean.out / "stages" / f"{stage}.json")
        assert manifest["files"], stage
        for rel, entry in manifest["files"].items():
            path = clean.out / rel
            assert entry == {"size": path.stat().st_size, "sha256": file_sha256(path)}, rel
    recorded = {rel for stage in pipeline.STAGES for rel in read_json(clean.out / "stages" / f"{stage}.json")["files"]}
    assert set(ARTEFACTS) <= recorded


@pytest.mark.parametrize("artefact", list(ARTEFACTS))
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_artefact_is_recomputed_from_its_stage_on(artefact, damage, clean, stub, tmp_path, capsys):
    out = copy_run(clean.out, tmp_path / "run")
    path = out / artefact
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:  # same size, one byte changed: only the checksum can tell
        flipped = bytearray(data)
        flipped[len(flipped) // 2] ^= 0xFF
        path.write_bytes(bytes(flipped))
    run = summarize(clean.images[0].parent, stub, target=0, out=out, config=CONFIG, progress=False)
    first = pipeline.STAGES.index(ARTEFACTS[artefact])
    assert run.reused == list(pipeline.STAGES[:first])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("vsum: ")]
    assert len(lines) == 1 and artefact in lines[0] and f"recomputing from stage '{ARTEFACTS[artefact]}' on" in lines[0]
    assert lines[0].removeprefix("vsum: ") in run.result["notes"]
    assert run.summaries == clean.summaries and run.counts == clean.counts
    manifest = read_json(out / "stages" / f"{ARTEFACTS[artefact]}.json")
    assert manifest["files"][artefact] == {"size": path.stat().st_size, "sha256": file_sha256(path)}
    if artefact not in ("similarity.npz", "clusters.json"):  # these two also record their seconds
        assert path.read_bytes() == data  # rewritten whole, as before


def test_a_removed_or_unreadable_manifest_recomputes(clean, stub, tmp_path):
    out = copy_run(clean.out, tmp_path / "run")
    (out / "stages" / "descriptors.json").write_text("{ not json")
    run = summarize(clean.images[0].parent, stub, target=0, out=out, config=CONFIG, progress=False)
    assert run.reused == ["masks", "proposals"]
    assert run.summaries == clean.summaries


def test_a_manifest_without_checksums_is_not_trusted(clean, stub, tmp_path):
    """Manifests of earlier versions recorded only names: such a stage recomputes."""
    out = copy_run(clean.out, tmp_path / "run")
    manifest = read_json(out / "stages" / "pairs.json")
    manifest["outputs"] = list(manifest.pop("files"))
    (out / "stages" / "pairs.json").write_text(json.dumps(manifest))
    run = summarize(clean.images[0].parent, stub, target=0, out=out, config=CONFIG, progress=False)
    assert run.reused == ["masks", "proposals", "descriptors"]
    assert any("no file sizes and checksums" in note for note in run.result["notes"])


# --------------------------------------------------------------------------- stale outputs


def test_a_recomputing_stage_removes_the_outputs_it_owns(birds, stub, tmp_path):
    """Reproduces: a rerun with fewer clusters and fewer images kept showing the old PNGs in the report."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in sorted(birds[0].glob("*.png")):
        (photos / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "run"
    first = summarize(photos, stub, target=0, out=out, config=CONFIG, progress=False)
    gone = max(photos.glob("*.png"))
    assert (out / "masks" / f"{gone.stem}_sharp.png").is_file()
    # what an earlier run with more clusters would have left, plus a file that is not the run's
    (out / "summaries" / "debug" / "cluster_99.png").write_bytes((out / first.result["debug"][0]).read_bytes())
    (out / "summaries" / "summary_99.png").write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    gone.unlink()
    second = summarize(photos, stub, target=0, out=out, config=CONFIG, progress=False)
    assert second.counts["images"] == 3 and second.reused == []
    masks = sorted(p.name for p in (out / "masks").glob("*.png"))
    assert masks == sorted(f"{p.stem}_{k}.png" for p in photos.glob("*.png") for k in ("smooth", "sharp"))
    debug = sorted(p.relative_to(out).as_posix() for p in (out / "summaries" / "debug").glob("*.png"))
    assert debug == sorted(second.result["debug"]) and len(debug) == second.counts["clusters"]
    assert not (out / "summaries" / "summary_99.png").exists()
    assert (out / "notes.txt").read_text() == "mine"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert gone.name not in html and "cluster_99" not in html


def test_the_report_shows_only_listed_files(clean, tmp_path):
    out = copy_run(clean.out, tmp_path / "run")
    stray = out / "summaries" / "debug" / "cluster_77.png"
    stray.write_bytes((out / "summaries" / "debug" / "cluster_0.png").read_bytes())
    html = render_report(out)
    assert "cluster_77" not in html
    assert html.count("<figure>") == len(read_json(out / "result.json")["debug"])


def test_the_report_reads_no_file_outside_the_run_folder(clean, tmp_path):
    """Reproduces: a result.json naming ``../secret.png`` or ``/abs/path`` had that file inlined."""
    out = copy_run(clean.out, tmp_path / "run")
    secret = tmp_path / "secret.png"
    secret.write_bytes((out / "summaries" / "summary_0.png").read_bytes() + b"SECRET-BYTES")
    (out / "masks" / "link.png").symlink_to(secret)
    result = read_json(out / "result.json")
    result["summaries"][0]["png"] = "../secret.png"
    result["summaries"][0]["strip"] = str(secret)
    result["images"][0]["masks"]["sharp"] = "masks/link.png"
    result["debug"] = ["../secret.png", "summaries/debug/cluster_0.png"]
    (out / "result.json").write_text(json.dumps(result))
    html = render_report(out)
    secret_b64 = base64.b64encode(secret.read_bytes()).decode("ascii")
    assert secret_b64[:200] not in html
    assert html.count("its path leaves the run folder") == 4
    assert html.count("<figure>") == 2  # the listed inside overview is still shown


# --------------------------------------------------------------------------- keys


def test_overwritten_weights_recompute_stage_1(birds, monkeypatch, tmp_path):
    """Reproduces: overwriting the --weights file kept reporting "masks (cached)"."""
    monkeypatch.setenv("VSUM_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    monkeypatch.setattr(pipeline, "compute_masks", fake_masks(birds[1], calls=calls))
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"a" * (2 << 20))
    stub = StubClassifier()
    stub.weights = str(weights)
    out = tmp_path / "run"
    summarize(birds[0], stub, target=0, out=out, config=CONFIG, progress=False)
    again = summarize(birds[0], stub, target=0, out=out, config=CONFIG, progress=False)
    assert again.reused == list(pipeline.STAGES) and len(calls) == 1
    weights.write_bytes(b"b" * (2 << 20))  # same name, same size, other content
    changed = summarize(birds[0], stub, target=0, out=out, config=CONFIG, progress=False)
    assert "masks" not in changed.reused and len(calls) == 2
    assert read_json(out / "config.json")["config"]["weights_sha256"] == file_sha256(weights)


def test_another_vsum_version_recomputes_every_stage(clean, stub, monkeypatch, tmp_path):
    out = copy_run(clean.out, tmp_path / "run")
    monkeypatch.setattr(pipeline, "__version__", "999.0")
    run = summarize(clean.images[0].parent, stub, target=0, out=out, config=CONFIG, progress=False)
    assert run.reused == []


def test_weight_digests_are_cached_by_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("VSUM_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "w.bin"
    path.write_bytes(b"x" * (3 << 20))
    first = cached_sha256(path)
    assert first == file_sha256(path) and (tmp_path / "cache" / "file-digests.json").is_file()
    stat = path.stat()
    path.write_bytes(b"y" * (3 << 20))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert cached_sha256(path) == first  # same size and mtime: the cached digest, no read
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert cached_sha256(path) == file_sha256(path) != first


def test_weights_digest_follows_module_content():
    import torch

    from vsum.models import Classifier, weights_digest

    module = torch.nn.Linear(3, 2)
    one = Classifier(module, "lin", 8, class_names=["a", "b"], weights="random")
    before = weights_digest(one)
    assert weights_digest(one) == before
    with torch.no_grad():
        module.weight[0, 0] += 1.0
    assert weights_digest(one) != before


# --------------------------------------------------------------------------- one writer


def test_a_locked_folder_names_its_holder(tmp_path):
    out = tmp_path / "run"
    with RunLock(out):
        info = read_json(out / LOCK_NAME)
        assert info["pid"] == os.getpid()
        with pytest.raises(RunLocked, match=f"in use by process {os.getpid()} on"):
            RunLock(out).acquire()
    with RunLock(out) as again:  # released: free again
        assert again.held


def test_summarize_on_a_locked_folder(birds, stub, tmp_path, capsys):
    out = tmp_path / "run"
    holder = RunLock(out).acquire()
    try:
        (out / ".summary_0.png.x1.vsum-tmp").write_bytes(b"the holder's file")
        with pytest.raises(RunLocked, match="--wait"):
            summarize(birds[0], stub, target=0, out=out, config=CONFIG, progress=False)
        assert (out / ".summary_0.png.x1.vsum-tmp").exists(), "a waiting run removed the holder's temporary file"
        assert not (out / "result.json").exists()

        done = {}
        waiter = threading.Thread(target=lambda: done.setdefault(
            "run", summarize(birds[0], stub, target=0, out=out, config=CONFIG, progress=False, wait=True)))
        waiter.start()
        time.sleep(1.0)
        assert waiter.is_alive() and "run" not in done
        assert "vsum: waiting for" in capsys.readouterr().err
    finally:
        holder.release()
    waiter.join(120)
    assert done["run"].result["status"] == "ok"


def test_out_naming_a_file_is_an_error(birds, stub, tmp_path):
    out = tmp_path / "taken"
    out.write_text("a file")
    with pytest.raises(pipeline.VsumError, match="exists and is not a folder"):
        summarize(birds[0], stub, target=0, out=out, config=CONFIG, progress=False)
    assert out.read_text() == "a file"


def test_owned_outputs_cover_every_recorded_file(clean):
    """Every file a manifest records belongs to its stage (so a recomputation removes it first)."""
    for stage in pipeline.STAGES:
        for rel in read_json(clean.out / "stages" / f"{stage}.json")["files"]:
            assert any(Path(rel).match(p) or rel.startswith(p) for p in OWNED[stage] if p), (stage, rel)


def test_saliency_is_not_reread_after_it_is_written(birds, stub, tmp_path, monkeypatch):
    """Reproduces: a run reread saliency.npz (and every npz) just after writing it."""
    loads = []
    real = pipeline._load_npz
    monkeypatch.setattr(pipeline, "_load_npz", lambda path: loads.append(Path(path).name) or real(path))
    summarize(birds[0], stub, target=0, out=tmp_path / "run", config=CONFIG, progress=False)
    assert loads == []


# --------------------------------------------------------------------------- stage-1 batch files


def _results(names, seed=0):
    from vsum.masks import MaskResult, PassMetrics

    rng = np.random.default_rng(seed)
    out = []
    for name in names:
        r = MaskResult(image=Path(name), status="ok", target=3)
        for p in ("smooth", "sharp"):
            r.saliency[p] = rng.integers(0, 256, (16, 16), dtype=np.uint8)
            r.passes[p] = PassMetrics(*rng.random(4), float("nan"))
        out.append(r)
    return out


def _blank(names, target=3):
    from vsum.masks import MaskResult

    return [MaskResult(image=Path(n), status="ok", target=target) for n in names]


def test_mask_batches_round_trip_and_refusals(tmp_path):
    from vsum.mask_batches import MaskBatches

    store = MaskBatches(tmp_path / "b", key="k1")
    saved = _results(["a.png", "b\udcff.png"])
    store.save(0, saved)
    got = _blank(["a.png", "b\udcff.png"])
    assert store.restore(0, got) and store.restored == 1
    for want, have in zip(saved, got):
        for p in ("smooth", "sharp"):
            np.testing.assert_array_equal(have.saliency[p], want.saliency[p])
            np.testing.assert_array_equal(np.array(dataclasses.astuple(have.passes[p])),
                                          np.array(dataclasses.astuple(want.passes[p])))
    assert not MaskBatches(tmp_path / "b", key="k2").restore(0, _blank(["a.png", "b\udcff.png"]))  # other key
    assert not store.restore(0, _blank(["a.png", "c.png"]))  # other images
    assert not store.restore(0, _blank(["a.png", "b\udcff.png"], target=4))  # other targets
    assert not store.restore(1, _blank(["a.png"]))  # never saved
    data = store.path(0).read_bytes()
    store.path(0).write_bytes(data[: len(data) - 40])  # truncated by a crash of the disk, not of vsum
    untouched = _blank(["a.png", "b\udcff.png"])
    assert not store.restore(0, untouched) and untouched[0].saliency == {}
    store.save(0, saved)
    store.save(1, _results(["c.png"]))
    store.save(2, _results(["d.png"]))
    store.prune(2)
    assert sorted(p.name for p in store.folder.iterdir()) == ["batch_00000.npz", "batch_00001.npz"]
    MaskBatches(tmp_path / "b", key="k2").prune(5)  # files of another key go
    assert list(store.folder.iterdir()) == []


def test_stage_1_rebuilds_from_its_batches_and_force_recomputes_them(birds, monkeypatch, tmp_path):
    optimised = []
    monkeypatch.setattr(pipeline, "compute_masks", fake_masks(birds[1], optimised=optimised))
    out = tmp_path / "run"
    first = summarize(birds[0], StubClassifier(), target=0, out=out, config=CONFIG, progress=False)
    assert len(optimised) == 4 and len(list((out / "masks" / "batches").glob("batch_*.npz"))) == 4
    (out / "masks" / "saliency.npz").write_bytes(b"damaged")
    rebuilt = summarize(birds[0], StubClassifier(), target=0, out=out, config=CONFIG, progress=False)
    assert rebuilt.reused == [] and len(optimised) == 4  # stage 1 redone from its batch files, no optimisation
    assert read_json(out / "stages" / "masks.json")["batches"] == {"restored": 4, "computed": 0}
    assert rebuilt.summaries == first.summaries
    forced = summarize(birds[0], StubClassifier(), target=0, out=out, config=CONFIG, progress=False, force=True)
    assert len(optimised) == 8 and forced.summaries == first.summaries
    assert read_json(out / "stages" / "masks.json")["batches"] == {"restored": 0, "computed": 4}

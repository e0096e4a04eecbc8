"""Benchmark harness (benchmarks/harness.py, benchmarks/run.py): registry, records, reports."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"



@pytest.fixture
def harness(monkeypatch):
    # A private copy of the harness module (own registry), loaded from its file.
    name = "vsum_bench_harness"
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / "harness.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look the module up while executing it
    spec.loader.exec_module(module)
    return module


def test_register_run_and_write_reports(harness, tmp_path):
    calls = {"fn": 0, "ref": 0}

    def fn():
        calls["fn"] += 1
        return 1

    def ref():
        calls["ref"] += 1
        return 1

    @harness.benchmark("toy", description="a toy benchmark", label="fast", reference_label="slow")
    def cases(quick):
        yield harness.Case(
            name="one",
            fn=fn,
            reference=ref,
            work=1000,
            unit="image-iter",
            params={"batch": 4 if quick else 16},
            extra={"device": "cpu"},
            measure=lambda result: {"calls": calls["fn"]},
            check=lambda a, b: None,
            number=3,
        )
        yield harness.Case(name="two", fn=fn, params={"resolution": "224x224"})

    bench = harness.REGISTRY["toy"]
    report, text = harness.run_benchmark(bench, repeat=2, quick=True, out_dir=tmp_path, log=lambda s: None)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.json", "toy.md"]  # no temp files left
    data = json.loads((tmp_path / "toy.json").read_text())
    assert data == json.loads(json.dumps(report))
    for key in ("machine", "software", "git", "date", "settings", "results"):
        assert key in data
    assert {"cpu", "cores_logical", "ram_gib", "os"} <= set(data["machine"])
    assert {"python", "numpy", "torch"} <= set(data["software"])
    assert {"commit", "dirty"} <= set(data["git"])
    one, two = data["results"]
    assert one["timing"]["repeats"] == 2 and one["timing"]["number"] == 3
    assert one["reference"]["repeats"] == 2
    assert one["speedup"] == pytest.approx(one["reference"]["median_s"] / one["timing"]["median_s"])
    assert one["throughput_per_s"] == pytest.approx(1000 / one["timing"]["median_s"])
    assert one["params"] == {"batch": 4} and one["extra"]["device"] == "cpu" and one["extra"]["calls"] > 0
    assert two["reference"] is None and two["speedup"] is None

    md = (tmp_path / "toy.md").read_text()
    assert md == text
    header = next(line for line in md.splitlines() if line.startswith("| case"))
    for col in ("batch", "resolution", "fast median", "slow median", "speed-up", "device", "calls"):
        assert col in header
    assert "image-iter/s" in md and "commit:" in md and "machine:" in md


def test_warmup_false_makes_no_untimed_call(harness):
    calls = []
    timing = harness.time_callable(lambda: calls.append(1), repeat=3, number=2, warmup=False)
    assert len(calls) == 6 and timing.repeats == 3 and timing.number == 2
    calls.clear()
    harness.time_callable(lambda: calls.append(1), repeat=3, number=2)
    assert len(calls) == 7


def test_duplicate_registration_is_rejected(harness):
    harness.benchmark("dup")(lambda quick: [])
    with pytest.raises(ValueError, match="registered twice"):
        harness.benchmark("dup")(lambda quick: [])


def test_atomic_write_replaces_file(harness, tmp_path):
    target = tmp_path / "sub" / "x.md"
    harness.atomic_write_text(target, "one")
    harness.atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["x.md"]


def test_run_py_lists_and_rejects_unknown_names():
    run = [sys.executable, str(BENCH_DIR / "run.py")]
    out = subprocess.run([*run, "--list"], capture_output=True, text=True, check=True)
    assert "boxes" in out.stdout.split()
    for path in sorted(BENCH_DIR.glob("bench_*.py")):  # every module registers itself
        assert path.stem.removeprefix("bench_") in out.stdout.split()
    bad = subprocess.run([*run, "no-such-benchmark"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown benchmark" in bad.stderr


def test_end_to_end_report_table(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    spec = importlib.util.spec_from_file_location("vsum_bench_end_to_end", BENCH_DIR / "end_to_end.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    case = {"case": "albatross", "command": "vsum summarize A --target 146", "mask_iterations": [300, 150],
            "counts": {"images": 88, "images_kept": 77, "proposals": 34078, "valid": 4857, "kept": 616,
                       "clusters": 39, "summaries": 28},
            "timings": {"masks": 1815.3, "proposals": 19.6, "descriptors": 1.9, "pairs": 40.4, "summaries": 19.2},
            "summaries_with_5_images": 22, "wall_seconds": 1906.0, "peak_rss_mib": 1619.2, "report_mib": 8.7,
            "load_before": 0.1, "load_after": 2.0}
    report = {"machine": {"cpu": "Xeon", "cores_usable": 2, "ram_gib": 24}, "git": {"commit": "abc", "dirty": False},
              "date": "2026-11-26", "cases": [case]}
    text = module.render_markdown(report)
    header, rule, row = text.splitlines()[4:7]
    assert header.count("|") == rule.count("|") == row.count("|")
    assert "| albatross | 300 + 150 | 77 of 88 | 34078 / 4857 / 616 | 39 | 28 | 22 | 1815.3 |" in row

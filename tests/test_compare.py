"""``vsum compare``: numbers, paired tests, verdicts and a self-contained, escaped compare.html.

The sweeps are synthetic: a ``sweep.json`` written here and, for each finished row with summaries, a run folder
with ``result.json`` and small PNG strips, so the file needs neither a model nor shared data.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.stats import wilcoxon

from vsum import VsumError
from vsum.compare import (
    MIN_NONZERO,
    add_compare_parser,
    compare,
    compare_paragraph,
    paired_test,
    read_sweep,
    smallest_decisive_n,
)
from vsum.compare_page import MAX_THUMBS, plain_label

from helpers import require_chromium

EVIL = "<img src=x onerror=alert(1)>"
EVIL_ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"
DOLLAR = "$x^2$ a\\b $\\frac{$ \\$5"  # unescaped, matplotlib parses it as (broken) mathtext
CLASSES = ["n01", EVIL, DOLLAR, "n04", "n05", "n06", "n07", "n08"]
MODELS = ["lite0", "res&net", "vit"]
#: Summaries per class in the common set; None: the run failed.
COMMON = {"lite0": [5, 7, 6, 8, 9, 4, 7, 6], "res&net": [3, 4, 6, 5, 6, 2, 3, None], "vit": [5, 6, 7, 8, 8, 5, 7, 7]}
OWN = {"lite0": [6, 8, 6, 9, 9, 5, 14, 6], "res&net": [4, 4, 7, 5, 6, 3, 3, 2], "vit": [6, 6, 7, 9, 8, 5, 6, None]}
TOP1 = {"lite0": 0.75, "res&net": 0.77, "vit": 0.81}
STRIP_COLOURS = [(120, 60, 160), (90, 90, 90), (200, 200, 120)]  # far from matplotlib's C0 blue and C1 orange


def make_row(model: str, cls: str, image_set: str, summaries: int | None, run: str, status: str = "ok",
             error: str | None = None, kept: int = 10) -> dict:
    """A sweep row with every key of the sweep format; numbers None unless it finished."""
    done = status in ("ok", "no_summaries") and summaries is not None

    def n(value):
        return value if done else None

    return {"model": model, "class": cls, "class_index": None, "class_name": None, "image_set": image_set,
            "images": 12, "images_kept": n(kept), "skipped_misclassified": n(12 - kept), "skipped_unreadable": n(0),
            "top1": kept / 12, "proposals_valid": n(300), "proposals_kept": n(120), "clusters": n(summaries and 2 * summaries),
            "summaries": n(summaries), "summaries_5plus": n(summaries and summaries // 2),
            "summaries_merged": n(summaries and summaries - 1), "mean_members": n(4.5),
            "summaries_per_kept_image": n(summaries and summaries / kept), "mean_drop": n(0.4), "mean_area": n(0.1),
            "seconds_masks": n(3.0), "seconds_proposals": n(1.0), "seconds_descriptors": n(1.0),
            "seconds_pairs": n(2.0), "seconds_summaries": n(0.5), "seconds_total": n(7.5), "status": status,
            "error": error, "run": run}


def write_run(folder: Path, summaries: int, colour) -> None:
    """A finished run folder: result.json listing ``summaries`` summaries and their strip and grid PNGs."""
    (folder / "summaries").mkdir(parents=True, exist_ok=True)
    entries = []
    for k in range(summaries):
        Image.new("RGB", (90, 30), colour).save(folder / "summaries" / f"summary_{k}_strip.png")
        entries.append({"summary": k, "png": f"summaries/summary_{k}.png", "strip": f"summaries/summary_{k}_strip.png",
                        "images": 5, "score": 1.0 - k / 100, "members": []})
    (folder / "result.json").write_text(json.dumps({"status": "ok" if summaries else "no_summaries",
                                                    "summaries": entries}), encoding="utf-8")


def build_sweep(path: Path, classes: list[str], sets: dict[str, dict[str, list]], top1: dict | None = None,
                errors: dict | None = None, stages: str = "all", runs: bool = True) -> Path:
    """A sweep folder: ``sets`` maps an image set to {model: [summaries per class, None for a failed run]}."""
    models = list(next(iter(sets.values())))
    rows = []
    for image_set, counts in sets.items():
        for m, model in enumerate(models):
            for c, cls in enumerate(classes):
                value = counts[model][c]
                run = f"runs{'-common' if image_set == 'common' else ''}/m{m}/c{c}"
                failed = value is None and stages == "all"
                error = (errors or {}).get((model, cls, image_set), "RuntimeError: <b>boom</b>") if failed else None
                rows.append(make_row(model, cls, image_set, value if stages == "all" else 0, run,
                                     "failed" if failed else "ok", error))
                if stages == "masks":
                    rows[-1].update({k: None for k in rows[-1] if k.startswith("summaries") or k == "clusters"})
                if runs and not failed and stages == "all":
                    write_run(path / run, value, STRIP_COLOURS[m % len(STRIP_COLOURS)])
    per_model = [{"model": model, "image_set": "own", "top1": (top1 or {}).get(model), "classes": len(classes),
                  "classes_done": len(classes), "failed": 0, "summaries_mean": None, "summaries_median": None,
                  "seconds_total": 1.0} for model in models]
    sweep = {"vsum": "0.x", "root": "/data/<root>", "stages": stages, "images": "both" if len(sets) > 1 else "own",
             "models": [{"model": m, "name": m, "weights": "w", "input_size": 224} for m in models],
             "classes": classes, "rows": rows, "per_model": per_model}
    path.mkdir(parents=True, exist_ok=True)
    (path / "sweep.json").write_text(json.dumps(sweep), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def main_sweep(tmp_path_factory):
    """The 3-model, 8-class sweep (common and own sets) and its compare result, written into the sweep."""
    path = build_sweep(tmp_path_factory.mktemp("sweep"), CLASSES, {"common": COMMON, "own": OWN}, TOP1)
    return path, compare(path)


def finished(values: list, other: list) -> tuple[list, list]:
    pairs = [(x, y) for x, y in zip(values, other) if x is not None and y is not None]
    return [x for x, _ in pairs], [y for _, y in pairs]


# --------------------------------------------------------------------------- numbers


def test_compare_json_holds_the_numbers_of_the_rows(main_sweep):
    path, result = main_sweep
    assert json.loads((path / "compare.json").read_text(encoding="utf-8")) == result
    assert result["image_set"] == "common" and result["same_photos"] is True
    assert result["models"] == MODELS and result["classes"] == CLASSES
    for entry in result["per_model"]:
        for image_set, counts in (("common", COMMON), ("own", OWN)):
            values = [v for v in counts[entry["model"]] if v is not None]
            stats = entry[image_set]
            assert stats["classes"] == len(values) and stats["unfinished"] == len(CLASSES) - len(values)
            assert stats["summaries_mean"] == pytest.approx(np.mean(values))
            assert stats["summaries_median"] == pytest.approx(np.median(values))
            assert stats["images_kept_total"] == 10 * len(values)
        assert entry["top1"] == TOP1[entry["model"]] and entry["top1_source"] == "per_model"
    records = {(r["model"], r["class"], r["image_set"]): r for r in result["per_class"]}
    assert len(records) == 2 * len(MODELS) * len(CLASSES)
    assert records[("lite0", CLASSES[6], "own")]["summaries"] == 14
    assert records[("lite0", CLASSES[6], "common")]["summaries_per_kept_image"] == pytest.approx(0.7)
    assert records[("res&net", CLASSES[7], "common")]["summaries"] is None


def test_wilcoxon_p_values_match_scipy(main_sweep):
    _, result = main_sweep
    tests = {frozenset((t["a"], t["b"])): t for t in result["tests"]}
    assert len(tests) == 3
    test = tests[frozenset(("lite0", "res&net"))]
    a, b = finished(COMMON["lite0"], COMMON["res&net"])
    assert (test["a"], test["b"], test["classes"], test["nonzero"]) == ("lite0", "res&net", 7, 6)
    assert test["paired_classes"] == CLASSES[:7]
    assert test["p_a_greater"] == pytest.approx(wilcoxon(a, b, zero_method="wilcox", alternative="greater").pvalue)
    assert test["p_b_greater"] == pytest.approx(wilcoxon(a, b, zero_method="wilcox", alternative="less").pvalue)
    assert test["p_two_sided"] == pytest.approx(wilcoxon(a, b, zero_method="wilcox").pvalue)
    assert test["p_two_sided"] < 0.05
    assert test["verdict_code"] == "more" and test["verdict"] == "lite0 gives more summaries than res&net"
    vit = tests[frozenset(("lite0", "vit"))]
    assert vit["a"] == "vit" and vit["mean_a"] == pytest.approx(np.mean(COMMON["vit"]))  # the higher mean is a
    assert vit["verdict_code"] == "too_few_classes" and vit["verdict"] == "too few classes to conclude"


def test_the_threshold_is_where_an_exact_two_sided_p_can_pass():
    assert MIN_NONZERO == smallest_decisive_n(0.05) == 6 and smallest_decisive_n(0.01) == 8
    for n in (MIN_NONZERO - 1, MIN_NONZERO):  # every class differs in the same direction: the smallest p
        p = wilcoxon(np.arange(n) + 2.0, np.arange(n) * 1.0, zero_method="wilcox").pvalue
        assert (p < 0.05) == (n >= MIN_NONZERO)


def test_too_few_classes_even_with_a_one_sided_p_below_alpha():
    a, b = [3, 5, 6, 8, 9], [1, 2, 3, 4, 5]
    test = paired_test(a, b, "A", "B")
    assert test["p_a_greater"] == pytest.approx(1 / 32) and test["p_a_greater"] < 0.05
    assert test["verdict"] == "too few classes to conclude" and test["more"] is None
    six = paired_test(a + [7], b + [1], "A", "B")
    assert six["verdict_code"] == "more" and six["more"] == "A" and six["p_two_sided"] == pytest.approx(1 / 32)


def test_the_verdict_names_the_side_the_ranks_favour():
    a, b = [100] + [0] * 11, [0] + [1] * 11  # one big win for a (the higher mean), b ahead on 11 classes
    test = paired_test(a, b, "A", "B")
    assert test["a"] == "A" and test["mean_a"] > test["mean_b"] and test["p_b_greater"] < test["p_a_greater"]
    assert test["p_two_sided"] == pytest.approx(wilcoxon(a, b, zero_method="wilcox").pvalue) and test["p_two_sided"] < 0.05
    assert test["verdict"] == "B gives more summaries than A" and test["more"] == "B"


def test_all_differences_zero(tmp_path):
    same = [4, 2, 7, 1, 3, 3, 5]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        test = paired_test(same, same, "A", "B")
    assert test["verdict"] == "no difference on any class" and test["verdict_code"] == "no_difference"
    assert test["nonzero"] == 0 and test["p_two_sided"] is None and test["p_a_greater"] is None
    path = build_sweep(tmp_path / "s", ["a", "b", "c"], {"common": {"m1": [1, 2, 3], "m2": [1, 2, 3]}}, runs=False)
    result = compare(path)
    assert result["tests"][0]["verdict"] == "no difference on any class"
    assert "no difference on any class" in (path / "compare.html").read_text(encoding="utf-8")


def test_paired_test_without_classes():
    test = paired_test([], [], "A", "B")
    assert test["verdict_code"] == "no_classes" and test["classes"] == 0


# --------------------------------------------------------------------------- which rows


def test_common_rows_are_compared_and_own_rows_shown(main_sweep):
    path, result = main_sweep
    text = (path / "compare.html").read_text(encoding="utf-8")
    assert "same photos" in result["note"] and 'class="note" id="photos"' in text
    assert "different photos" not in text
    assert "common set (compared)" in text and "own set</th>" in text
    own_only = [t for t in result["tests"] if t["paired_classes"] != CLASSES[:7]]
    assert all(len(t["paired_classes"]) == 8 for t in own_only)  # lite0 vs vit: both finished every common class


def test_own_only_sweep_says_different_photos(tmp_path):
    path = build_sweep(tmp_path / "s", ["a", "b"], {"own": {"m1": [1, 2], "m2": [3, 0]}}, {"m1": 0.5, "m2": 0.6})
    result = compare(path)
    assert result["image_set"] == "own" and result["same_photos"] is False
    assert "different photos" in result["note"] and "no common set" in result["note"]
    text = (path / "compare.html").read_text(encoding="utf-8")
    assert re.search(r'<p class="reason" id="photos">Models compared on different photos', text)
    assert "own set (compared)" in text and "common set (compared)" not in text and "own set</th>" not in text
    assert "on DIFFERENT photos (own sets)" in compare_paragraph(result, path)


def test_failed_rows_are_excluded_and_listed(main_sweep):
    path, result = main_sweep
    failed = {(r["model"], r["class"], r["image_set"]) for r in result["failed"]}
    assert failed == {("res&net", CLASSES[7], "common"), ("vit", CLASSES[7], "own")}
    assert all(r["error"] == "RuntimeError: <b>boom</b>" and r["status"] == "failed" for r in result["failed"])
    text = (path / "compare.html").read_text(encoding="utf-8")
    section = text[text.index('<h2 id="failed">'):]
    assert "Failed or unfinished runs (2)" in section and section.count("RuntimeError: &lt;b&gt;boom&lt;/b&gt;") == 2
    assert "runs-common/m1/c7" in section and "<b>boom" not in text


def test_masks_only_sweep_has_nothing_to_test(tmp_path):
    path = build_sweep(tmp_path / "s", ["a", "b"], {"own": {"m1": [1, 2], "m2": [3, 0]}}, stages="masks")
    result = compare(path)
    assert "stage 1 only" in result["note"]
    assert result["tests"][0]["verdict_code"] == "no_classes"
    assert result["per_model"][0]["own"]["summaries_mean"] is None
    assert "no summary count" in (path / "compare.html").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- the page


def test_html_is_escaped_and_self_contained(main_sweep):
    path, _ = main_sweep
    text = (path / "compare.html").read_text(encoding="utf-8")
    assert EVIL_ESCAPED in text and "res&amp;net" in text
    assert "<img src=x" not in text and "onerror=alert(1)>" not in text
    assert "<script" not in text.lower() and "http://" not in text and "https://" not in text
    sources = re.findall(r'<img [^>]*src="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(?:href|src)="(?!data:)', text) and "url(" not in text
    assert text.count('class="plot"') == 3


def test_plots_are_written_and_inlined(main_sweep):
    path, result = main_sweep
    text = (path / "compare.html").read_text(encoding="utf-8")
    for name in ("summaries_per_class.png", "summaries_vs_top1.png", "summaries_per_kept_image.png"):
        assert name in result["plots"].values()
        data = (path / name).read_bytes()
        with Image.open(io.BytesIO(data)) as img:
            assert img.format == "PNG" and img.width >= 600
        assert base64.b64encode(data).decode("ascii") in text
    assert not list(path.glob("*.vsum-tmp")) and not list(path.glob(".*.vsum-tmp"))


def test_summaries_side_by_side(main_sweep):
    path, _ = main_sweep
    text = (path / "compare.html").read_text(encoding="utf-8")
    common = [v for counts in COMMON.values() for v in counts if v is not None]
    assert text.count('class="thumb"') == sum(min(v, MAX_THUMBS) for v in common)
    uri = re.search(r'<img class="thumb" src="data:image/png;base64,([^"]+)"', text).group(1)
    with Image.open(io.BytesIO(base64.b64decode(uri))) as img:
        assert img.size == (90, 30)  # smaller than the limits: kept as it is


def test_many_summaries_are_cut_with_a_count(tmp_path):
    path = build_sweep(tmp_path / "s", ["a"], {"common": {"m1": [MAX_THUMBS + 3], "m2": [1]}})
    Image.new("RGB", (2000, 400), (9, 9, 9)).save(path / "runs-common/m1/c0/summaries/summary_0_strip.png")
    compare(path)
    text = (path / "compare.html").read_text(encoding="utf-8")
    assert text.count('class="thumb"') == MAX_THUMBS + 1 and "+3 more" in text
    uri = re.search(r'<img class="thumb" src="data:image/png;base64,([^"]+)"', text).group(1)
    with Image.open(io.BytesIO(base64.b64decode(uri))) as img:
        assert img.height <= 160 and img.width <= 720


def test_missing_and_outside_images_are_notes(tmp_path):
    path = build_sweep(tmp_path / "s", ["a", "b"], {"common": {"m1": [2, 1], "m2": [1, 1]}})
    (tmp_path / "secret.png").write_bytes((path / "runs-common/m0/c0/summaries/summary_0_strip.png").read_bytes())
    result_file = path / "runs-common/m0/c0/result.json"
    result = json.loads(result_file.read_text(encoding="utf-8"))
    result["summaries"][0]["strip"] = "../../../../secret.png"
    result["summaries"][1]["strip"] = "summaries/missing.png"
    result_file.write_text(json.dumps(result), encoding="utf-8")
    (path / "runs-common/m1/c1/summaries/summary_0_strip.png").write_bytes(b"not a png")
    sweep = json.loads((path / "sweep.json").read_text(encoding="utf-8"))
    sweep["rows"][1]["run"] = "../.."  # m1 on class b: its run folder lies outside the sweep
    (path / "sweep.json").write_text(json.dumps(sweep), encoding="utf-8")
    compare(path)
    text = (path / "compare.html").read_text(encoding="utf-8")
    assert text.count("image missing or unreadable") == 3
    assert "its path leaves the sweep folder" in text
    assert text.count('class="thumb"') == 1  # m2 on class a


def test_dollar_and_backslash_labels_render(main_sweep):
    from matplotlib.text import Text

    path, _ = main_sweep
    assert (path / "summaries_per_class.png").stat().st_size > 1000
    for label in (DOLLAR, "$", "a\\b", "\\$", "$\\frac{$", "cost $5 and $6"):
        text = Text(text=plain_label(label))
        assert text._preprocess_math(text.get_text()) == (label, False)


def test_cli_entry(main_sweep, tmp_path, capsys):
    path, _ = main_sweep
    parser = argparse.ArgumentParser(prog="vsum")
    add_compare_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compare", str(path), "--out", str(tmp_path / "out" / "deeper")])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "Compared 3 models on 8 classes, on the same photos" in printed
    assert "lite0 vs res&net: lite0 gives more summaries than res&net" in printed and printed.count("\n") == 1
    assert {p.name for p in (tmp_path / "out" / "deeper").iterdir()} == {
        "compare.html", "compare.json", "summaries_per_class.png", "summaries_vs_top1.png",
        "summaries_per_kept_image.png"}


def test_importing_compare_is_cheap():
    code = ("import sys, vsum.compare\n"
            "heavy = {'matplotlib', 'scipy', 'numpy', 'PIL', 'torch'} & set(sys.modules)\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------- bad input


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(VsumError, match="no such folder"):
        compare(tmp_path / "absent")
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(VsumError, match="is not a folder"):
        compare(tmp_path / "file")
    with pytest.raises(VsumError, match="has no sweep.json"):
        compare(tmp_path)
    cases = [("{", "not valid JSON"), ("[]", "no 'rows' list"), ('{"rows": 3}', "no 'rows' list"),
             ('{"rows": [1]}', "row 1 is not an object"), ('{"rows": [{"model": "m"}]}', "row 1 has no text 'class'"),
             ('{"rows": [{"model": "m", "class": "c", "image_set": "x", "status": "ok"}]}', "image_set 'x'"),
             ('{"rows": [{"model": "m", "class": "c", "image_set": "own", "status": "ok", "summaries": "3"}]}',
              "'summaries' is '3', not a number")]
    for text, message in cases:
        (tmp_path / "sweep.json").write_text(text, encoding="utf-8")
        with pytest.raises(VsumError, match=re.escape(message)) as error:
            compare(tmp_path)
        assert "\n" not in str(error.value)


def test_one_model_or_nothing_finished(tmp_path):
    one = build_sweep(tmp_path / "one", ["a", "b"], {"own": {"m1": [1, 2]}}, runs=False)
    with pytest.raises(VsumError, match="^compare needs a sweep of at least 2 models; this one has 1$"):
        compare(one)
    none = build_sweep(tmp_path / "none", ["a"], {"own": {"m1": [None], "m2": [None]}}, runs=False)
    with pytest.raises(VsumError, match=r"no finished run in the sweep \(2 failed\)"):
        compare(none)
    assert not (none / "compare.html").exists()


def test_duplicate_rows_and_out_file(tmp_path):
    path = build_sweep(tmp_path / "s", ["a"], {"own": {"m1": [1], "m2": [2]}}, runs=False)
    (tmp_path / "taken").write_text("x", encoding="utf-8")
    with pytest.raises(VsumError, match="existing file, not a folder"):
        compare(path, out=tmp_path / "taken")
    sweep = json.loads((path / "sweep.json").read_text(encoding="utf-8"))
    sweep["rows"].append(sweep["rows"][0])
    (path / "sweep.json").write_text(json.dumps(sweep), encoding="utf-8")
    with pytest.raises(VsumError, match="two rows for model 'm1', class 'a', image set own"):
        read_sweep(path)


# --------------------------------------------------------------------------- headless Chromium

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--hide-scrollbars"]
C0_BLUE, C1_ORANGE = (31, 119, 180), (255, 127, 14)


def screenshot(binary: str, page: Path, out: Path, profile: Path) -> np.ndarray:
    cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}", "--window-size=1200,2000",
           page.as_uri()]
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("headless Chromium did not finish in 90 s")
    assert out.is_file(), f"no screenshot (rc {done.returncode}): {done.stderr[-2000:]}"
    with Image.open(out) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


def colour_pixels(rgb: np.ndarray, colour, tolerance: int = 12) -> int:
    return int(np.all(np.abs(rgb - np.array(colour)) <= tolerance, axis=2).sum())


def blank_plots(html: str) -> str:
    """The page with each plot replaced by a white PNG of its size."""
    def blank(match):
        with Image.open(io.BytesIO(base64.b64decode(match.group(2)))) as img:
            size = img.size
        buffer = io.BytesIO()
        Image.new("RGB", size, (255, 255, 255)).save(buffer, format="PNG")
        return match.group(1) + base64.b64encode(buffer.getvalue()).decode("ascii") + '"'

    return re.sub(r'(<img class="plot" src="data:image/png;base64,)([^"]+)"', blank, html)


def test_page_renders_in_headless_chromium(main_sweep, tmp_path):
    binary = require_chromium()
    path, _ = main_sweep
    html = (path / "compare.html").read_text(encoding="utf-8")
    blank_page = tmp_path / "blank.html"
    blank_page.write_text(blank_plots(html), encoding="utf-8")
    real = screenshot(binary, path / "compare.html", tmp_path / "real.png", tmp_path / "profile")
    without = screenshot(binary, blank_page, tmp_path / "blank.png", tmp_path / "profile")
    assert real.shape == without.shape == (2000, 1200, 3)
    assert (real.min(axis=2) < 200).mean() > 0.05, "the screenshot is (nearly) blank"
    for colour in (C0_BLUE, C1_ORANGE):  # the bars and points of the first two models
        assert colour_pixels(real, colour) > 2000, (colour, colour_pixels(real, colour))
        assert colour_pixels(without, colour) < 50, (colour, colour_pixels(without, colour))

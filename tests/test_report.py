"""``vsum.report.write_report``: a self-contained, escaped ``report.html``, checked in headless Chromium.

The run is built like tests/test_pipeline.py (synthetic bird photos, stage 1
faked by their silhouettes, a stub classifier) so the file stays fast and
needs no shared data.  One photo is renamed to an HTML-injection file name.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

import vsum.pipeline as pipeline
from vsum import VsumError
from vsum.report import render_report, write_report

from helpers import require_chromium
from pipeline_helpers import CONFIG, StubClassifier, fake_masks, write_birds

EVIL = "<img src=x onerror=alert(1)>.png"
EVIL_ESCAPED = "&lt;img src=x onerror=alert(1)&gt;.png"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    photos = tmp_path_factory.mktemp("photos")
    masks = write_birds(photos, 4, rename={1: EVIL})
    out = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "compute_masks", fake_masks(masks))
        run = pipeline.summarize(photos, StubClassifier(), target=0, out=out, config=CONFIG, progress=False)
    assert run.result["status"] == "ok" and run.summaries, "the test run must produce a summary"
    return out


def test_pipeline_writes_the_report(run_dir):
    result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    assert result["outputs"]["report"] == "report.html" and result["notes"] == []
    assert (run_dir / "report.html").is_file()
    assert not list(run_dir.glob("*.vsum-tmp"))


def test_html_is_escaped_and_self_contained(run_dir):
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    text = path.read_text(encoding="utf-8")
    assert EVIL_ESCAPED in text
    assert "<img src=x" not in text and "onerror=alert(1)>" not in text
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text.lower()
    sources = re.findall(r'<img [^>]*src="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(?:href|src)="(?!data:)', text)
    result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    assert text.count('class="summary-grid"') == len(result["summaries"]) >= 1
    assert text.count('class="summary-strip"') == len(result["summaries"])
    assert "<details>" in text and "Clusters before filtering" in text
    assert text.count('class="thumb"') == 2 * result["counts"]["images_kept"]
    assert path.stat().st_size < 3_000_000


def test_no_summaries_reason_is_prominent(tmp_path):
    result = {"status": "no_summaries", "reason": "only 1 of 2 images left <b>", "model": "m<x>",
              "target": 0, "target_name": "cat & \"dog\"", "image_side": 64, "counts": {"images": 2},
              "timings": {"masks": 0.1}, "summaries": [],
              "skipped": [{"image": "a'\"<b>.jpg", "reason": "misclassified <i>"}]}
    (tmp_path / "result.json").write_text(json.dumps(result), encoding="utf-8")
    text = render_report(tmp_path)
    assert 'class="reason"' in text and "only 1 of 2 images left &lt;b&gt;" in text
    assert "a&#x27;&quot;&lt;b&gt;.jpg" in text and "misclassified &lt;i&gt;" in text
    assert "cat &amp; &quot;dog&quot;" in text and "m&lt;x&gt;" in text
    assert "<b>\"" not in text and "<i>" not in text


def test_missing_run(tmp_path):
    with pytest.raises(VsumError, match="result.json"):
        write_report(tmp_path)


def test_report_failure_never_loses_the_run(tmp_path, monkeypatch):
    import vsum.report

    photos = tmp_path / "photos"
    masks = write_birds(photos, 2)

    def broken(run_dir):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pipeline, "compute_masks", fake_masks(masks))
    monkeypatch.setattr(vsum.report, "write_report", broken)
    with pytest.warns(RuntimeWarning, match="report.html"):
        run = pipeline.summarize(photos, StubClassifier(), target=0, out=tmp_path / "run", config=CONFIG,
                                 progress=False)
    result = json.loads((tmp_path / "run" / "result.json").read_text(encoding="utf-8"))
    assert result == json.loads(json.dumps(run.result))
    assert "report" not in result["outputs"] and "disk full" in result["notes"][0]
    assert not (tmp_path / "run" / "report.html").exists()


# --------------------------------------------------------------------------- headless Chromium

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]

PROBE = """<script>
window.addEventListener('load', function () {
  var grids = document.querySelectorAll('img.summary-grid');
  var visible = 0;
  grids.forEach(function (img) {
    var r = img.getBoundingClientRect();
    if (img.naturalWidth > 0 && r.width > 0 && r.height > 0) { visible += 1; }
  });
  document.body.setAttribute('data-summaries-visible', String(visible));
  document.body.setAttribute('data-injected', String(document.querySelectorAll('img[src="x"]').length));
  document.body.setAttribute('data-text-ok',
    String(document.body.textContent.includes('<img src=x onerror=alert(1)>.png')));
});
</script>
"""


def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    binary = require_chromium()
    report = write_report(run_dir)
    probe = run_dir / "report_test.html"
    html = report.read_text(encoding="utf-8")
    probe.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
           "--dump-dom", probe.as_uri()]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("headless Chromium did not finish in 90 s")
    body = re.search(r"<body([^>]*)>", done.stdout)
    assert body, f"no <body> in Chromium's DOM dump (rc {done.returncode}): {done.stderr[-2000:]}"
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    assert int(attrs.get("data-summaries-visible", "0")) >= 1, attrs
    assert attrs.get("data-injected") == "0", attrs
    assert attrs.get("data-text-ok") == "true", attrs

"""A self-contained ``report.html`` for one run directory of :func:`vsum.pipeline.summarize`.

:func:`write_report` reads ``result.json`` (plus ``config.json``,
``masks/metrics.csv`` and the PNGs that ``result.json`` lists: the summary
grids and strips, each image's mask PNGs, the per-cluster overviews) and
writes ``RUN/report.html``: one page that opens offline.  It shows only what
``result.json`` lists, never what else lies in the folder, and reads a listed
file only when it lies inside the run folder (:func:`inside_run`).  Every image is inlined as a ``data:image/png;base64`` URI,
the CSS is inline, and there is no script and no external reference.

Every string that comes from the run (file names, class names, reasons,
CSV fields, labels) is escaped with ``html.escape(..., quote=True)``, in
text and in attribute values alike.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from html import escape
from pathlib import Path

from PIL import Image

from .errors import VsumError
from .io import atomic_write_text

__all__ = ["THUMB_SIDE", "inside_run", "render_report", "write_report"]

THUMB_SIDE = 96
"""Longest side in pixels of the mask thumbnails."""

DEBUG_SIDE = 640
"""Longest side in pixels of the inlined debugging overviews (clusters before filtering, 256-colour PNG)."""

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:middle}
th{background:#f2f2f2}.num{text-align:right;font-variant-numeric:tabular-nums}
.reason{background:#fff3cd;border:2px solid #d39e00;padding:1em;font-size:1.15em;font-weight:bold}
.summary{margin-bottom:2em}.summary img{max-width:100%;display:block;margin:.3em 0}
img.thumb{width:56px;height:auto;display:inline-block;margin-right:2px}.thumbs{white-space:nowrap}
.muted{color:#777}.wide{overflow-x:auto}details{margin:1em 0}summary{cursor:pointer;font-weight:bold}
"""


def _e(value) -> str:
    """Escaped text of any value (None -> empty)."""
    return "" if value is None else escape(str(value), quote=True)


def _fmt_number(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return _e(value)


def _png_uri(path: Path, max_side: int | None = None, palette: bool = False) -> str | None:
    """``data:image/png;base64,...`` of a PNG file; None when unreadable.

    ``max_side`` downscales an image whose longest side is larger;
    ``palette`` re-encodes an RGB image with 256 adaptive colours (about 3x
    smaller for photographs).  Without either the file's bytes are inlined.
    """
    try:
        data = path.read_bytes()
        if max_side is not None or palette:
            with Image.open(io.BytesIO(data)) as img:
                img = img.copy()
            if max_side is not None and max(img.size) > max_side:
                img.thumbnail((max_side, max_side), Image.BILINEAR)
            if palette and img.mode == "RGB":
                img = img.quantize(256)
            buffer = io.BytesIO()
            img.save(buffer, format="PNG", optimize=True)
            data = buffer.getvalue()
    except (OSError, ValueError):
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def inside_run(run: Path, rel) -> Path | None:
    """``run / rel`` when that file lies inside the run folder (links resolved), else None.

    ``result.json`` is data: a path in it that is absolute, climbs out with
    ``..`` or passes through a link to elsewhere is never read.
    """
    if not isinstance(rel, str) or not rel:
        return None
    try:
        root = run.resolve()
        path = (run / rel).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    return path if path.is_relative_to(root) and path != root else None


def _img(run: Path, rel, alt: str, cls: str, max_side: int | None = None, palette: bool = False) -> str:
    """An inlined ``<img>`` of the run's file ``rel`` (a path relative to ``run``, as result.json lists it)."""
    path = inside_run(run, rel)
    if path is None:
        return f'<span class="muted">(image not shown, its path leaves the run folder: {_e(alt)})</span>'
    uri = _png_uri(path, max_side, palette)
    if uri is None:
        return f'<span class="muted">(missing image: {_e(alt)})</span>'
    return f'<img class="{_e(cls)}" src="{uri}" alt="{_e(alt)}">'


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A table; ``header`` is escaped here, the cells must already be HTML."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, ValueError, csv.Error):
        return [], []
    return (rows[0], rows[1:]) if rows else ([], [])


# --------------------------------------------------------------------------- sections


def _title(result: dict, config: dict | None) -> str:
    target = result.get("target")
    name = result.get("target_name")
    target_text = "each image's top-1 class" if target is None else f"{name} ({target})" if name else str(target)
    counts = result.get("counts", {})
    images = counts.get("images", "?")
    kept = counts.get("images_kept", "?")
    n_summaries = len(result.get("summaries") or [])
    config_hash = (config or {}).get("hash") or result.get("config_hash")
    return (f"<h1>Visual summaries: {_e(target_text)}</h1>"
            f"<p>Model <b>{_e(result.get('model'))}</b>, target class <b>{_e(target_text)}</b>, "
            f"{_e(images)} images ({_e(kept)} kept), {n_summaries} summaries, "
            f"model grid {_e(result.get('image_side'))} px"
            + (f", configuration <code>{_e(config_hash)}</code>" if config_hash else "") + ".</p>")


def _summaries(result: dict, run: Path) -> str:
    entries = result.get("summaries") or []
    parts = ["<h2>Summaries</h2>"]
    if not entries:
        reason = result.get("reason") or "no reason recorded"
        parts.append(f'<p class="reason" id="no-summaries">No summaries: {_e(reason)}</p>')
        return "".join(parts)
    for entry in entries:
        k = entry.get("summary")
        members = entry.get("members") or []
        rows = [[_e(m.get("image")) + (" <b>(exemplar)</b>" if m.get("exemplar") else ""),
                 _e(", ".join(str(v) for v in m.get("box") or [])), f'<span class="num">{_fmt_number(m.get("similarity"))}</span>',
                 f'<span class="num">{_fmt_number(m.get("ssim"))}</span>'] for m in members]
        parts.append(
            f'<section class="summary"><h3>Summary {_e(k)} (cluster {_e(entry.get("cluster"))}, score '
            f'{_fmt_number(entry.get("score"))}, {len(members)} members from {_e(entry.get("images"))} images)</h3>'
            + _img(run, entry.get("png"), f"summary {k}", "summary-grid")
            + _img(run, entry.get("strip"), f"summary {k} aligned crops", "summary-strip")
            + _table(["image", "box (x1, y1, x2, y2), model-grid px", "similarity", "SSIM (median)"], rows)
            + "</section>")
    return "".join(parts)


def _timings(result: dict) -> str:
    timings = result.get("timings") or {}
    reused = set(result.get("reused") or [])
    rows = [[_e(k) + (' <span class="muted">(cached)</span>' if k in reused else ""),
             f'<span class="num">{_fmt_number(v, 2)}</span>'] for k, v in timings.items()]
    counts = result.get("counts") or {}
    count_rows = [[_e(k), f'<span class="num">{_e(v)}</span>'] for k, v in counts.items()]
    return ("<h2>Stages</h2><div style=\"display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start\">"
            + _table(["stage", "seconds"], rows) + _table(["count", "value"], count_rows) + "</div>")


def _skipped(result: dict) -> str:
    skipped = result.get("skipped") or []
    if not skipped:
        return "<h2>Skipped images</h2><p>None.</p>"
    rows = [[_e(s.get("image")), _e(s.get("reason"))] for s in skipped]
    return f"<h2>Skipped images ({len(skipped)})</h2>" + _table(["image", "reason"], rows)


def _metrics(run: Path, result: dict) -> str:
    """``masks/metrics.csv`` with the mask thumbnails ``result.json`` lists for each image (``images``)."""
    header, rows = _read_csv(run / "masks" / "metrics.csv")
    if not header:
        return "<h2>Per-image metrics</h2><p class=\"muted\">masks/metrics.csv not found.</p>"
    listed = [item for item in result.get("images") or [] if isinstance(item, dict)]
    by_position = len(listed) == len(rows)
    html_rows = []
    for k, row in enumerate(rows):
        item = listed[k] if by_position else {}
        masks = item.get("masks") if isinstance(item.get("masks"), dict) else {}
        thumbs = [_img(run, masks[kind], f"{item.get('image')} {kind} mask", "thumb", THUMB_SIDE)
                  for kind in ("smooth", "sharp") if kind in masks]
        cell = f'<span class="thumbs">{"".join(thumbs)}</span>' if thumbs else '<span class="muted">-</span>'
        html_rows.append([cell] + [_e(c) for c in row])
    return (f"<h2>Per-image metrics ({len(rows)})</h2><div class=\"wide\">"
            + _table(["masks (smooth, sharp)", *header], html_rows) + "</div>")


def _debug(run: Path, result: dict) -> str:
    """The per-cluster overviews before filtering that ``result.json`` lists (``debug``)."""
    listed = [rel for rel in result.get("debug") or [] if isinstance(rel, str)]
    if not listed:
        return ""
    figures = "".join(f"<figure><figcaption>{_e(Path(rel).stem)}</figcaption>"
                      f"{_img(run, rel, Path(rel).stem, 'debug', DEBUG_SIDE, palette=True)}</figure>" for rel in listed)
    return (f"<details><summary>Clusters before filtering ({len(listed)}, debugging overviews)</summary>"
            f"{figures}</details>")


# --------------------------------------------------------------------------- entry points


def _parts(run: Path, result: dict) -> str:
    """Part consistency of the summaries (``vsum eval-parts``), when ``result.json`` lists ``parts.json``."""
    path = inside_run(run, (result.get("outputs") or {}).get("parts"))
    data = _read_json(path) if path is not None else None
    if not isinstance(data, dict) or not isinstance(data.get("summaries"), list):
        return ""
    rows = [[_e(s.get("summary")), _e(s.get("dominant") or "none"), _fmt_number(s.get("consistency"), 2),
             _fmt_number(s.get("chance"), 2), _fmt_number(s.get("p_value"), 3),
             f'{_e(s.get("counted"))} of {_e(s.get("members"))}'] for s in data["summaries"]]
    summary = data.get("class") or {}
    return (f"<h2>Part consistency</h2><p>Keypoints from {_e(data.get('keypoints'))}; mean consistency "
            f"{_fmt_number(summary.get('mean_consistency'), 2)} against {_fmt_number(summary.get('mean_chance'), 2)} "
            f"by chance; dominant parts: {_e(', '.join(summary.get('dominant_parts') or []) or 'none')}.</p>"
            + _table(["summary", "dominant part", "consistency", "chance", "p", "members counted"], rows))


def render_report(run_dir: str | Path) -> str:
    """The HTML text of the report of ``run_dir`` (see :func:`write_report`).

    Raises
    ------
    VsumError
        ``run_dir`` has no readable ``result.json``.
    """
    run = Path(run_dir)
    result = _read_json(run / "result.json")
    if not isinstance(result, dict):
        raise VsumError(f"{run} has no readable result.json: not a finished run directory")
    config = _read_json(run / "config.json")
    target = result.get("target_name") or result.get("target")
    title = f"vsum report: {target if target is not None else 'top-1 classes'} ({result.get('model')})"
    body = "".join([_title(result, config), _parts(run, result), _summaries(result, run), _timings(result),
                    _skipped(result), _metrics(run, result), _debug(run, result)])
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def write_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` atomically and return its path.

    One self-contained page: title (model, target class, counts), every
    summary (grid PNG, aligned-crop strip, members with image, box in
    model-grid pixels, similarity to the exemplar and median SSIM), stage
    timings and counts, skipped images with reasons, ``masks/metrics.csv``
    with mask thumbnails (longest side :data:`THUMB_SIDE` px) and, collapsed,
    the per-cluster overviews before filtering.  When there are no summaries
    the reason is shown at the top of the summaries section.

    Parameters
    ----------
    run_dir : path-like
        A run directory written by :func:`vsum.pipeline.summarize`.

    Returns
    -------
    Path
        ``run_dir/report.html``.

    Raises
    ------
    VsumError
        ``run_dir`` has no readable ``result.json``.
    """
    path = Path(run_dir) / "report.html"
    atomic_write_text(path, render_report(run_dir))
    return path

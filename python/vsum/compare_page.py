"""The plots and the self-contained ``compare.html`` of :func:`vsum.compare.compare`.

The plots are drawn with matplotlib's object interface on the Agg canvas (no pyplot, no global state) in
matplotlib's default style, whatever the user's matplotlibrc says, and returned as PNG bytes.  Every label that
comes from the sweep goes through :func:`plain_label`, so that a ``$`` in a class name never starts mathtext.

The page is built like ``report.html`` (:mod:`vsum.report`): inline CSS, every image inlined as a
``data:image/png;base64`` URI, no script and no external reference; every string from the sweep (class and
model labels, errors, paths) is escaped with ``html.escape(..., quote=True)``.  The summary thumbnails are read
from the run folders that the sweep rows name, and only when the run folder lies inside the sweep folder and
the PNG inside the run folder (:func:`vsum.report.inside_run`); a missing or unreadable one shows as a note.
"""

from __future__ import annotations

import base64
import io
import json
from html import escape
from pathlib import Path

from PIL import Image

from .report import inside_run

__all__ = ["MAX_THUMBS", "THUMB_HEIGHT", "grouped_bars", "plain_label", "render_page", "render_plots",
           "scatter_top1", "thumbnail_uri"]

DPI = 100
BARS_SIZE = (11.0, 4.6)
"""Figure size in inches of the grouped bar plots (1100 x 460 px at :data:`DPI`)."""
SCATTER_SIZE = (7.0, 4.6)
"""Figure size in inches of summaries against top-1."""
LABEL_CHARS = 28
"""Longer labels are cut in the plots (the tables show them whole)."""
THUMB_HEIGHT = 160
"""Largest height in pixels of a summary thumbnail."""
THUMB_WIDTH = 720
"""Largest width in pixels of a summary thumbnail (a long strip is shrunk further)."""
MAX_THUMBS = 12
"""Summaries shown per model and class; the rest are counted ("+N more")."""
MAX_PIXELS = 50_000_000
"""Summary PNGs with more pixels are not decoded (shown as a note)."""

_FINISHED = ("ok", "no_summaries")
"""Row statuses of finished runs (as :data:`vsum.compare.FINISHED`; this module does not import that one)."""

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:middle}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
.reason{background:#fff3cd;border:2px solid #d39e00;padding:1em;font-size:1.15em;font-weight:bold}
.note{background:#eef6ee;border:1px solid #8bb38b;padding:.8em}
img.plot{max-width:100%;display:block;margin:.5em 0}
.models{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
.model{border:1px solid #ddd;padding:.4em;max-width:100%}.model .label{font-weight:bold;margin-bottom:.3em}
img.thumb{max-height:160px;max-width:100%;display:block;margin:.2em 0}
.muted{color:#777}.wide{overflow-x:auto}.significant{font-weight:bold}
"""


def _e(value) -> str:
    """Escaped text of any value (None -> empty)."""
    return "" if value is None else escape(str(value), quote=True)


def _num(value, digits: int = 2) -> str:
    """A table cell's number: an int as it is, a float with ``digits`` decimals, None as n/a."""
    if value is None:
        return '<span class="muted">n/a</span>'
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def _p(value) -> str:
    return '<span class="muted">n/a</span>' if value is None else f"{value:.3g}"


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------- plots


def plain_label(text) -> str:
    """``text`` as matplotlib shows it literally: every ``$`` escaped as ``\\$``.

    Outside mathtext matplotlib draws backslashes as they are, and with no unescaped ``$`` left it parses no
    mathtext; it then turns each ``\\$`` back into ``$``.  So ``$x^2$``, ``a\\b`` or a lone ``$`` show as
    written (escaping the backslashes too would show them doubled).
    """
    return str(text).replace("$", r"\$")


def _cut(text, limit: int = LABEL_CHARS) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _label(text) -> str:
    """A sweep label for a plot: cut to :data:`LABEL_CHARS`, then :func:`plain_label`."""
    return plain_label(_cut(text))


def _draw(size, draw) -> bytes:
    """PNG bytes of a new figure of ``size`` inches on which ``draw(figure)`` drew, in matplotlib's default style."""
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.style.context("default"):
        figure = Figure(figsize=size, dpi=DPI, layout="constrained")
        FigureCanvasAgg(figure)
        draw(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, plain_label(text), ha="center", va="center", transform=ax.transAxes, color="#777")


def grouped_bars(classes: list[str], models: list[str], values: dict, ylabel: str, title: str) -> bytes:
    """Grouped bars: one group per class, one bar per model (colour ``C<k>`` of the k-th model); PNG bytes.

    ``values`` maps ``(model, class)`` to a number; a missing or None value draws no bar.
    """
    import numpy as np

    def draw(figure):
        ax = figure.add_subplot()
        x = np.arange(len(classes))
        width = 0.8 / max(1, len(models))
        for k, model in enumerate(models):
            shown = [(i, values.get((model, cls))) for i, cls in enumerate(classes)]
            shown = [(i, v) for i, v in shown if v is not None]
            ax.bar([x[i] + (k - (len(models) - 1) / 2) * width for i, _ in shown], [v for _, v in shown], width,
                   label=_label(model), color=f"C{k % 10}")
        ax.set_xticks(x, [_label(c) for c in classes], rotation=40 if len(classes) <= 30 else 90, ha="right",
                      rotation_mode="anchor", fontsize=9 if len(classes) <= 30 else 6)
        ax.set_xlim(-0.6, len(classes) - 0.4)
        ax.set_ylabel(ylabel)
        ax.set_title(plain_label(title))
        if not any(v is not None for v in values.values()):
            _no_data(ax, "no numbers to show")
        else:
            ax.legend(fontsize=8, ncols=min(len(models), 4))

    return _draw(BARS_SIZE, draw)


def scatter_top1(points: list[tuple[str, float | None, float | None]], title: str) -> bytes:
    """Mean summaries per class against top-1 accuracy, one labelled point per model; PNG bytes.

    ``points`` holds ``(model, top1 in [0, 1], mean)`` in model order (the k-th point has colour ``C<k>``);
    a point with a None is not drawn.
    """
    def draw(figure):
        ax = figure.add_subplot()
        drawn = 0
        for k, (model, top1, mean) in enumerate(points):
            if top1 is None or mean is None:
                continue
            ax.scatter([100 * top1], [mean], s=70, color=f"C{k % 10}", zorder=3)
            ax.annotate(_label(model), (100 * top1, mean), xytext=(7, 5), textcoords="offset points", fontsize=9)
            drawn += 1
        ax.set_xlabel("top-1 accuracy over the sweep (%)")
        ax.set_ylabel("mean summaries per class")
        ax.set_title(plain_label(title))
        ax.grid(alpha=0.3)
        ax.margins(0.25)
        if not drawn:
            _no_data(ax, "no model has both a top-1 accuracy and a summary count")

    return _draw(SCATTER_SIZE, draw)


def _set_words(result: dict) -> str:
    return "common photos" if result["same_photos"] else "each model's own photos"


def render_plots(result: dict) -> dict[str, bytes]:
    """The PNG bytes of the plots of a compare result (keys of :data:`vsum.compare.PLOTS`)."""
    image_set, models, classes = result["image_set"], result["models"], result["classes"]
    records = [r for r in result["per_class"] if r["image_set"] == image_set]
    counts = {(r["model"], r["class"]): r["summaries"] for r in records}
    per_kept = {(r["model"], r["class"]): r["summaries_per_kept_image"] for r in records}
    points = [(m["model"], m["top1"], (m[image_set] or {}).get("summaries_mean")) for m in result["per_model"]]
    words = _set_words(result)
    names = {r["class"]: r.get("class_name") for r in result["per_class"] if r.get("class_name")}
    ticks = {c: names.get(c) or c for c in classes}  # the class name, as the model knows it, when it has one
    if len(set(ticks.values())) < len(ticks):
        ticks = {c: f"{names[c]} ({c})" if names.get(c) else c for c in classes}
    counts = {(m, ticks[c]): v for (m, c), v in counts.items()}
    per_kept = {(m, ticks[c]): v for (m, c), v in per_kept.items()}
    classes = [ticks[c] for c in classes]
    return {"summaries_per_class": grouped_bars(classes, models, counts, "summaries",
                                                f"Summaries per class ({words})"),
            "summaries_vs_top1": scatter_top1(points, f"Mean summaries per class ({words}) vs top-1"),
            "summaries_per_kept_image": grouped_bars(classes, models, per_kept, "summaries per kept photo",
                                                     f"Summaries per kept photo ({words})")}


# --------------------------------------------------------------------------- thumbnails


def thumbnail_uri(path: Path | None, height: int = THUMB_HEIGHT, width: int = THUMB_WIDTH) -> str | None:
    """A PNG data URI of the image file ``path`` shrunk to fit ``width`` x ``height``; None when unreadable."""
    if path is None or not path.is_file():
        return None
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                return None
            img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
        img.thumbnail((width, height), Image.Resampling.BILINEAR)
        if img.mode == "RGB":
            img = img.quantize(256)
        buffer = io.BytesIO()
        img.save(buffer, format="PNG", optimize=True)
    except Exception:  # noqa: BLE001 - Pillow raises OSError, ValueError, SyntaxError, ... on damaged files
        return None
    return _png_uri(buffer.getvalue())


def _result_summaries(run: Path) -> list | None:
    """The ``summaries`` list of ``run/result.json``; None when it is missing or unreadable."""
    try:
        result = json.loads((run / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    summaries = result.get("summaries") if isinstance(result, dict) else None
    return [s for s in summaries if isinstance(s, dict)] if isinstance(summaries, list) else None


def _summary_img(run: Path, entry: dict) -> str:
    """The thumbnail of one summary: its strip, else its grid; a note when neither can be shown."""
    k = entry.get("summary")
    caption = f"summary {k}, {entry.get('images')} photos"
    for key in ("strip", "png"):
        uri = thumbnail_uri(inside_run(run, entry.get(key)))
        if uri is not None:
            return f'<img class="thumb" src="{uri}" alt="{_e(caption)}" title="{_e(caption)}">'
    return f'<div class="muted">(summary {_e(k)}: image missing or unreadable)</div>'


def _thumbnails(sweep: Path, record: dict | None) -> str:
    """The summaries of one model on one class, or a note on why they are not shown."""
    if record is None:
        return '<div class="muted">(no run in the sweep)</div>'
    if record["status"] not in _FINISHED:
        error = f": {record.get('error')}" if record.get("error") else ""
        return f'<div class="muted">({_e(record["status"])}{_e(error)})</div>'
    if record["summaries"] is None:
        return '<div class="muted">(no summary count: stage 1 only)</div>'
    run = inside_run(sweep, record.get("run"))
    if run is None or not run.is_dir():
        return '<div class="muted">(run folder missing, or its path leaves the sweep folder)</div>'
    entries = _result_summaries(run)
    if entries is None:
        return '<div class="muted">(result.json missing or unreadable)</div>'
    if not entries:
        return '<div class="muted">(no summaries)</div>'
    more = len(entries) - MAX_THUMBS
    return "".join(_summary_img(run, e) for e in entries[:MAX_THUMBS]) + (
        f'<div class="muted">+{more} more</div>' if more > 0 else "")


# --------------------------------------------------------------------------- page sections


def _table(header: list[str], rows: list[list[str]], header_html: str = "") -> str:
    """A table; ``header`` is escaped here, the cells must already be HTML (``<td>`` included)."""
    head = header_html + "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f'<div class="wide"><table><thead>{head}</thead><tbody>{body}</tbody></table></div>'


def _td(html: str, num: bool = False) -> str:
    return f'<td class="num">{html}</td>' if num else f"<td>{html}</td>"


def _header(result: dict) -> str:
    models = ", ".join(f"<b>{_e(m)}</b>" for m in result["models"])
    root = f' (photos from <code>{_e(result["sweep_root"])}</code>)' if result.get("sweep_root") else ""
    note_class = "note" if result["same_photos"] else "reason"
    return (f"<h1>vsum compare: {len(result['models'])} models on {len(result['classes'])} classes</h1>"
            f"<p>Sweep <code>{_e(result['sweep'])}</code>{root}, stages {_e(result.get('sweep_stages'))}; "
            f"models {models}.</p>"
            f'<p class="{note_class}" id="photos">{_e(result["note"])}</p>')


def _verdict_cell(test: dict, min_nonzero: int) -> str:
    text = _e(test["verdict"])
    if test["verdict_code"] == "too_few_classes":
        text += (f' <span class="muted">({test["nonzero"]} classes differ; at least {min_nonzero} are needed '
                 f"for a two-sided p below 0.05)</span>")
    return _td(f'<span class="significant">{text}</span>' if test["verdict_code"] == "more" else text)


def _tests(result: dict) -> str:
    spec = result["test"]
    rows = [[_td(_e(t["a"])), _td(_e(t["b"])), _td(str(t["classes"]), True),
             _td(f'{t["a_more"]} / {t["b_more"]} / {t["equal"]}', True), _td(_num(t["mean_a"]), True),
             _td(_num(t["mean_b"]), True), _td(_p(t["p_a_greater"]), True), _td(_p(t["p_b_greater"]), True),
             _td(_p(t["p_two_sided"]), True), _verdict_cell(t, spec["min_nonzero"])] for t in result["tests"]]
    return ("<h2>Paired tests</h2>"
            f"<p>For each pair of models: the Wilcoxon signed-rank test of the summaries per class, over the "
            f"classes where both runs finished ({_e(_set_words(result))}); A is the model of the higher mean. "
            f"Classes with equal counts are left out of the test. The verdict uses the two-sided p at "
            f"{spec['alpha']}; with fewer than {spec['min_nonzero']} classes that differ no p can be that "
            f"small: too few classes to conclude.</p>"
            + _table(["model A", "model B", "classes", "A more / B more / equal", "mean A", "mean B",
                      "p (A more)", "p (B more)", "p (two-sided)", "verdict"], rows))


def _set_cells(stats: dict | None) -> list[str]:
    if stats is None:
        return [_td('<span class="muted">-</span>')] * 3
    return [_td(f'{stats["classes"]}', True), _td(_num(stats["summaries_mean"]), True),
            _td(_num(stats["summaries_median"]), True)]


def _sets(result: dict) -> list[str]:
    """The image sets shown: the compared one, then the other one when the sweep has it."""
    other = "own" if result["image_set"] == "common" else "common"
    has_other = any(r["image_set"] == other for r in result["per_class"])
    return [result["image_set"], other] if has_other else [result["image_set"]]


def _group_header(lead: int, sets: list[str], width: int, trail: int) -> str:
    """The first header row of a table with a group of ``width`` columns per image set."""
    groups = "".join(f'<th colspan="{width}">{_e(s)} set{" (compared)" if k == 0 else ""}</th>'
                     for k, s in enumerate(sets))
    return "<tr>" + "<th></th>" * lead + groups + "<th></th>" * trail + "</tr>"


def _models(result: dict) -> str:
    sets = _sets(result)
    rows = []
    for m in result["per_model"]:
        top1 = "n/a" if m["top1"] is None else f'{100 * m["top1"]:.1f} %'
        unfinished = sum((m[s] or {}).get("unfinished", 0) for s in sets)
        rows.append([_td(_e(m["model"])), _td(top1, True)] + [c for s in sets for c in _set_cells(m[s])]
                    + [_td(str(unfinished), True)])
    header = ["model", "top-1 (sweep)"] + ["classes", "mean summaries", "median summaries"] * len(sets) + [
        "failed or unfinished"]
    return ("<h2>Models</h2>"
            + _table(header, rows, _group_header(2, sets, 3, 1)))


def _plots(result: dict, plots: dict[str, bytes]) -> str:
    alts = {"summaries_per_class": "summaries per class, one bar per model",
            "summaries_vs_top1": "mean summaries per class against top-1 accuracy",
            "summaries_per_kept_image": "summaries per kept photo, one bar per model"}
    images = "".join(f'<img class="plot" src="{_png_uri(data)}" alt="{_e(alts.get(name, name))}">'
                     for name, data in plots.items())
    return ("<h2>Plots</h2>" + images + '<p class="muted">A class without a bar for a model: its run failed, '
            "is unfinished or has no summary count (see the tables).</p>")


def _class_title(result: dict, cls: str) -> str:
    """The class label, escaped, with the models' name for it (when they have one) in grey."""
    name = next((r["class_name"] for r in result["per_class"] if r["class"] == cls and r.get("class_name")), None)
    return _e(cls) + (f' <span class="muted">{_e(name)}</span>' if name and name != cls else "")


def _classes(result: dict) -> str:
    sets = _sets(result)
    index = {(r["model"], r["class"], r["image_set"]): r for r in result["per_class"]}
    keys = ("summaries", "summaries_5plus", "summaries_merged", "summaries_per_kept_image", "images_kept")
    rows = []
    for cls in result["classes"]:
        title = _class_title(result, cls)
        for k, model in enumerate(result["models"]):
            first = [f'<td rowspan="{len(result["models"])}">{title}</td>'] if k == 0 else []
            cells = []
            for s in sets:
                record = index.get((model, cls, s))
                cells += [_td(_num(record[key], 3) if record else "-", True) for key in keys]
            own = index.get((model, cls, "own"))
            top1 = "n/a" if own is None or own["top1"] is None else f'{100 * own["top1"]:.1f} %'
            rows.append(first + [_td(_e(model))] + cells + [_td(top1, True)])
    header = ["class", "model"] + ["summaries", "with 5+ photos", "merged", "per kept photo", "photos kept"] * len(
        sets) + ["top-1 on the class"]
    return "<h2>Per class</h2>" + _table(header, rows, _group_header(2, sets, 5, 1))


def _gallery(result: dict, sweep: Path) -> str:
    image_set = result["image_set"]
    index = {(r["model"], r["class"]): r for r in result["per_class"] if r["image_set"] == image_set}
    parts = [f"<h2>Summaries side by side ({_e(_set_words(result))})</h2>"]
    for cls in result["classes"]:
        models = []
        for model in result["models"]:
            record = index.get((model, cls))
            count = "" if record is None or record["summaries"] is None else f' ({record["summaries"]} summaries)'
            models.append(f'<div class="model"><div class="label">{_e(model)}{_e(count)}</div>'
                          f"{_thumbnails(sweep, record)}</div>")
        parts.append(f"<h3>{_class_title(result, cls)}</h3><div class=\"models\">{''.join(models)}</div>")
    return "".join(parts)


def _failed(result: dict) -> str:
    failed = result["failed"]
    if not failed:
        return '<h2 id="failed">Failed or unfinished runs</h2><p>None.</p>'
    rows = [[_td(_e(r[key])) for key in ("model", "class", "image_set", "status", "error", "run")] for r in failed]
    return (f'<h2 id="failed">Failed or unfinished runs ({len(failed)})</h2>'
            '<p>Left out of every statistic above.</p>'
            + _table(["model", "class", "image set", "status", "error", "run"], rows))


def render_page(result: dict, sweep_dir, plots: dict[str, bytes]) -> str:
    """The HTML text of compare.html.

    Parameters
    ----------
    result : dict
        :func:`vsum.compare.compare_result`.
    sweep_dir : path-like
        The sweep folder (the run folders of the thumbnails are read from it).
    plots : dict of str to bytes
        :func:`render_plots`.
    """
    title = f"vsum compare: {', '.join(result['models'])}"
    body = "".join([_header(result), _tests(result), _models(result), _plots(result, plots), _classes(result),
                    _gallery(result, Path(sweep_dir)), _failed(result)])
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")

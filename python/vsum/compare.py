"""``vsum compare SWEEP``: the summaries per class of several models on the same classes, with paired tests.

A sweep folder (written by ``vsum sweep``) holds ``sweep.json``: one row per model, class and image set
(``own``: the model's own correctly classified photos of the class; ``common``: only the photos of the class
that every model classifies correctly), each pointing to its run folder.  :func:`compare` reads it and writes,
into the output folder (the sweep folder by default):

- ``compare.json``: every number the page shows (:func:`compare` returns the same dictionary);
- ``compare.html``: one self-contained page (:mod:`vsum.compare_page`);
- ``summaries_per_class.png``, ``summaries_vs_top1.png``, ``summaries_per_kept_image.png``: its plots.

Which rows.  The models are compared on the ``common`` rows when the sweep has finished ones (the same photos
for every model); the counts on each model's own photos are shown next to them.  Without them the ``own`` rows
are compared and the page says plainly that the models saw different photos.  Rows whose status is neither
``ok`` nor ``no_summaries`` (``failed``, ``pending``) are left out of every statistic and listed with their error.

The test.  For each pair of models, over the classes with a finished row for both, the Wilcoxon signed-rank
test of the per-class summary counts: ``scipy.stats.wilcoxon(a, b, zero_method="wilcox", alternative=...)``
(classes with equal counts are dropped; scipy's default ``method="auto"``).  ``a`` is the model of the higher mean
over those classes.  compare.json gives both one-sided p-values (``p_a_greater``: a gives more summaries than b;
``p_b_greater``) and the two-sided one.  The verdict uses the two-sided p at :data:`ALPHA`, since the direction is
picked after looking at the data.  With n classes that differ, the smallest exact two-sided p is 2 / 2**n, below
0.05 only from n = 6 (:data:`MIN_NONZERO`): with fewer the verdict is "too few classes to conclude", whatever p.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from ._version import __version__
from .errors import VsumError

__all__ = ["ALPHA", "MIN_NONZERO", "PLOTS", "Sweep", "add_compare_parser", "cmd_compare", "compare",
           "compare_paragraph", "compare_result", "failed_rows", "model_stats", "paired_test", "read_sweep",
           "smallest_decisive_n"]

IMAGE_SETS = ("common", "own")
"""The image sets of a sweep, the fair one first."""

FINISHED = ("ok", "no_summaries")
"""Row statuses whose numbers count; every other status (``failed``, ``pending``) is listed, not counted."""

METRIC = "summaries"
"""The per-class count the paired tests compare."""

SHOWN = ("summaries", "summaries_5plus", "summaries_merged", "summaries_per_kept_image", "images_kept")
"""The per-class numbers of the page's table, for each image set."""

NUMBERS = ("class_index", "images", "images_kept", "skipped_misclassified", "skipped_unreadable", "top1",
           "proposals_valid", "proposals_kept", "clusters", "summaries", "summaries_5plus", "summaries_merged",
           "mean_members", "summaries_per_kept_image", "mean_drop", "mean_area", "seconds_masks",
           "seconds_proposals", "seconds_descriptors", "seconds_pairs", "seconds_summaries", "seconds_total")
"""The numeric fields of a sweep row (a number or null)."""

ALPHA = 0.05
"""Significance level of the verdicts (two-sided p)."""

PLOTS = {"summaries_per_class": "summaries_per_class.png", "summaries_vs_top1": "summaries_vs_top1.png",
         "summaries_per_kept_image": "summaries_per_kept_image.png"}
"""Plot name -> its file in the output folder."""


def smallest_decisive_n(alpha: float = ALPHA) -> int:
    """Fewest non-zero differences whose exact two-sided Wilcoxon p can be below ``alpha``.

    With n non-zero differences the most extreme outcome (all of one sign) has the two-sided p
    ``2 / 2**n``; the answer is the smallest n where that is below ``alpha`` (6 for 0.05).
    """
    n = 1
    while 2.0 / 2**n >= alpha:
        n += 1
    return n


MIN_NONZERO = smallest_decisive_n(ALPHA)
"""Below this many classes that differ, a pair's verdict is "too few classes to conclude"."""


@dataclass(frozen=True)
class Sweep:
    """A sweep folder's ``sweep.json``, checked.

    ``path`` is the sweep folder; ``meta`` holds sweep.json's ``vsum``, ``root``, ``stages`` and ``images``
    (None when absent); ``models`` and ``classes`` the labels sweep.json lists, then any other a row names;
    ``rows`` the rows, every field of :data:`NUMBERS` a finite number or None; ``per_model`` sweep.json's
    ``per_model`` entries (the sweep's top-1 per model and image set).
    """

    path: Path
    meta: dict
    models: list[str]
    classes: list[str]
    rows: list[dict]
    per_model: list[dict] = field(default_factory=list)
    _index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_index", {(r["model"], r["class"], r["image_set"]): r for r in self.rows})

    def row(self, model: str, cls: str, image_set: str) -> dict | None:
        """The row of ``model``, ``cls`` and ``image_set``; None when the sweep has none."""
        return self._index.get((model, cls, image_set))


# --------------------------------------------------------------------------- reading


def _shown(path) -> str:
    from .io import display_text

    return display_text(str(path))


def _load_json(path: Path) -> object:
    """The JSON in ``path``; VsumError with one line when it is missing, unreadable or not JSON."""
    if not path.is_file():
        raise VsumError(f"{_shown(path.parent)} has no sweep.json: not a sweep folder (vsum sweep writes one)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise VsumError(f"{_shown(path)} cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise VsumError(f"{_shown(path)} is not valid JSON ({exc})") from None


def _number(value, where: str):
    """A row's number: int or finite float kept, non-finite -> None; anything else but None is an error."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VsumError(f"{where} is {str(value)[:40]!r}, not a number")
    return value if isinstance(value, int) or math.isfinite(value) else None


def _check_row(k: int, row, where: str) -> dict:
    """Row ``k`` (1-based) of sweep.json, checked: labels as text, numbers as numbers or None."""
    if not isinstance(row, dict):
        raise VsumError(f"{where}: row {k} is not an object")
    for key in ("model", "class", "image_set", "status"):
        if not isinstance(row.get(key), str):
            raise VsumError(f"{where}: row {k} has no text '{key}'")
    if row["image_set"] not in IMAGE_SETS:
        raise VsumError(f"{where}: row {k} has image_set {row['image_set'][:40]!r}; expected 'own' or 'common'")
    out = dict(row)
    for key in NUMBERS:
        out[key] = _number(row.get(key), f"{where}: row {k} '{key}'")
    for key in ("error", "run", "class_name"):
        out[key] = None if row.get(key) is None else str(row[key])
    return out


def _labels(listed, rows: list[dict], key: str, where: str) -> list[str]:
    """Labels in sweep.json's ``listed`` order (dict entries by ``name``, else ``model``), then the rows' others."""
    if listed is not None and not isinstance(listed, list):
        raise VsumError(f"{where}: '{key}s' is not a list")
    labels = []
    for entry in listed or []:
        label = (entry.get("name") or entry.get("model")) if isinstance(entry, dict) else entry
        if isinstance(label, str) and label not in labels:
            labels.append(label)
    labels += [r for r in dict.fromkeys(row[key] for row in rows) if r not in labels]
    return labels


def read_sweep(sweep_dir) -> Sweep:
    """Read and check ``sweep_dir/sweep.json``.

    Parameters
    ----------
    sweep_dir : path-like
        A folder written by ``vsum sweep``.

    Returns
    -------
    Sweep

    Raises
    ------
    VsumError
        ``sweep_dir`` is not a folder, has no readable sweep.json, or sweep.json is not JSON, has no ``rows``
        list, a row lacks a label, has an unknown image set or a non-number in a numeric field, or two rows
        share model, class and image set.
    """
    path = Path(sweep_dir)
    if not path.exists():
        raise VsumError(f"{_shown(path)}: no such folder (give the folder vsum sweep wrote)")
    if not path.is_dir():
        raise VsumError(f"{_shown(path)} is not a folder (give the folder vsum sweep wrote)")
    where = f"{_shown(path / 'sweep.json')}"
    data = _load_json(path / "sweep.json")
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise VsumError(f"{where} is not a sweep description: no 'rows' list")
    rows = [_check_row(k, row, where) for k, row in enumerate(data["rows"], 1)]
    seen = set()
    for row in rows:
        key = (row["model"], row["class"], row["image_set"])
        if key in seen:
            raise VsumError(f"{where}: two rows for model {key[0][:40]!r}, class {key[1][:40]!r}, image set {key[2]}")
        seen.add(key)
    per_model = data.get("per_model")
    meta = {key: data.get(key) for key in ("vsum", "root", "stages", "images")}
    return Sweep(path=path, meta=meta, models=_labels(data.get("models"), rows, "model", where),
                 classes=_labels(data.get("classes"), rows, "class", where), rows=rows,
                 per_model=[e for e in per_model if isinstance(e, dict)] if isinstance(per_model, list) else [])


# --------------------------------------------------------------------------- statistics


def _finished(row: dict | None) -> bool:
    return row is not None and row["status"] in FINISHED


def _mean(values: list) -> float | None:
    return float(statistics.fmean(values)) if values else None


def _median(values: list) -> float | None:
    return float(statistics.median(values)) if values else None


def _values(sweep: Sweep, model: str, image_set: str, key: str) -> list:
    """``key`` of the model's finished rows of ``image_set`` where it is a number, in class order."""
    rows = (sweep.row(model, cls, image_set) for cls in sweep.classes)
    return [r[key] for r in rows if _finished(r) and r[key] is not None]


def model_stats(sweep: Sweep, model: str, image_set: str) -> dict | None:
    """Counts and per-class means of one model on one image set; None when the sweep has no such row.

    ``classes`` is the number of finished rows with a summary count (the mean's and median's n).
    """
    rows = [r for r in (sweep.row(model, cls, image_set) for cls in sweep.classes) if r is not None]
    if not rows:
        return None
    finished = sum(_finished(r) for r in rows)
    counts = _values(sweep, model, image_set, METRIC)
    kept = _values(sweep, model, image_set, "images_kept")
    return {"rows": len(rows), "finished": finished, "unfinished": len(rows) - finished, "classes": len(counts),
            "summaries_mean": _mean(counts), "summaries_median": _median(counts),
            "summaries_5plus_mean": _mean(_values(sweep, model, image_set, "summaries_5plus")),
            "summaries_merged_mean": _mean(_values(sweep, model, image_set, "summaries_merged")),
            "summaries_per_kept_image_mean": _mean(_values(sweep, model, image_set, "summaries_per_kept_image")),
            "images_kept_total": sum(kept) if kept else None}


def _top1(sweep: Sweep, model: str) -> tuple[float | None, str | None]:
    """The model's top-1 over the sweep and where it comes from.

    sweep.json's ``per_model`` entry of the ``own`` set when it has one (``"per_model"``); otherwise the mean of
    the own rows' per-class top-1 weighted by each row's ``images`` (``"rows"``); otherwise None.
    """
    for entry in sweep.per_model:
        top1 = entry.get("top1")
        if model in (entry.get("model"), entry.get("name")) and entry.get("image_set", "own") == "own" and isinstance(top1, (int, float)) \
                and not isinstance(top1, bool) and math.isfinite(top1):
            return float(top1), "per_model"
    rows = [sweep.row(model, cls, "own") for cls in sweep.classes]
    pairs = [(r["top1"], r["images"]) for r in rows if r is not None and r["top1"] is not None and r["images"]]
    if not pairs:
        return None, None
    return sum(t * n for t, n in pairs) / sum(n for _, n in pairs), "rows"


def _wilcoxon_p(a: list, b: list, alternative: str) -> float | None:
    from scipy.stats import wilcoxon

    p = float(wilcoxon(a, b, zero_method="wilcox", alternative=alternative).pvalue)
    return p if math.isfinite(p) else None


def _verdict(test: dict, alpha: float) -> tuple[str, str, str | None]:
    """``(verdict, verdict_code, more)`` of a paired test whose counts and p-values are filled in."""
    a, b = test["a"], test["b"]
    if test["classes"] == 0:
        return "no class finished for both models", "no_classes", None
    if test["nonzero"] == 0:
        return "no difference on any class", "no_difference", None
    if test["nonzero"] < smallest_decisive_n(alpha):
        return "too few classes to conclude", "too_few_classes", None
    if test["p_two_sided"] is None or test["p_two_sided"] >= alpha:
        return "no significant difference", "not_significant", None
    more, less = (a, b) if test["p_a_greater"] <= test["p_b_greater"] else (b, a)
    return f"{more} gives more summaries than {less}", "more", more


def paired_test(a_values, b_values, a: str = "a", b: str = "b", alpha: float = ALPHA) -> dict:
    """The Wilcoxon signed-rank test of two models' summary counts on the same classes.

    Parameters
    ----------
    a_values, b_values : sequence of numbers
        The counts of each model, one per class, in the same class order.
    a, b : str
        The model labels.  They are swapped (with their values) when b's mean is the higher.
    alpha : float
        Significance level of the verdict (two-sided p).

    Returns
    -------
    dict
        ``a``, ``b``; ``classes`` (pairs), ``nonzero`` (classes that differ), ``a_more``, ``b_more``, ``equal``;
        ``mean_a``, ``mean_b``, ``median_a``, ``median_b``; ``p_a_greater``, ``p_b_greater``, ``p_two_sided``
        (None when nothing differs); ``verdict`` (a sentence), ``verdict_code`` (``more``, ``not_significant``,
        ``too_few_classes``, ``no_difference``, ``no_classes``) and ``more`` (the model that gives more summaries
        when significant, else None).
    """
    a_values, b_values = [float(v) for v in a_values], [float(v) for v in b_values]
    if len(a_values) != len(b_values):
        raise ValueError(f"paired_test: {len(a_values)} values of {a} but {len(b_values)} of {b}")
    if _mean(b_values) is not None and _mean(b_values) > _mean(a_values):
        a, b, a_values, b_values = b, a, b_values, a_values
    diffs = [x - y for x, y in zip(a_values, b_values)]
    test = {"a": a, "b": b, "classes": len(diffs), "nonzero": sum(d != 0 for d in diffs),
            "a_more": sum(d > 0 for d in diffs), "b_more": sum(d < 0 for d in diffs), "equal": sum(d == 0 for d in diffs),
            "mean_a": _mean(a_values), "mean_b": _mean(b_values), "median_a": _median(a_values),
            "median_b": _median(b_values), "p_a_greater": None, "p_b_greater": None, "p_two_sided": None}
    if test["nonzero"]:
        test["p_a_greater"] = _wilcoxon_p(a_values, b_values, "greater")
        test["p_b_greater"] = _wilcoxon_p(a_values, b_values, "less")
        test["p_two_sided"] = _wilcoxon_p(a_values, b_values, "two-sided")
    test["verdict"], test["verdict_code"], test["more"] = _verdict(test, alpha)
    return test


def pair_tests(sweep: Sweep, image_set: str) -> list[dict]:
    """:func:`paired_test` of every pair of models over the classes with a summary count of ``image_set`` for both."""
    tests = []
    for a, b in combinations(sweep.models, 2):
        paired = [(cls, sweep.row(a, cls, image_set), sweep.row(b, cls, image_set)) for cls in sweep.classes]
        paired = [(cls, ra[METRIC], rb[METRIC]) for cls, ra, rb in paired
                  if _finished(ra) and _finished(rb) and ra[METRIC] is not None and rb[METRIC] is not None]
        test = paired_test([x for _, x, _ in paired], [y for _, _, y in paired], a, b)
        tests.append({**test, "paired_classes": [cls for cls, _, _ in paired]})
    return tests


def per_class_table(sweep: Sweep) -> list[dict]:
    """One record per row of the sweep, by class, model and image set: the :data:`SHOWN` numbers (None unless
    the row finished), ``status``, ``top1`` (the model's top-1 on the class's photos), ``images``, ``run``
    and ``error``."""
    records = []
    for cls in sweep.classes:
        for model in sweep.models:
            for image_set in IMAGE_SETS:
                row = sweep.row(model, cls, image_set)
                if row is None:
                    continue
                numbers = {key: row[key] if _finished(row) else None for key in SHOWN}
                records.append({"class": cls, "model": model, "image_set": image_set, "status": row["status"],
                                **numbers, "top1": row["top1"], "images": row["images"], "run": row["run"],
                                "error": row["error"], "class_name": row.get("class_name")})
    return records


def failed_rows(sweep: Sweep) -> list[dict]:
    """The rows that did not finish (status other than ``ok`` / ``no_summaries``), with their error and run."""
    return [{key: row[key] for key in ("model", "class", "image_set", "status", "error", "run")}
            for row in sweep.rows if not _finished(row)]


def _choice(sweep: Sweep) -> tuple[str, str]:
    """The image set compared and the sentence that says which photos the models saw."""
    finished = {row["image_set"] for row in sweep.rows if _finished(row)}
    if "common" in finished:
        return "common", ("Models compared on the same photos: for each class, only the photos that every model "
                          "classifies correctly (the common set). Each model's own correctly classified photos "
                          "(the own set) are shown next to them.")
    had = any(row["image_set"] == "common" for row in sweep.rows)
    why = "its common-set runs did not finish" if had else "the sweep has no common set"
    return "own", (f"Models compared on different photos: each on its own correctly classified photos of the "
                   f"class ({why}), so their counts are not directly comparable.")


def compare_result(sweep: Sweep) -> dict:
    """The content of compare.json for ``sweep`` (no file is read or written but sweep.json's)."""
    image_set, note = _choice(sweep)
    if not any(_finished(r) and r[METRIC] is not None for r in sweep.rows if r["image_set"] == image_set):
        note += " No finished run has a summary count" + (
            " (the sweep ran stage 1 only): there are no summaries to compare." if sweep.meta["stages"] == "masks"
            else ": there are no summaries to compare.")
    models = []
    for model in sweep.models:
        top1, source = _top1(sweep, model)
        models.append({"model": model, "top1": top1, "top1_source": source,
                       **{s: model_stats(sweep, model, s) for s in IMAGE_SETS}})
    return {"vsum": __version__, "sweep": str(sweep.path.resolve()), **{f"sweep_{k}": v for k, v in sweep.meta.items()},
            "image_set": image_set, "same_photos": image_set == "common", "note": note,
            "models": list(sweep.models), "classes": list(sweep.classes), "metric": METRIC,
            "test": {"name": "Wilcoxon signed-rank, paired by class",
                     "call": "scipy.stats.wilcoxon(a, b, zero_method='wilcox', alternative=...)",
                     "alpha": ALPHA, "min_nonzero": MIN_NONZERO, "verdict_uses": "p_two_sided"},
            "per_model": models, "tests": pair_tests(sweep, image_set), "per_class": per_class_table(sweep),
            "failed": failed_rows(sweep), "plots": dict(PLOTS), "html": "compare.html"}


# --------------------------------------------------------------------------- entry points


def _out_folder(out, sweep: Path) -> Path:
    """The output folder (``sweep`` when ``out`` is None), created; VsumError when unusable."""
    if out is None:
        return sweep
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise VsumError(f"--out {_shown(folder)} is an existing file, not a folder; give a folder name")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VsumError(f"--out {_shown(folder)}: cannot create the folder ({exc.strerror or exc})") from None
    return folder


def compare(sweep_dir, out=None) -> dict:
    """Compare the models of a sweep; write compare.json, compare.html and the plots.

    Parameters
    ----------
    sweep_dir : path-like
        A folder written by ``vsum sweep`` (sweep.json, its run folders).
    out : path-like, optional
        Output folder, created when missing; default ``sweep_dir``.

    Returns
    -------
    dict
        The content of compare.json: ``image_set`` (compared), ``same_photos``, ``note``, ``models``,
        ``classes``, ``per_model``, ``tests``, ``per_class``, ``failed``, ``plots`` (file names in ``out``), ...

    Raises
    ------
    VsumError
        Bad input (see :func:`read_sweep`), fewer than 2 models, no finished row, or an unusable ``out``.
    """
    from .compare_page import render_page, render_plots
    from .io import atomic_write_bytes, atomic_write_json, atomic_write_text

    sweep = read_sweep(sweep_dir)
    if len(sweep.models) < 2:
        raise VsumError(f"compare needs a sweep of at least 2 models; this one has {len(sweep.models)}")
    if not any(_finished(row) for row in sweep.rows):
        statuses = ", ".join(f"{n} {s}" for s, n in Counter(row["status"] for row in sweep.rows).items()) or "no rows"
        raise VsumError(f"{_shown(sweep.path)}: no finished run in the sweep ({statuses}); nothing to compare")
    folder = _out_folder(out, sweep.path)
    result = compare_result(sweep)
    plots = render_plots(result)
    for name, data in plots.items():
        atomic_write_bytes(folder / PLOTS[name], data)
    atomic_write_text(folder / "compare.html", render_page(result, sweep.path, plots))
    atomic_write_json(folder / "compare.json", result)
    return result


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def compare_paragraph(result: dict, out) -> str:
    """The paragraph ``vsum compare`` prints: what was compared, the means, the verdicts, where the files are."""
    compared = "the same photos (common set)" if result["same_photos"] else "DIFFERENT photos (own sets)"
    means = "; ".join(f"{m['model']} {_fmt((m[result['image_set']] or {}).get('summaries_mean'), '.2f')}"
                      for m in result["per_model"])
    text = (f"Compared {len(result['models'])} models on {len(result['classes'])} classes, on {compared}. "
            f"Mean summaries per class: {means}.")
    for test in result["tests"]:
        text += (f" {test['a']} vs {test['b']}: {test['verdict']} (two-sided p {_fmt(test['p_two_sided'], '.3g')}, "
                 f"{test['nonzero']} of {test['classes']} classes differ).")
    if result["failed"]:
        text += f" {len(result['failed'])} runs failed or are unfinished (listed on the page)."
    folder = _shown(out)
    return text + f" Wrote {folder}/compare.html, {folder}/compare.json and {len(result['plots'])} plots."


def cmd_compare(args) -> int:
    """``vsum compare SWEEP [--out DIR]``: run :func:`compare`, print :func:`compare_paragraph`; returns 0."""
    result = compare(args.sweep, args.out)
    print(compare_paragraph(result, args.out if args.out is not None else args.sweep))
    return 0


def add_compare_parser(subparsers):
    """Register the ``compare`` sub-command on an argparse sub-parsers object; returns its parser."""
    parser = subparsers.add_parser(
        "compare", help="compare the models of a sweep: summaries per class, paired tests, one page",
        description="Read a sweep folder (vsum sweep) and write compare.html (tables, plots, each model's "
                    "summaries side by side per class), compare.json (every number) and the plots as PNG files. "
                    "Models are compared on the photos every model classifies correctly when the sweep has them, "
                    "with a paired Wilcoxon signed-rank test of the summaries per class for each pair of models.")
    parser.add_argument("sweep", help="sweep folder (written by vsum sweep)")
    parser.add_argument("--out", "-o", default=None, help="output folder (default: the sweep folder)")
    parser.set_defaults(func=cmd_compare)
    return parser

"""What a sweep runs on: model specifications, the classes of ROOT and their images, class names to indices.

ROOT is either one folder per class (the folder's name is the class: an
index, a WordNet id such as ``n02088364`` or a class name such as
``beagle``), or a flat folder of images with a labels file (``image,class``
rows, as ImageNet's validation labels come).  Everything here is checked
before a sweep starts any work: an empty ROOT, a labels file that cannot be
parsed or names missing files, or a ``--classes`` entry that is not in ROOT
ends the sweep with one clear :class:`vsum.errors.VsumError`.  A class that
a model does not know is not an error here: its tasks are recorded as
failed with the reason, and the others run.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .errors import VsumError
from .io import display_text, list_images

__all__ = ["ModelSpec", "SweepClass", "discover_classes", "imagenet_wnids", "parse_models", "resolve_class"]

_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")


@dataclass(frozen=True)
class ModelSpec:
    """One model of a sweep: ``[LABEL=]NAME[@WEIGHTS]``.

    Attributes
    ----------
    label : str
        Names the model in the sweep's folders and tables (default: ``name``);
        letters, digits and ``_.+-``.
    name : str
        A registry name (``vsum models``).
    weights : str or None
        A local weights file (``torch.load(..., weights_only=True)``), or None
        for the name's default weights.
    """

    label: str
    name: str
    weights: str | None = None

    def to_dict(self) -> dict:
        return {"model": self.label, "name": self.name, "weights": self.weights}


def parse_models(text: str | Sequence[str]) -> list[ModelSpec]:
    """``"efficientnet_lite0,b=resnet50@/w/resnet50.pth"`` -> model specs, labels unique.

    Raises
    ------
    VsumError
        An empty list, an empty entry, a label outside ``[A-Za-z0-9_.+-]``
        (it names folders) or a label given twice.
    """
    entries = [e.strip() for e in (text.split(",") if isinstance(text, str) else text)]
    if not entries or entries == [""]:
        raise VsumError("--models: give at least one model, e.g. --models efficientnet_lite0,efficientnet_lite2")
    specs = []
    for entry in entries:
        if not entry:
            raise VsumError(f"--models {display_text(str(text))}: an empty entry (two commas in a row?)")
        label, _, rest = entry.rpartition("=") if "=" in entry.split("@", 1)[0] else ("", "", entry)
        name, _, weights = rest.partition("@")
        name, label = name.strip(), (label.strip() or name.strip())
        if not name:
            raise VsumError(f"--models: '{display_text(entry)}' names no model")
        if not _LABEL.fullmatch(label):
            raise VsumError(f"--models: the label '{display_text(label)}' must be 1-64 letters, digits or _.+- "
                            "(it names the model's folders); give LABEL=NAME")
        specs.append(ModelSpec(label, name, weights.strip() or None))
    labels = [s.label for s in specs]
    if dupes := sorted({x for x in labels if labels.count(x) > 1}):
        raise VsumError(f"--models: the label {dupes[0]} is given twice; name the second one LABEL={dupes[0]}...")
    return specs


@dataclass(frozen=True)
class SweepClass:
    """One class of ROOT: its label and its image files (sorted; at most ``max_images``)."""

    label: str
    files: tuple[Path, ...]
    available: int = 0  # image files found before --max-images


def _check_class_label(label: str, where: str) -> str:
    text = label.strip()
    if not text or text in (".", "..") or "/" in text or "\\" in text or "\x00" in text:
        raise VsumError(f"{where}: '{display_text(label)}' cannot name a class folder")
    return text


def _read_labels(root: Path, labels: Path) -> dict[str, list[Path]]:
    """``image,class`` rows (a header row ``image,class`` is optional) -> files per class, in file order."""
    try:
        text = labels.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise VsumError(f"--labels {display_text(str(labels))}: cannot be read ({exc})") from None
    by_class: dict[str, list[Path]] = {}
    rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    if rows and [c.strip().lower() for c in rows[0]] == ["image", "class"]:
        rows = rows[1:]
    if not rows:
        raise VsumError(f"--labels {display_text(str(labels))} holds no 'image,class' rows")
    missing = []
    for n, row in enumerate(rows, 1):
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise VsumError(f"--labels {display_text(str(labels))}, row {n}: expected 'image,class'; "
                            f"got {display_text(','.join(row))!r}")
        path = root / row[0].strip()
        if not path.is_file():
            missing.append(row[0].strip())
            continue
        label = _check_class_label(row[1], f"--labels row {n}")
        by_class.setdefault(label, []).append(path)
    if missing:
        raise VsumError(f"--labels names {len(missing)} file(s) not in {display_text(str(root))}, "
                        f"e.g. {display_text(missing[0])}")
    return by_class


def discover_classes(root: str | Path, labels: str | Path | None = None, classes: Sequence[str] | None = None,
                     max_images: int | None = None) -> list[SweepClass]:
    """The classes of ROOT with their image files, in sorted order of their labels.

    Parameters
    ----------
    root : path-like
        One sub-folder per class, or (with ``labels``) a flat folder of images.
    labels : path-like, optional
        CSV of ``image,class`` rows; ``image`` relative to ``root``.
    classes : sequence of str, optional
        Only these classes (labels as in ROOT), in this order.
    max_images : int, optional
        The first N files of each class in sorted order.

    Raises
    ------
    VsumError
        ROOT missing or empty, a malformed labels file, a ``classes`` entry
        that ROOT does not have.  A class folder without images is kept (its
        tasks fail with that reason).
    """
    root = Path(root)
    if not root.is_dir():
        raise VsumError(f"ROOT {display_text(str(root))} is not a folder")
    if max_images is not None and max_images < 1:
        raise VsumError(f"--max-images must be >= 1; got {max_images}")
    if labels is not None:
        files = {k: sorted(v, key=lambda p: p.name) for k, v in _read_labels(root, Path(labels)).items()}
    else:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            found = "images but no class folders (give --labels FILE.csv)" if list_images(root) else "nothing"
            raise VsumError(f"ROOT {display_text(str(root))} holds {found}: expected one folder per class")
        files = {p.name: list_images(p) if any(p.iterdir()) else [] for p in folders}
    if classes is not None:
        unknown = [c for c in classes if c not in files]
        if unknown:
            raise VsumError(f"--classes: {display_text(unknown[0])} is not a class of {display_text(str(root))} "
                            f"(it has {len(files)}: {display_text(', '.join(sorted(files)[:5]))}"
                            f"{', ...' if len(files) > 5 else ''})")
        order = list(dict.fromkeys(classes))
    else:
        order = sorted(files)
    return [SweepClass(label, tuple(files[label][:max_images]), len(files[label])) for label in order]


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids in class-index order (sorted ids)."""
    text = resources.files("vsum").joinpath("data/imagenet_wnids.txt").read_text(encoding="ascii")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def _normal(name: str) -> str:
    return re.sub(r"[\s_-]+", " ", name.strip().lower())


def resolve_class(label: str, class_names: Sequence[str]) -> int:
    """A class label -> the model's class index.

    Tried in order: a class index (``"207"``), an ImageNet WordNet id
    (``"n02099601"``, for a model of 1000 classes), a class name compared
    without case and with ``_``/``-``/spaces alike (``"golden_retriever"``),
    and a name after a WordNet id (``"n02099601_golden_retriever"``, the
    naming of ImageNet sample files).

    Raises
    ------
    VsumError
        The label is none of these for this model (its message names the label).
    """
    text = label.strip()
    n = len(class_names)
    if re.fullmatch(r"[0-9]+", text):
        if int(text) < n:
            return int(text)
        raise VsumError(f"class '{display_text(label)}': index {int(text)} is outside the model's {n} classes")
    wnid, _, _rest = text.partition("_")
    if re.fullmatch(r"n[0-9]{8}", wnid) and n == 1000:
        wnids = imagenet_wnids()
        if wnid in wnids:
            return wnids.index(wnid)
    wanted = _normal(text)
    for i, name in enumerate(class_names):
        if _normal(name) == wanted:
            return i
    raise VsumError(f"class '{display_text(label)}' is neither a class index, an ImageNet WordNet id nor a class "
                    f"name of this model ({n} classes)")

"""Image discovery, robust decoding, atomic file writes and output naming.

Every reader here turns a file into an ``(H, W, 3) uint8`` RGB array or raises
:class:`ImageSkip` with a short reason that a run records and moves past: a
run never dies on one bad image.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

#: Images with more pixels than this are skipped (decompression-bomb guard).
MAX_PIXELS = 200_000_000
#: Images smaller than this on either side are skipped: nothing to explain.
MIN_SIDE = 8


class ImageSkip(Exception):
    """An image that cannot be used; ``str(exc)`` is the reason recorded in outputs."""


@dataclass(frozen=True)
class ImageRecord:
    """A successfully decoded image.

    Attributes
    ----------
    path : Path
        Source file.
    rgb : ndarray, shape (H, W, 3), uint8
        The decoded picture in RGB order.
    note : str
        What was converted on the way (``"grayscale->rgb"``, ``"rgba->rgb"``,
        ``"16-bit->8-bit"``, ...), empty when nothing was.
    """

    path: Path
    rgb: np.ndarray
    note: str = ""


def list_images(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Image files of a folder (sorted by name), a single file, or a list of paths.

    Files are selected by suffix (case-insensitive) so that an unreadable file
    with an image suffix is reported as skipped rather than silently ignored.

    Raises
    ------
    FileNotFoundError
        When a folder or file does not exist.
    """
    if isinstance(source, (str, os.PathLike)):
        root = Path(source)
        if not root.exists():
            raise FileNotFoundError(f"no such file or folder: {root}")
        if root.is_file():
            return [root]
        return sorted(
            (p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
            key=lambda p: p.name,
        )
    paths = [Path(p) for p in source]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"no such image file: {missing[0]}")
    return paths


def _to_rgb_uint8(img: Image.Image) -> tuple[np.ndarray, list[str]]:
    """Convert any PIL mode to ``(H, W, 3) uint8`` RGB; returns the conversions made."""
    notes: list[str] = []
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        notes.append("16-bit->8-bit" if top > 255 else "int->8-bit")
        return np.repeat(arr[..., None], 3, axis=2), notes + ["grayscale->rgb"]
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = np.nanmin(arr), np.nanmax(arr)
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        arr = np.clip(np.nan_to_num(arr - lo) * scale + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2), ["float->8-bit", "grayscale->rgb"]
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
        notes.append("alpha composited on white")
    elif mode in ("L", "1"):
        notes.append("grayscale->rgb")
    elif mode == "CMYK":
        notes.append("cmyk->rgb")
    elif mode not in ("RGB",):
        notes.append(f"{mode.lower()}->rgb")
    return np.asarray(img.convert("RGB"), dtype=np.uint8), notes


def read_image(path: str | os.PathLike, max_side: int | None = None) -> ImageRecord:
    """Decode one image file into RGB uint8.

    Parameters
    ----------
    path : path-like
        The file.
    max_side : int, optional
        When given, images whose longer side exceeds ``4 * max_side`` are
        downscaled (aspect kept) so that it equals ``4 * max_side``; the
        methods here never look at more detail than the model input, and this
        keeps huge photos from costing gigabytes.

    Returns
    -------
    ImageRecord

    Raises
    ------
    ImageSkip
        Zero-byte, truncated, corrupt, unsupported, too small (either side
        < ``MIN_SIDE``) or too large (> ``MAX_PIXELS`` pixels) files, with the
        reason as the message.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageSkip(f"unreadable file ({exc.strerror or exc})") from None
    if size == 0:
        raise ImageSkip("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise ImageSkip(f"image too large ({width}x{height} > {MAX_PIXELS} pixels)")
                if min(width, height) < MIN_SIDE:
                    raise ImageSkip(f"image too small ({width}x{height}; both sides must be >= {MIN_SIDE} px)")
                if max_side is not None and img.format == "JPEG":
                    img.draft("RGB", (4 * max_side, 4 * max_side))
                img.load()
                if getattr(img, "n_frames", 1) > 1:
                    img.seek(0)
                rgb, notes = _to_rgb_uint8(img)
    except ImageSkip:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageSkip(f"not a readable image ({type(exc).__name__})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageSkip(f"corrupt or truncated image ({exc})") from None
    if max_side is not None and max(rgb.shape[:2]) > 4 * max_side:
        rgb = downscale_longest_side(rgb, 4 * max_side)
        notes.append("downscaled")
    return ImageRecord(path=path, rgb=np.ascontiguousarray(rgb), note=", ".join(notes))


def downscale_longest_side(rgb: np.ndarray, longest: int) -> np.ndarray:
    """Area-downscale ``(H, W, 3) uint8`` so that ``max(H, W) == longest``."""
    h, w = rgb.shape[:2]
    scale = longest / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX), dtype=np.uint8)


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """File stems, made unique by appending the suffix where two files share one.

    ``[a.jpg, a.png, b.jpg]`` gives ``["a_jpg", "a_png", "b"]``; the names of
    the per-image outputs (mask PNGs, report rows) of a run.
    """
    stems = [Path(p).stem for p in paths]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[stem] = counts.get(stem, 0) + 1
    out, seen = [], set()
    for path, stem in zip(paths, stems):
        name = stem if counts[stem] == 1 else f"{stem}_{Path(path).suffix.lstrip('.').lower()}"
        while name in seen:
            name += "_"
        seen.add(name)
        out.append(name)
    return out


def json_float(value, digits: int | None = None) -> float | None:
    """A number for JSON output: ``float(value)`` (rounded to ``digits`` when given), None when not finite."""
    v = float(value)
    if not math.isfinite(v):
        return None
    return v if digits is None else round(v, digits)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()  # what open() would give a new file (mkstemp alone gives 0o600)


#: Suffix of the temporary files of :func:`atomic_open`; :func:`remove_temporaries` removes only these.
TEMP_SUFFIX = ".vsum-tmp"


def fsync_dir(folder: str | os.PathLike) -> None:
    """``fsync`` a folder so that a rename inside it survives a power loss (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike):
    """A binary file handle on a temporary file beside ``path``, renamed into place on success.

    The temporary file is ``.<name>.<random>.vsum-tmp`` in ``path``'s folder.
    On success its data are flushed and ``fsync``-ed before the rename, and
    the folder is ``fsync``-ed after it, so that after a crash or power loss
    ``path`` holds either the old or the whole new content.  On any exception
    the temporary file is removed and ``path`` is left as it was.  The file
    gets the permissions ``open()`` would give it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def remove_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files :func:`atomic_open` left under ``folder`` (a killed writer's); returns them.

    Only files named ``.*.vsum-tmp`` are touched.  Call it only while no
    other process writes under ``folder`` (:class:`vsum.runlock.RunLock`).
    """
    removed = []
    for path in Path(folder).rglob(f".*{TEMP_SUFFIX}"):
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    with atomic_open(path) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Pretty-printed JSON written atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save a ``(H, W)`` or ``(H, W, 3)`` uint8 array as PNG, atomically."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def atomic_write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Write a CSV file (header + rows) atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())

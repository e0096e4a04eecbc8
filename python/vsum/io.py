"""Image discovery, robust decoding, atomic file writes and output naming.

Every reader here turns a file into an ``(H, W, 3) uint8`` RGB array or raises
:class:`ImageSkip` with a short reason that a run records and moves past: a
run never dies on one bad image.  File names written into text outputs go
through :func:`display_name` (valid UTF-8 whatever the file system holds) and
per-image output files are named by :func:`unique_stems` (distinct on
case-insensitive file systems).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import re
import stat
import tempfile
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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
        What was converted on the way (``"grayscale->rgb"``, ``"alpha composited
        on white"``, ``"16-bit->8-bit"``, ``"exif orientation 6 applied"``,
        ``"first of 3 frames"``, ``"downscaled"``, ...), empty when nothing was.
    """

    path: Path
    rgb: np.ndarray
    note: str = ""


def _is_candidate(path: Path) -> bool:
    """An entry of a folder that counts as an input: an image suffix and not a folder.

    Broken symbolic links and other non-regular files (FIFOs, devices) with an
    image suffix are candidates, so that a run lists them as skipped with the
    reason instead of dropping them silently.
    """
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.is_dir()


def list_images(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Image files of a folder (sorted by name), a single file, or a list of paths.

    Files are selected by suffix (case-insensitive) so that an unreadable file
    with an image suffix is reported as skipped rather than silently ignored;
    this includes broken symbolic links and other entries that are not regular
    files (:func:`read_image` skips them with the reason).  Sub-folders are
    not inputs.

    Raises
    ------
    FileNotFoundError
        When a folder or file does not exist (a broken symbolic link given by
        name exists: it is listed).
    """
    if isinstance(source, (str, os.PathLike)):
        root = Path(source)
        if not root.exists() and not root.is_symlink():
            raise FileNotFoundError(f"no such file or folder: {display_text(str(root))}")
        if not root.is_dir():
            return [root]
        return sorted((p for p in root.iterdir() if _is_candidate(p)), key=lambda p: p.name)
    paths = [Path(p) for p in source]
    missing = [p for p in paths if not p.is_symlink() and not p.is_file()]
    if missing:
        raise FileNotFoundError(f"no such image file: {display_text(str(missing[0]))}")
    return paths


def display_text(text: str) -> str:
    """A file-system string as valid UTF-8 text: undecodable bytes shown as ``\\xNN``.

    Python decodes file names that are not valid UTF-8 with surrogate escapes
    (``os.fsdecode``); such strings cannot be encoded into a UTF-8 text file.
    This is the one rule vsum applies wherever a file name is written into a
    text output (CSV, JSON, HTML, messages): ``b"x\\xff.png"`` becomes
    ``"x\\\\xff.png"`` (a backslash, then ``xff``).  Valid names are unchanged.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte (not from os.fsdecode)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def display_name(path: str | os.PathLike) -> str:
    """The file name of ``path`` (no folder) for text outputs, by :func:`display_text`."""
    return display_text(Path(path).name)


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


def _open_regular(path: Path):
    """Open ``path`` for reading after checking it is a non-empty regular file; raises ImageSkip otherwise."""
    if path.is_symlink() and not path.exists():
        raise ImageSkip(f"broken symbolic link (to {display_text(os.readlink(path))})")
    try:
        info = path.stat()
    except OSError as exc:
        raise ImageSkip(f"unreadable file ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):  # FIFOs and devices: opening one could block forever
        raise ImageSkip("not a regular file")
    if info.st_size == 0:
        raise ImageSkip("empty file (0 bytes)")
    try:
        return open(path, "rb")
    except OSError as exc:
        raise ImageSkip(f"unreadable file ({exc.strerror or exc})") from None


def _check_size(width: int, height: int) -> None:
    """Raise ImageSkip for images over :data:`MAX_PIXELS` or with a side under :data:`MIN_SIDE`."""
    if width * height > MAX_PIXELS:
        raise ImageSkip(f"image too large ({width}x{height} = {width * height} pixels > {MAX_PIXELS})")
    if min(width, height) < MIN_SIDE:
        raise ImageSkip(f"image too small ({width}x{height}; both sides must be >= {MIN_SIDE} px)")


def _let_vsum_enforce_the_pixel_limit() -> None:
    """Raise Pillow's own decompression-bomb limit to :data:`MAX_PIXELS` when it is lower.

    Pillow warns above ``Image.MAX_IMAGE_PIXELS`` (89 Mpixel by default) and
    raises above twice that, before vsum sees the size; vsum's documented
    limit is :data:`MAX_PIXELS`, checked by :func:`_check_size` from the header
    before any pixel is decoded.  Pillow's guard stays on above the limit.
    (This sets a Pillow global for the process; it only ever raises it.)
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and limit < MAX_PIXELS:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def _exif_upright(img: Image.Image) -> tuple[Image.Image, list[str]]:
    """Apply the EXIF orientation tag (``ImageOps.exif_transpose``); returns the image and the note made."""
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception as exc:  # noqa: BLE001 - damaged EXIF: the pixels are still usable
        return img, [f"exif unreadable, orientation ignored ({type(exc).__name__})"]
    if orientation in (None, 1):
        return img, []
    if orientation not in range(2, 9):
        return img, [f"exif orientation {orientation} invalid, ignored"]
    return ImageOps.exif_transpose(img), [f"exif orientation {orientation} applied"]


def _frame_note(img: Image.Image) -> list[str]:
    """``"first of N frames"`` for animations and multi-page files (only the first frame is used)."""
    try:
        frames = int(getattr(img, "n_frames", 1))
    except Exception as exc:  # noqa: BLE001 - a damaged later page does not spoil the first one
        return [f"first frame used; later frames unreadable ({type(exc).__name__}: {exc})"]
    return [f"first of {frames} frames"] if frames > 1 else []


def _decode(fh, max_side: int | None) -> tuple[np.ndarray, list[str]]:
    """Decode the first frame of an open image file into RGB uint8; returns the array and the notes."""
    _let_vsum_enforce_the_pixel_limit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's warnings about damaged metadata: the outcome is what counts
        with Image.open(fh) as img:
            _check_size(*img.size)
            if max_side is not None and img.format == "JPEG":
                img.draft("RGB", (4 * max_side, 4 * max_side))
            img.load()
            upright, notes = _exif_upright(img)
            rgb, conversions = _to_rgb_uint8(upright)
            return rgb, notes + conversions + _frame_note(img)


def read_image(path: str | os.PathLike, max_side: int | None = None) -> ImageRecord:
    """Decode one image file into RGB uint8.

    Only the first frame of an animation or a multi-page file is used; the
    EXIF orientation is applied (the array is the picture as viewers show it).

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
        Broken symbolic links, files that are not regular files or cannot be
        opened, zero-byte, truncated, corrupt, unsupported, too small (either
        side < ``MIN_SIDE``) or too large (> ``MAX_PIXELS`` pixels, checked
        from the header before decoding) files, with the reason as the
        message.  Whatever the decoder raises on a damaged file becomes an
        ImageSkip whose reason names the exception.
    """
    path = Path(path)
    with _open_regular(path) as fh:
        try:
            rgb, notes = _decode(fh, max_side)
        except ImageSkip:
            raise
        except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
            raise ImageSkip(f"not a readable image ({type(exc).__name__})") from None
        except MemoryError:
            raise ImageSkip("not enough memory to decode the image") from None
        except (OSError, SyntaxError) as exc:
            raise ImageSkip(f"corrupt or truncated image ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - Pillow raises TypeError, KeyError, ... on damaged files
            raise ImageSkip(f"corrupt image ({type(exc).__name__}: {exc})") from None
    if max_side is not None and max(rgb.shape[:2]) > 4 * max_side:
        rgb = downscale_longest_side(rgb, 4 * max_side, shortest=MIN_SIDE)
        notes.append("downscaled")
    return ImageRecord(path=path, rgb=np.ascontiguousarray(rgb), note=", ".join(notes))


def downscale_longest_side(rgb: np.ndarray, longest: int, shortest: int = 1) -> np.ndarray:
    """Area-downscale ``(H, W, 3) uint8`` so that ``max(H, W) == longest``.

    The shorter side keeps the aspect ratio but is never made smaller than
    ``shortest`` pixels (nor than it was): a very elongated image is squeezed
    a little rather than reduced to a line.
    """
    h, w = rgb.shape[:2]
    scale = longest / max(h, w)
    floor = min(shortest, h, w)
    size = (max(floor, round(w * scale)), max(floor, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX), dtype=np.uint8)


_UNSAFE_IN_NAMES = re.compile(r'[\x00-\x1f\x7f\\/:*?"<>|]')


def _safe_stem(path: Path) -> str:
    """The stem as a portable file-name part: valid UTF-8, no character Windows or macOS forbids."""
    return _UNSAFE_IN_NAMES.sub("_", display_text(Path(path).stem)) or "_"


def _fold(name: str) -> str:
    """The comparison key of case-insensitive file systems (macOS, Windows): NFC, then case-folded."""
    return unicodedata.normalize("NFC", name).casefold()


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """Per-image output names: file stems, distinct even on case-insensitive file systems.

    ``[a.jpg, a.png, b.jpg]`` gives ``["a_jpg", "a_png", "b"]``: stems shared
    (ignoring case) by several files get the suffix; names that still collide
    (``Cat.jpg``, ``cat.jpg``) get ``_2``, ``_3``, ... in input order.  Stems are
    made valid UTF-8 (:func:`display_text`) with ``\\ / : * ? " < > |`` and
    control characters replaced by ``_``.  Deterministic: the same paths give
    the same names.  The names of the per-image outputs (mask PNGs, report rows)
    of a run.
    """
    stems = [_safe_stem(p) for p in paths]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[_fold(stem)] = counts.get(_fold(stem), 0) + 1
    out, seen = [], set()
    for path, stem in zip(paths, stems):
        suffix = _UNSAFE_IN_NAMES.sub("_", display_text(Path(path).suffix.lstrip(".").lower()))
        base = stem if counts[_fold(stem)] == 1 or not suffix else f"{stem}_{suffix}"
        name, k = base, 2
        while _fold(name) in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(_fold(name))
        out.append(name)
    return out


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest (``hashlib`` algorithm name) of a file's bytes, read in 1 MiB chunks.

    Raises
    ------
    OSError
        The file cannot be read.
    """
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    """Pretty-printed, standard JSON written atomically.

    Raises ValueError, before anything is written, on NaN or infinity: they
    are not JSON.  Callers turn non-finite numbers into None (:func:`json_float`).
    """
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


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

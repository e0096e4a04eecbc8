"""Generate the fuzz corpus: awkward and broken image files made from synthetic pixels.

    python tests/make_corpus.py [FOLDER] [--fuzzed N] [--seed S]

writes the corpus to ``FOLDER`` (default ``tests/data/corpus``, which git
ignores); the tests call :func:`write_corpus` on a temporary folder instead,
so nothing binary is committed and the corpus is the same on every run (all
pixels and mutations come from seeded generators; no photo is copied).

The corpus holds hand-made cases (a 0-byte file, text named ``.jpg``,
truncated PNG and JPEG, a decompression bomb, 1x1, 16-bit, float, CMYK,
palette with transparency, LA, an animated GIF, damaged multi-page TIFFs, an
EXIF-rotated JPEG, a file name that is not valid UTF-8, names that differ
only in case, a broken symbolic link) and ``fuzzed`` variants of small valid
PNG, JPEG, GIF, TIFF, BMP and WebP files with flipped bytes, truncations,
damaged headers and inserted or deleted runs.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import struct
import sys
from pathlib import Path

import numpy as np
from PIL import Image

#: The non-UTF-8 file name of the corpus (as bytes; Python shows it with a surrogate escape).
NON_UTF8_NAME = b"non_utf8_\xff\xfe.png"
FORMATS = {"png": "PNG", "jpg": "JPEG", "gif": "GIF", "tif": "TIFF", "bmp": "BMP", "webp": "WEBP"}


def _pixels(rng: np.random.Generator, h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth synthetic picture (gradients plus a few discs) with some noise, ``(h, w, 3) uint8``."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([xs / w, ys / h, (xs + ys) / (w + h)], axis=2) * 200
    for _ in range(3):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, 16)
        img[(ys - cy) ** 2 + (xs - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _multipage_tiff(rng: np.random.Generator, damaged_page: int) -> bytes:
    """A 3-page little-endian TIFF whose page ``damaged_page`` lost its width and height tags.

    Pillow then raises ``TypeError: Missing dimensions`` when it reaches that
    page (at open for page 0, when counting frames for a later page).
    """
    pages = [Image.fromarray(_pixels(rng)) for _ in range(3)]
    data = bytearray(_encode(pages[0], "TIFF", save_all=True, append_images=pages[1:]))
    offset = struct.unpack_from("<I", data, 4)[0]
    for _ in range(damaged_page):
        count = struct.unpack_from("<H", data, offset)[0]
        offset = struct.unpack_from("<I", data, offset + 2 + 12 * count)[0]
    count = struct.unpack_from("<H", data, offset)[0]
    for k in range(count):
        entry = offset + 2 + 12 * k
        tag = struct.unpack_from("<H", data, entry)[0]
        if tag in (256, 257):  # ImageWidth, ImageLength -> private tags nobody reads
            struct.pack_into("<H", data, entry, 65000 + tag - 256)
    return bytes(data)


def _exif_rotated_jpeg(rng: np.random.Generator) -> bytes:
    """A 48 x 64 (H x W) JPEG with EXIF orientation 6: viewers show it 64 x 48, turned 90 degrees clockwise."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(Image.fromarray(_pixels(rng)), "JPEG", quality=90, exif=exif.tobytes())


def _bomb_png() -> bytes:
    """A 16000 x 16000 1-bit PNG (256 Mpixel, about 30 kB): over the 200-Mpixel limit."""
    return _encode(Image.new("1", (16000, 16000), 0), "PNG", optimize=False)


def special_cases(rng: np.random.Generator) -> dict[bytes, tuple[bytes | None, str]]:
    """The hand-made cases: file name (bytes) -> (content, or None for the broken link; expectation).

    The expectation is ``"ok"`` (decodes to RGB) or ``"skip: <words of the reason>"``.
    """
    rgb = _pixels(rng)
    png = _encode(Image.fromarray(rgb), "PNG")
    jpeg = _encode(Image.fromarray(rgb), "JPEG", quality=90)
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    frames = [Image.fromarray(_pixels(rng)).convert("P", palette=Image.Palette.ADAPTIVE) for _ in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return {
        b"empty.jpg": (b"", "skip: empty file"),
        b"text.jpg": (b"this is a text file, not a JPEG\n" * 4, "skip: not a readable image"),
        b"truncated.png": (png[: len(png) // 2], "skip: corrupt"),
        b"truncated.jpg": (jpeg[: len(jpeg) // 2], "skip: corrupt"),
        b"bomb.png": (_bomb_png(), "skip: image too large"),
        b"one_pixel.png": (_encode(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG"), "skip: image too small"),
        b"sixteen_bit.png": (_encode(Image.fromarray(rgb[..., 0].astype(np.uint16) * 257), "PNG"), "ok"),
        b"float.tif": (_encode(Image.fromarray(rgb[..., 1].astype(np.float32) / 7.0), "TIFF"), "ok"),
        b"cmyk.jpg": (_encode(Image.fromarray(rgb).convert("CMYK"), "JPEG"), "ok"),
        b"palette_transparent.png": (_encode(palette, "PNG", transparency=0), "ok"),
        b"la.png": (_encode(Image.fromarray(rgb).convert("LA"), "PNG"), "ok"),
        b"animated.gif": (gif.getvalue(), "ok"),
        b"multipage_damaged.tif": (_multipage_tiff(rng, damaged_page=1), "ok"),
        b"multipage_damaged_first.tif": (_multipage_tiff(rng, damaged_page=0), "skip: not a readable image"),
        b"exif_rotated.jpg": (_exif_rotated_jpeg(rng), "ok"),
        NON_UTF8_NAME: (png, "ok"),
        b"Cat.png": (_encode(Image.fromarray(_pixels(rng)), "PNG"), "ok"),
        b"cat.png": (_encode(Image.fromarray(_pixels(rng)), "PNG"), "ok"),
        b"broken_link.jpg": (None, "skip: broken symbolic link"),
    }


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """One seeded damage: byte flips, a truncation, a damaged header, or an inserted / deleted run."""
    d = bytearray(data)
    kind = rng.choice(("flip", "flip", "truncate", "header", "splice"))
    if kind == "flip":
        for _ in range(rng.randint(1, 12)):
            d[rng.randrange(len(d))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        d = d[: rng.randrange(1, len(d))]
    elif kind == "header":
        for _ in range(rng.randint(1, 4)):
            d[rng.randrange(min(len(d), 64))] = rng.randrange(256)
    else:
        at = rng.randrange(len(d))
        if rng.random() < 0.5:
            del d[at:at + rng.randint(1, 64)]
        else:
            d[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return bytes(d)


def fuzzed_cases(count: int, seed: int) -> dict[bytes, bytes]:
    """``count`` damaged variants of small valid files of every format: name (bytes) -> content."""
    rng = np.random.default_rng(seed)
    mutator = random.Random(seed)
    bases = {ext: _encode(Image.fromarray(_pixels(rng)), fmt) for ext, fmt in FORMATS.items()}
    cases = {}
    for k in range(count):
        ext = list(FORMATS)[k % len(FORMATS)]
        cases[f"fuzz_{k:03d}.{ext}".encode()] = _mutate(bases[ext], mutator)
    return cases


def write_corpus(folder: str | os.PathLike, fuzzed: int = 300, seed: int = 0) -> dict[bytes, str]:
    """Write the corpus into ``folder`` (created; existing corpus files are replaced).

    Returns
    -------
    dict
        File name (bytes) -> expectation: ``"ok"``, ``"skip: <reason words>"``, or
        ``"any"`` for the fuzzed variants (decoded to RGB or skipped with a reason).
    """
    root = os.fsencode(os.fspath(folder))
    os.makedirs(root, exist_ok=True)
    expected: dict[bytes, str] = {}
    rng = np.random.default_rng(seed)
    for name, (content, expectation) in special_cases(rng).items():
        path = os.path.join(root, name)
        if os.path.lexists(path):
            os.unlink(path)
        if content is None:
            os.symlink(b"no_such_target.jpg", path)
        else:
            with open(path, "wb") as fh:
                fh.write(content)
        expected[name] = expectation
    for name, content in fuzzed_cases(fuzzed, seed).items():
        with open(os.path.join(root, name), "wb") as fh:
            fh.write(content)
        expected[name] = "any"
    return expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=str(Path(__file__).resolve().parent / "data" / "corpus"))
    parser.add_argument("--fuzzed", type=int, default=300, help="fuzzed variants (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    expected = write_corpus(args.folder, args.fuzzed, args.seed)
    print(f"wrote {len(expected)} files to {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

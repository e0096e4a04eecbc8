"""Content digests of input files, cached per file by size and modification time.

A run's cache keys name the *content* of what it reads (images, weights), not
their paths, so that overwriting a weights file or a photo under the same
name recomputes what depends on it.  Hashing a 500 MB weights file on every
run would cost seconds, so :func:`cached_sha256` keeps the digests of large
files in a small JSON cache (``$VSUM_CACHE_DIR``, else
``$XDG_CACHE_HOME/vsum``, else ``~/.cache/vsum``; ``file-digests.json``),
keyed by the file's resolved path and trusted only while its size and
``st_mtime_ns`` are unchanged.  A cache that cannot be read or written is
ignored: the digest is then computed every time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .io import atomic_write_json, file_digest
from .manifest import file_sha256

__all__ = ["cache_dir", "cached_sha256", "image_sha1", "json_digest"]

#: Files smaller than this are hashed every time (cheaper than the cache).
MIN_CACHED_BYTES = 1 << 20


def cache_dir() -> Path:
    """The user cache folder of vsum (see the module docstring)."""
    if os.environ.get("VSUM_CACHE_DIR"):
        return Path(os.environ["VSUM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vsum"


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, from the cache when its size and mtime still match.

    Raises
    ------
    OSError
        The file cannot be read.
    """
    path = Path(path).resolve()
    stat = path.stat()
    if stat.st_size < MIN_CACHED_BYTES:
        return file_sha256(path)
    cache_file = cache_dir() / "file-digests.json"
    cache = _read_cache(cache_file)
    entry = cache.get(str(path))
    if isinstance(entry, dict) and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        return str(entry["sha256"])
    digest = file_sha256(path)
    cache[str(path)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    try:
        atomic_write_json(cache_file, cache)
    except OSError:
        pass
    return digest


def json_digest(obj, length: int = 16) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``obj`` as canonical JSON (sorted keys): cache keys."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def image_sha1(path: str | os.PathLike) -> str:
    """SHA-1 (hex) of an input image's bytes for cache keys; an unreadable file is keyed by its error instead."""
    try:
        return file_digest(path, "sha1")
    except OSError as exc:
        return f"unreadable: {exc.strerror}"

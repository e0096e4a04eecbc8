"""Stage manifests of a run folder: what a stage wrote, checked before it is reused.

When a stage of :func:`vsum.pipeline.summarize` finishes, it writes
``RUN/stages/<stage>.json``: its cache key, its seconds, a payload, and every
output file with its size in bytes and SHA-256.  A later run reuses the stage
only when the key matches *and* every output still has that size and digest.
An output that was truncated, damaged, replaced or removed makes the stage
recompute (with one line on ``stderr`` saying which file and why), and so
every stage after it, since they read it.  Nothing in a run folder is trusted
on existence alone.

Before a stage recomputes, it removes the outputs it owns (:data:`OWNED`), so
files of an earlier run with more clusters or other images never mix with
the new ones.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .io import atomic_write_json, file_digest

__all__ = ["OWNED", "Stages", "file_sha256"]

#: Per stage, the files and folders it owns in a run folder (globs relative to the folder).
OWNED: dict[str, tuple[str, ...]] = {
    "masks": ("masks/*.png", "masks/metrics.csv", "masks/saliency.npz", "masks/result.json"),
    "proposals": ("proposals.npz",),
    "descriptors": ("descriptors.npz",),
    "pairs": ("similarity.npz",),
    "summaries": ("clusters.json", "summaries/"),
}


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex): :func:`vsum.io.file_digest`."""
    return file_digest(path, "sha256")


def _say(message: str) -> None:
    print(f"vsum: {message}", file=sys.stderr, flush=True)


class Stages:
    """The stage manifests ``stages/<name>.json`` of one run folder, in stage order.

    Parameters
    ----------
    out : Path
        The run folder.
    order : sequence of str
        The stage names in the order they run; once one stage recomputes,
        every later one does too.
    force : bool
        Reuse nothing.
    say : callable, optional
        Where the one-line notices go (default: ``stderr``, prefixed ``vsum:``).

    Attributes
    ----------
    reused : list of str
        Stages taken from the cache, in order.
    seconds : dict
        Seconds per stage (a reused stage's are those it took when computed).
    notes : list of str
        The notices printed, for ``result.json``.
    """

    def __init__(self, out: Path, order: Sequence[str], force: bool = False,
                 say: Callable[[str], None] | None = None):
        self.out, self.order, self.force = Path(out), tuple(order), bool(force)
        self.say = say or _say
        self.reused: list[str] = []
        self.seconds: dict[str, float] = {}
        self.notes: list[str] = []
        self._recomputed = False

    def _path(self, name: str) -> Path:
        return self.out / "stages" / f"{name}.json"

    def check_files(self, manifest: dict) -> str | None:
        """Why the recorded outputs cannot be trusted, or None when each has its size and digest."""
        files = manifest.get("files")
        if not isinstance(files, dict):
            return "its manifest records no file sizes and checksums"
        for rel, expect in files.items():
            path = self.out / rel
            try:
                size = path.stat().st_size
            except OSError:
                return f"{rel} is missing"
            recorded = expect.get("size") if isinstance(expect, dict) else "?"
            if size != recorded:
                return f"{rel} has {size} bytes, not the {recorded} recorded"
            try:
                digest = file_sha256(path)
            except OSError as exc:
                return f"{rel} cannot be read ({exc.strerror or exc})"
            if digest != expect.get("sha256"):
                return f"{rel} does not match its recorded checksum"
        return None

    def cached(self, name: str, key: str) -> dict | None:
        """The manifest of ``name`` when the stage can be reused, else None.

        None when forced, when an earlier stage recomputed, when there is no
        readable manifest, when its key differs, or when an output does not
        match its recorded size and SHA-256 (then one line says so).  A
        manifest that cannot be reused is deleted first, so outputs that a
        recomputation killed half-way leaves are never trusted under it.
        """
        path = self._path(name)
        manifest = None
        if not self.force and not self._recomputed and path.is_file():
            try:
                manifest = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                manifest = None
                self._notice(f"stages/{name}.json cannot be read: recomputing from stage '{name}' on")
            if not isinstance(manifest, dict):
                manifest = None
        if manifest is not None and manifest.get("key") == key:
            why = self.check_files(manifest)
            if why is None:
                self.reused.append(name)
                self.seconds[name] = float(manifest.get("seconds", 0.0))
                return manifest
            self._notice(f"{why}: recomputing from stage '{name}' on")
        path.unlink(missing_ok=True)
        self._recomputed = True
        return None

    def discard(self, name: str, why: str) -> None:
        """Forget a reused stage whose stored output turned out unusable; it and the later stages recompute."""
        self._notice(f"{why}: recomputing from stage '{name}' on")
        self._path(name).unlink(missing_ok=True)
        if name in self.reused:
            self.reused.remove(name)
        self._recomputed = True

    def clear(self, name: str) -> None:
        """Remove every output ``name`` owns (:data:`OWNED`) before it recomputes."""
        for pattern in OWNED.get(name, ()):
            if pattern.endswith("/"):
                shutil.rmtree(self.out / pattern.rstrip("/"), ignore_errors=True)
                continue
            for path in self.out.glob(pattern):
                if path.is_file() or path.is_symlink():
                    path.unlink(missing_ok=True)

    def done(self, name: str, key: str, outputs: Sequence[str], seconds: float, **payload) -> dict:
        """Record that ``name`` finished: its key, seconds, payload and each output's size and SHA-256."""
        files = {}
        for rel in outputs:
            path = self.out / rel
            files[rel] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
        manifest = {"stage": name, "key": key, "seconds": round(seconds, 3), "files": files, **payload}
        atomic_write_json(self._path(name), manifest)
        self.seconds[name] = seconds
        return manifest

    def _notice(self, message: str) -> None:
        self.notes.append(message)
        self.say(message)

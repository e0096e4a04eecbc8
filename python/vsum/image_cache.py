"""Per-image outputs of stages 2-3, shared by every run of a sweep and addressed by content.

Selective search (stage 2) and the HOG descriptors (stage 3) of an image
depend only on the image's pixels on the model grid and on the two stage
configurations, not on the model that explains it.  A sweep of several
models therefore computes them once per image: :class:`ImageCache` stores
them under ``FOLDER/proposals/<kk>/<key>.npy`` and
``FOLDER/descriptors/<kk>/<key>.npy``, keyed by

    proposals:   the image's SHA-1, the grid side S, ProposalConfig, the vsum version
    descriptors: the proposals' key, DescriptorConfig, the vsum version

so models with the same input size share them (EfficientNet-Lite0 and the
224-pixel torchvision models; Lite1 at 240 and Lite2 at 260 pixels have
their own).  Each entry is written to a temporary name and renamed into
place; while one process computes an entry it holds an ``fcntl`` lock on
``FOLDER/locks/<key>.lock``, so a second process that needs the same entry
waits and then reads it instead of computing it again.  An entry that cannot
be read is computed again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ._version import __version__
from .digests import json_digest
from .io import atomic_open

__all__ = ["ImageCache"]

try:  # POSIX; elsewhere two processes may compute one entry twice, which is wasteful but correct
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class ImageCache:
    """Content-addressed stage 2-3 outputs of single images (see the module docstring).

    Parameters
    ----------
    folder : path-like
        Created when missing.

    Attributes
    ----------
    computed, reused : dict
        Per kind (``"proposals"``, ``"descriptors"``), how many entries this
        object computed and how many it read from the folder.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.computed = {"proposals": 0, "descriptors": 0}
        self.reused = {"proposals": 0, "descriptors": 0}

    @staticmethod
    def proposals_key(image_sha1: str, side: int, config) -> str:
        """Key of an image's proposals: its SHA-1, the grid side, the ProposalConfig and the vsum version."""
        return json_digest({"image": image_sha1, "side": int(side), "proposals": config.to_dict(), "vsum": __version__}, 24)

    @staticmethod
    def descriptors_key(proposals_key: str, config) -> str:
        """Key of the descriptors of the proposals ``proposals_key`` under a DescriptorConfig."""
        return json_digest({"proposals": proposals_key, "descriptors": config.to_dict(), "vsum": __version__}, 24)

    def _path(self, kind: str, key: str) -> Path:
        return self.folder / kind / key[:2] / f"{key}.npy"

    def _read(self, path: Path) -> np.ndarray | None:
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None

    @contextlib.contextmanager
    def _locked(self, key: str):
        if fcntl is None:
            yield
            return
        lock = self.folder / "locks" / f"{key}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def get(self, kind: str, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The stored array of ``kind``/``key``, or ``compute()`` stored under it.

        Parameters
        ----------
        kind : {"proposals", "descriptors"}
        key : str
            From :meth:`proposals_key` or :meth:`descriptors_key`.
        compute : callable
            Returns the array (any dtype but object) when it is not stored.
        """
        if kind not in self.computed:
            raise ValueError(f"ImageCache: kind must be 'proposals' or 'descriptors'; got {kind!r}")
        path = self._path(kind, key)
        if (found := self._read(path)) is not None:
            self.reused[kind] += 1
            return found
        with self._locked(key):
            if (found := self._read(path)) is not None:  # computed by another process while we waited
                self.reused[kind] += 1
                return found
            array = np.ascontiguousarray(compute())
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_open(path) as fh:
                np.save(fh, array, allow_pickle=False)
        self.computed[kind] += 1
        return array

    def counts(self) -> dict:
        """``{"proposals": {"computed": n, "reused": m}, "descriptors": {...}}`` of this object."""
        return {kind: {"computed": self.computed[kind], "reused": self.reused[kind]} for kind in self.computed}

"""The stage-4 artefact on disk: an ``.npz`` whose blocks are streamed in and read back block by block.

Stage 4 keeps, for every pair ``i <= j`` of a class, the block of LOM
confidences restricted to the valid proposals (``r_i x r_j`` float32).  With
``V`` valid proposals over the class they add up to about ``V^2 / 2`` values
(5 GB at V = 50,000), so they are never held in memory together: the driver
writes each block to the file as the pairs stream (:class:`BlockWriter`), and
readers get one block at a time from disk (:class:`StoredBlocks`).

Layout: an uncompressed zip (``np.load`` opens it as an ``.npz``) whose first
member ``blocks.npy`` is one 1-D little-endian float32 array, the blocks in
pair order (i ascending, then j ascending), each in C order; the other
members are the small arrays of :meth:`vsum.pairs.AllPairsResult.save`, among
them ``block_pairs``, the ``(i, j)`` of the stored blocks in order.  A
block's position follows from those and the rows (:func:`block_layout`).  Members are stored (not deflated), which lets
:class:`StoredBlocks` read a block with one ``pread`` at a known offset.
"""

from __future__ import annotations

import os
import struct
import threading
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["BLOCKS_MEMBER", "BlockWriter", "StoredBlocks", "block_layout", "pair_keys"]

#: Name of the zip member holding the concatenated blocks.
BLOCKS_MEMBER = "blocks.npy"
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # zip local file header, 30 bytes


def pair_keys(n_images: int, diagonal: bool) -> list[tuple[int, int]]:
    """The pairs ``(i, j)``, ``i <= j`` (``i < j`` without the diagonal), in pair order (i, then j ascending)."""
    return [(i, j) for i in range(n_images) for j in range(i if diagonal else i + 1, n_images)]


def block_layout(row_counts, keys) -> dict:
    """Where each block lies in the concatenated float32 array.

    Parameters
    ----------
    row_counts : sequence of N int
        ``r_i``, the number of selected proposals of each image.
    keys : iterable of (i, j)
        The blocks, in the order they are stored (:func:`pair_keys`).

    Returns
    -------
    dict of (i, j) to (start, (r_i, r_j))
        In the order of ``keys``; ``start`` counts float32 values from the
        beginning of the array.
    """
    counts = [int(r) for r in row_counts]
    layout, start = {}, 0
    for i, j in keys:
        i, j = int(i), int(j)
        layout[(i, j)] = (start, (counts[i], counts[j]))
        start += counts[i] * counts[j]
    return layout


def _total(layout: dict) -> int:
    return sum(shape[0] * shape[1] for _, shape in layout.values())


class BlockWriter:
    """Writes the stage-4 file to an open binary handle: the blocks first, streamed, then the small arrays.

    Parameters
    ----------
    fh : binary file object, seekable
        Usually :func:`vsum.io.atomic_open`'s handle.
    layout : dict
        :func:`block_layout` of the blocks that will be added, in that order.

    Use :meth:`add` once per block, in layout order, then :meth:`finish`;
    on an error, :meth:`close` before the handle is closed.
    """

    def __init__(self, fh, layout: dict):
        self.layout = layout
        self.keys = list(layout)
        self.added = 0
        self.zip = zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self.member = self.zip.open(BLOCKS_MEMBER, "w", force_zip64=True)
        np.lib.format.write_array_header_2_0(
            self.member, {"descr": "<f4", "fortran_order": False, "shape": (_total(layout),)})

    def add(self, key: tuple[int, int], block: np.ndarray) -> None:
        """Append block ``key``, a ``(r_i, r_j)`` array (cast to float32), the next one in layout order."""
        if self.added >= len(self.keys) or key != self.keys[self.added]:
            raise ValueError(f"block {key} written out of order")
        shape = self.layout[key][1]
        arr = np.ascontiguousarray(block, dtype="<f4")
        if arr.shape != shape:
            raise ValueError(f"block {key} has shape {arr.shape}; expected {shape}")
        if arr.size:
            self.member.write(memoryview(arr).cast("B"))
        self.added += 1

    def close(self) -> None:
        """Close the zip without checks (idempotent); on an error path, before the handle is closed and removed."""
        if not self.member.closed:
            self.member.close()
        self.zip.close()

    def finish(self, arrays: dict) -> None:
        """Close the blocks member (all blocks must have been added) and write ``arrays`` as ``<name>.npy``."""
        if self.added != len(self.keys):
            raise ValueError(f"{len(self.keys) - self.added} blocks were not written")
        self.member.close()
        for name, value in arrays.items():
            with self.zip.open(f"{name}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)
        self.zip.close()


def _blocks_offset(path: Path) -> int:
    """Byte offset of the first float32 value of ``blocks.npy`` in the file at ``path``."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(BLOCKS_MEMBER)
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError(f"{path}: {BLOCKS_MEMBER} is compressed")
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        fields = _LOCAL_HEADER.unpack(fh.read(_LOCAL_HEADER.size))
        if fields[0] != b"PK\x03\x04":
            raise ValueError(f"{path}: bad zip local header of {BLOCKS_MEMBER}")
        fh.seek(info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1])
        version = np.lib.format.read_magic(fh)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in read_header:
            raise ValueError(f"{path}: {BLOCKS_MEMBER} has .npy version {version}")
        shape, fortran, dtype = read_header[version](fh)
        if dtype != np.dtype("<f4") or fortran or len(shape) != 1:
            raise ValueError(f"{path}: {BLOCKS_MEMBER} is not a 1-D little-endian float32 array")
        return fh.tell()


class StoredBlocks(Mapping):
    """The blocks of a stored stage-4 result, read from the file one at a time.

    A read-only mapping ``(i, j) -> (r_i, r_j) float32 array`` (a fresh,
    writable array per lookup), in pair order.  Memory: only the block being
    read; the file stays open (the data stay readable when the file is
    replaced, since the open handle keeps the old one).

    Parameters
    ----------
    path : path-like
        A file written by :class:`BlockWriter`.
    layout : dict
        Its :func:`block_layout`.
    """

    def __init__(self, path, layout: dict):
        self.path = Path(path)
        self.layout = layout
        self._offset = _blocks_offset(self.path)
        self._fh = open(self.path, "rb")  # noqa: SIM115 - held for the lifetime of the mapping
        self._lock = threading.Lock()
        size = os.fstat(self._fh.fileno()).st_size
        if self._offset + 4 * _total(layout) > size:
            self._fh.close()
            raise ValueError(f"{self.path} is truncated: its blocks need {4 * _total(layout)} bytes")

    def __getitem__(self, key) -> np.ndarray:
        start, shape = self.layout[key]
        out = np.empty(shape, np.float32)
        if out.size:
            view = memoryview(out).cast("B")
            where = self._offset + 4 * start
            if hasattr(os, "preadv"):  # positional: safe from several threads
                got = os.preadv(self._fh.fileno(), [view], where)
            else:
                with self._lock:
                    self._fh.seek(where)
                    got = self._fh.readinto(view)
            if got != out.nbytes:
                raise OSError(f"{self.path}: short read of block {key}")
        return out

    def __contains__(self, key) -> bool:
        return key in self.layout

    def __iter__(self):
        return iter(self.layout)

    def __len__(self) -> int:
        return len(self.layout)

    def close(self) -> None:
        """Close the file handle."""
        self._fh.close()

    def __del__(self):
        fh = getattr(self, "_fh", None)
        if fh is not None:
            fh.close()

"""One writer per run folder: an exclusive ``fcntl`` lock on ``RUN/.vsum.lock``.

A run (``vsum summarize``, ``vsum masks``, ``vsum demo``) holds the lock of
its output folder from start to end.  A second run on the same folder either
waits for it (``wait=True``, ``--wait``) or stops at once with one line that
names the holder (process id, host, start time and command, which the holder
writes into the lock file).  The operating system releases the lock when the
holder exits, however it exits (``kill -9`` included), so a stale lock file
never blocks a later run.

Only the holder may clean up what killed writers left (the temporary files
of :func:`vsum.io.atomic_open`), so cleaning never deletes the files of a run
still writing.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from .errors import VsumError

__all__ = ["LOCK_NAME", "RunLock", "RunLocked"]

#: Name of the lock file inside a run folder.
LOCK_NAME = ".vsum.lock"


class RunLocked(VsumError):
    """The run folder is locked by another process and the caller did not ask to wait."""


def _holder_text(path: Path) -> str:
    """What the holder wrote into the lock file, as one phrase."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return (f"process {info['pid']} on {info['host']}, started {info['started']}: "
                f"{info['command']}")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not written its name yet)"


class RunLock:
    """Exclusive lock of one run folder; a context manager.

    Parameters
    ----------
    folder : path-like
        The run folder (created when missing).
    wait : bool, default False
        Block until the holder releases the folder (after one line on
        ``stderr`` saying whom it waits for); otherwise raise
        :class:`RunLocked` at once.

    Raises
    ------
    RunLocked
        The folder is locked and ``wait`` is False.
    VsumError
        ``folder`` exists and is not a folder, or the lock file cannot be
        created (permissions).
    """

    def __init__(self, folder: str | os.PathLike, wait: bool = False):
        self.folder = Path(folder)
        self.wait = bool(wait)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if self.folder.exists() and not self.folder.is_dir():
            raise VsumError(f"--out {self.folder} exists and is not a folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise VsumError(f"cannot create the run folder's lock file {self.path}: {exc.strerror or exc}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder_text(self.path)
                if not self.wait:
                    raise RunLocked(f"{self.folder} is in use by {holder}; wait for it to finish "
                                    "(--wait) or choose another --out") from None
                print(f"vsum: waiting for {self.folder}, in use by {holder}", file=sys.stderr, flush=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv) or "python"}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8", "backslashreplace"), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the folder up (closing the descriptor drops the lock); the file stays."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:  # noqa: PYI034
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

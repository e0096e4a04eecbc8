"""Thread count of the compiled core (and of torch, when it is loaded).

:func:`set_num_threads` sets, in one call, the number of threads of every
compiled kernel of :mod:`vsum._core` (boxes, HOG, proposals, flow, pairs) and,
when torch has already been imported, ``torch.set_num_threads`` (stage 1), so
the whole pipeline follows one setting.  The initial count is the environment
variable ``VSUM_NUM_THREADS`` when it is a positive integer, else the number
of hardware threads.

The compiled kernels share one persistent thread pool: ``T - 1`` worker
threads (named ``vsum-pool-<k>``) started on the first parallel call and
reused by every later one; the calling thread works too.  Changing the count
stops the workers (after a running call) and the next parallel call starts the
new set; a process made by ``fork`` (e.g. ``multiprocessing``) starts its own.

There is one layer of parallelism: a kernel called from a pool task (e.g.
each pair of :func:`vsum.flow.match_batch`) runs serially inside it, and a
kernel called from a second Python thread while another call uses the pool
runs serially in that thread, so a process never runs more than ``T`` kernel
threads.  vsum starts no other thread.  The BLAS library of NumPy (the
appearance products of stage 4) and OpenCV (warps, drawing) keep their own
pools, sized by their own settings (``OPENBLAS_NUM_THREADS`` /
``OMP_NUM_THREADS``, ``cv2.setNumThreads``); they run between kernel calls,
never during one.  Results never depend on the thread count.

Importing this module does not import torch.
"""

from __future__ import annotations

import operator
import sys

from ._compiled import _core

__all__ = ["get_num_threads", "set_num_threads"]


def get_num_threads() -> int:
    """Number of threads the compiled kernels use (>= 1), the calling thread included."""
    return int(_core.get_num_threads())


def set_num_threads(n: int) -> None:
    """Set the number of threads of the compiled kernels, and of torch if it is loaded.

    Parameters
    ----------
    n : int
        ``1 <= n <= vsum._core.MAX_THREADS`` (4096).  Applies process-wide;
        results are identical for every thread count.  The core's pool is
        resized (after a call running on it finishes); when ``torch`` has
        been imported, ``torch.set_num_threads(n)`` is called too.

    Raises
    ------
    ValueError
        If ``n`` is not an integer (``bool`` included) or out of range.
    """
    try:
        if isinstance(n, bool):
            raise TypeError
        n = operator.index(n)
    except TypeError:
        raise ValueError(f"num_threads must be an integer; got {n!r}") from None
    if not 1 <= n <= _core.MAX_THREADS:
        raise ValueError(f"num_threads must be an integer in [1, {_core.MAX_THREADS}]; got {n}")
    _core.set_num_threads(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)

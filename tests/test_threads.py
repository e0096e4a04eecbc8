"""The compiled core's persistent thread pool (vsum.threads) and the batched matcher (vsum.flow.match_batch)."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import vsum.boxes
import vsum.features
import vsum.flow as vf
import vsum.threads
from vsum import _core

from helpers import random_boxes

THREAD_COUNTS = (1, 2, 3, 7)
HAS_PROC_TASKS = os.path.isdir("/proc/self/task")
needs_proc = pytest.mark.skipif(
    not HAS_PROC_TASKS, reason="counting threads needs Linux /proc/self/task (pool threads are found by name)"
)


def random_batch(seed: int, sizes=((30, 40), (0, 5), (25, 0), (60, 50), (1, 1), (45, 45), (70, 20), (12, 33))):
    """Random pairs (boxes_a, boxes_b, appearance, image_shape) of the given (na, nb) sizes."""
    rng = np.random.default_rng(seed)
    boxes_a, boxes_b, apps, shapes = [], [], [], []
    for na, nb in sizes:
        h, w = (int(v) for v in rng.integers(40, 160, 2))
        boxes_a.append(random_boxes(rng, na, h, w, outside=5))
        boxes_b.append(random_boxes(rng, nb, h, w))
        s = rng.random((na, nb)).astype(np.float32)
        s[s < 0.2] = 0.0
        apps.append(s)
        shapes.append((h + 10, w + 10))
    return boxes_a, boxes_b, apps, shapes


def run_python(code: str, timeout: float = 300) -> str:
    """Runs code in a fresh interpreter (same environment) and returns its stdout; fails on a non-zero exit."""
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False,
                         timeout=timeout)
    assert res.returncode == 0, f"subprocess failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout


# ---------------------------------------------------------------------------
# vsum.threads
# ---------------------------------------------------------------------------


def test_threads_get_set(restore_threads):
    for n in (1, 3, np.int64(2)):
        vsum.threads.set_num_threads(n)
        assert vsum.threads.get_num_threads() == int(n) == _core.get_num_threads()


@pytest.mark.parametrize("bad", [0, -1, _core.MAX_THREADS + 1, 2.0, True, np.bool_(True), "2", None])
def test_threads_rejects_bad_values(restore_threads, bad):
    with pytest.raises(ValueError, match=r"num_threads must be an integer"):
        vsum.threads.set_num_threads(bad)


def test_threads_import_does_not_import_torch():
    out = run_python("""
        import sys
        import vsum.threads, vsum.flow
        vsum.threads.set_num_threads(2)
        print("torch" in sys.modules)
    """)
    assert out.split() == ["False"]


def test_threads_sets_torch_when_loaded(restore_threads):
    torch = pytest.importorskip("torch")
    old = torch.get_num_threads()
    try:
        vsum.threads.set_num_threads(3)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(old)


# ---------------------------------------------------------------------------
# match_batch
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("order", vf.LOM_ORDERS)
@pytest.mark.parametrize("method", vf.METHODS)
def test_match_batch_equals_match(restore_threads, method, order):
    boxes_a, boxes_b, apps, shapes = random_batch(1)
    expected = [vf.match(a, b, s, method, image_shape=hw, order=order)
                for a, b, s, hw in zip(boxes_a, boxes_b, apps, shapes)]
    expected_default = [vf.match(a, b, s, method, order=order) for a, b, s in zip(boxes_a, boxes_b, apps)]
    for t in THREAD_COUNTS:
        restore_threads(t)
        got = vf.match_batch(boxes_a, boxes_b, apps, method, image_shapes=shapes, order=order)
        got_default = vf.match_batch(boxes_a, boxes_b, apps, method, order=order)
        assert len(got) == len(got_default) == len(expected)
        for k in range(len(expected)):
            assert got[k].dtype == np.float32 and got[k].shape == expected[k].shape
            assert np.array_equal(got[k], expected[k]), f"pair {k}, {t} threads"
            assert np.array_equal(got_default[k], expected_default[k]), f"pair {k}, {t} threads (default shape)"
        one = vf.match_batch(boxes_a[3:4], boxes_b[3:4], apps[3:4], method, image_shapes=shapes[3:4], order=order)
        assert np.array_equal(one[0], expected[3])


def test_match_batch_converts_like_match():
    boxes_a, boxes_b, apps, _ = random_batch(2, sizes=((20, 30), (15, 10)))
    # lists, float64 and non-contiguous inputs are converted as by match
    a_list = [boxes_a[0].tolist(), boxes_a[1].astype(np.float64)]
    apps_conv = [apps[0].astype(np.float64), np.asfortranarray(apps[1])]
    got = vf.match_batch(tuple(a_list), boxes_b, apps_conv, "LOM", order="parallel")
    for k in range(2):
        assert np.array_equal(got[k], vf.match(a_list[k], boxes_b[k], apps_conv[k], "LOM", order="parallel"))


def test_match_batch_empty():
    assert vf.match_batch([], [], []) == []
    assert vf.match_batch([], [], [], "phm", image_shapes=[]) == []
    assert _core.flow_match_batch([], [], [], "nam", [], [], True) == []


def test_match_batch_errors():
    boxes_a, boxes_b, apps, shapes = random_batch(3, sizes=((10, 12), (8, 9), (7, 6)))
    with pytest.raises(ValueError, match=r"one element per pair; got lengths 3, 2, 3$"):
        vf.match_batch(boxes_a, boxes_b[:2], apps)
    with pytest.raises(ValueError, match=r"one element per pair; got lengths 3, 3, 3, 2"):
        vf.match_batch(boxes_a, boxes_b, apps, image_shapes=shapes[:2])
    with pytest.raises(ValueError, match=r"boxes_a must be a list with one array per pair"):
        vf.match_batch(boxes_a[0], boxes_b[0], apps[0])
    with pytest.raises(ValueError, match=r"method must be one of"):
        vf.match_batch(boxes_a, boxes_b, apps, "xyz")
    with pytest.raises(ValueError, match=r"order must be one of"):
        vf.match_batch(boxes_a, boxes_b, apps, order="random")
    bad = list(apps)
    bad[1] = np.ones((3, 3), np.float32)
    with pytest.raises(ValueError, match=r"^pair 1: appearance must have shape \(len\(boxes_a\), len\(boxes_b\)\)"):
        vf.match_batch(boxes_a, boxes_b, bad)
    bad_boxes = list(boxes_b)
    bad_boxes[2] = bad_boxes[2].copy()
    bad_boxes[2][4] = [5, 5, 1, 9]
    with pytest.raises(ValueError, match=r"^pair 2: boxes_b: row 4 is degenerate"):
        vf.match_batch(boxes_a, bad_boxes, apps)
    with pytest.raises(ValueError, match=r"^pair 0: image_shape must be positive"):
        vf.match_batch(boxes_a, boxes_b, apps, "phm", image_shapes=[(0, 5), (5, 5), (5, 5)])


def test_core_match_batch_errors():
    boxes_a, boxes_b, apps, _ = random_batch(4, sizes=((10, 12), (8, 9)))
    hw = [100, 100]
    with pytest.raises(ValueError, match=r"must have the same length; got 2, 2, 2, 1 and 2"):
        _core.flow_match_batch(boxes_a, boxes_b, apps, "nam", [100], hw, True)
    with pytest.raises(ValueError, match=r"method must be 'nam', 'phm' or 'lom'; got 'x'"):
        _core.flow_match_batch(boxes_a, boxes_b, apps, "x", hw, hw, True)
    with pytest.raises(ValueError, match=r"^pair 1: boxes_a must be a int32 array of shape \(na, 4\); got dtype"):
        _core.flow_match_batch([boxes_a[0], boxes_a[1].astype(np.int64)], boxes_b, apps, "nam", hw, hw, True)
    with pytest.raises(ValueError, match=r"^pair 1: appearance must be a float32 array .* got an object of type"):
        _core.flow_match_batch(boxes_a, boxes_b, [apps[0], apps[1].tolist()], "nam", hw, hw, True)
    with pytest.raises(ValueError, match=r"^pair 0: appearance must be C-contiguous"):
        _core.flow_match_batch(boxes_a, boxes_b, [np.asfortranarray(apps[0]), apps[1]], "nam", hw, hw, True)
    with pytest.raises(ValueError, match=r"^pair 1: image size must be positive"):
        _core.flow_match_batch(boxes_a, boxes_b, apps, "phm", hw, [100, 0], True)


def test_first_bad_position_any_thread_count(restore_threads):
    rng = np.random.default_rng(5)
    a, b = random_boxes(rng, 300, 128, 128), random_boxes(rng, 7, 128, 128)
    s = np.ones((300, 7), np.float32)
    s[211, 2] = np.nan
    s[37, 5] = np.nan  # the first bad value in row-major order
    boxes_a, boxes_b, apps, _ = random_batch(6, sizes=[(40, 30)] * 9)
    for k, (row, col) in ((6, (3, 1)), (3, (25, 4)), (8, (0, 0))):  # bad pairs 3, 6 and 8: pair 3 is reported
        apps[k][row, col] = -1.0
    hw = [200] * 9
    for t in (1, 2, 7):
        restore_threads(t)
        for m in vf.METHODS:
            with pytest.raises(ValueError, match=r"finite and >= 0; got nan at \(37, 5\)"):
                _core.flow_match(a, b, s, m, 128, 128, False)
            with pytest.raises(ValueError, match=r"^pair 3: appearance must be finite and >= 0; got -1 at \(25, 4\)"):
                _core.flow_match_batch(boxes_a, boxes_b, apps, m, hw, hw, m == "lom")
        with pytest.raises(ValueError, match=r"boxes: row 4 is degenerate"):
            vsum.features.describe(np.zeros((64, 64, 3), np.uint8), [[0, 0, 9, 9]] * 4 + [[5, 0, 4, 9]] * 40)


# ---------------------------------------------------------------------------
# pool: persistence, bounds, concurrency, fork
# ---------------------------------------------------------------------------

POOL_PROBE = """
    import glob, sys, threading, time
    import numpy as np
    import vsum.boxes, vsum.features, vsum.flow, vsum.threads

    def pool_threads():
        names = []
        for path in glob.glob("/proc/self/task/*/comm"):
            try:
                with open(path) as f:
                    name = f.read().strip()
            except OSError:  # a thread that just ended
                continue
            if name.startswith("vsum-pool-"):
                names.append(name)
        return sorted(names)

    def total_threads():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))

    rng = np.random.default_rng(0)
    xy = rng.integers(0, 900, (1500, 2))
    big = np.concatenate([xy, xy + rng.integers(1, 100, (1500, 2))], axis=1).astype(np.int32)
    pairs = [(big[:120], big[120:200], rng.random((120, 80)).astype(np.float32)) for _ in range(8)]
    image = rng.integers(0, 256, (120, 160, 3)).astype(np.uint8)
    corner = rng.integers(0, 100, (200, 2))
    hog_boxes = np.concatenate([corner, corner + rng.integers(8, 60, (200, 2))], axis=1)

    def kernels():
        vsum.boxes.iou(big, big)
        vsum.flow.match_batch(*map(list, zip(*pairs)))
        vsum.flow.match(*pairs[0], order="parallel")
        vsum.features.describe(image, hog_boxes)

    def peak_threads(work):
        # runs work() while a sampler thread records the thread count every ms; returns the peak
        peak, done = [0], threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], total_threads())
                time.sleep(0.001)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            work()
        finally:
            done.set()
            sampler.join()
        return peak[0]
"""


@needs_proc
def test_pool_persistent_named_workers():
    out = run_python(POOL_PROBE + """
    assert pool_threads() == [], pool_threads()
    vsum.threads.set_num_threads(1)
    kernels()
    assert pool_threads() == [], pool_threads()  # T = 1: no thread ever started
    vsum.threads.set_num_threads(4)               # more threads than cores, on purpose
    kernels()
    first = pool_threads()
    assert first == ["vsum-pool-1", "vsum-pool-2", "vsum-pool-3"], first
    ids = sorted(glob.glob("/proc/self/task/*"))
    for _ in range(5):
        kernels()
    assert sorted(glob.glob("/proc/self/task/*")) == ids  # the same threads: nothing started or ended
    vsum.threads.set_num_threads(2)
    assert len(pool_threads()) == 0, pool_threads()
    kernels()
    assert pool_threads() == ["vsum-pool-1"], pool_threads()
    vsum.threads.set_num_threads(2)               # same count: the pool stays
    assert pool_threads() == ["vsum-pool-1"], pool_threads()
    print("ok")
    """)
    assert out.split() == ["ok"]


@needs_proc
def test_thread_count_bounded():
    out = run_python(POOL_PROBE + """
    T = 4
    before = total_threads()  # before the first vsum call
    vsum.threads.set_num_threads(T)
    peak = peak_threads(lambda: [kernels() for _ in range(50)])
    assert len(pool_threads()) == T - 1, pool_threads()
    assert peak <= before + (T - 1) + 1, (before, peak)
    print(before, peak)
    """, timeout=600)
    before, peak = (int(v) for v in out.split())
    assert peak <= before + 4


def test_concurrent_callers_match_serial(restore_threads):
    restore_threads(3)
    rng = np.random.default_rng(7)
    big = random_boxes(rng, 700, 400, 400)
    boxes_a, boxes_b, apps, shapes = random_batch(8)
    want_iou = vsum.boxes.iou(big, big[:500])
    want_batch = vf.match_batch(boxes_a, boxes_b, apps, "lom", image_shapes=shapes, order="parallel")
    failures = []

    def iou_worker():
        for _ in range(20):
            if not np.array_equal(vsum.boxes.iou(big, big[:500]), want_iou):
                failures.append("iou")

    def batch_worker():
        for _ in range(20):
            got = vf.match_batch(boxes_a, boxes_b, apps, "lom", image_shapes=shapes, order="parallel")
            if not all(np.array_equal(g, w) for g, w in zip(got, want_batch)):
                failures.append("match_batch")

    workers = [threading.Thread(target=f, daemon=True) for f in (iou_worker, batch_worker, iou_worker, batch_worker)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert not any(w.is_alive() for w in workers), "concurrent calls did not finish (deadlock?)"
    assert failures == []


def _pool_thread_count():
    """Number of this process's threads named vsum-pool-* (None without /proc)."""
    if not HAS_PROC_TASKS:
        return None
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                count += f.read().startswith("vsum-pool-")
        except OSError:
            pass
    return count


def _child_iou(queue, boxes):
    """Child process body: parallel kernel calls at 2 and 3 threads; results and pool sizes to the parent."""
    first = vsum.boxes.iou(boxes, boxes)
    pool_2 = _pool_thread_count()
    vsum.threads.set_num_threads(3)
    second = vsum.boxes.iou(boxes, boxes)
    queue.put((first, pool_2, second, _pool_thread_count()))


@pytest.mark.skipif(sys.platform == "win32", reason="no fork on Windows")
@pytest.mark.parametrize("busy", [False, True], ids=["idle-pool", "busy-pool"])
def test_fork_child_gets_fresh_pool(restore_threads, busy):
    restore_threads(2)
    rng = np.random.default_rng(9)
    boxes = random_boxes(rng, 600, 300, 300)
    want = vsum.boxes.iou(boxes, boxes)  # the parent's pool is running
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            vsum.boxes.iou(boxes, boxes)

    spinner = threading.Thread(target=spin, daemon=True)
    if busy:  # another thread keeps the pool working while we fork
        spinner.start()
    try:
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child_iou, args=(queue, boxes))
        child.start()
        try:
            got, pool_2, got_3, pool_3 = queue.get(timeout=60)
        finally:
            child.join(timeout=60)
            if child.is_alive():
                child.kill()
    finally:
        stop.set()
        if busy:
            spinner.join(timeout=60)
    assert child.exitcode == 0
    assert np.array_equal(got, want) and np.array_equal(got_3, want)
    if HAS_PROC_TASKS:  # the child started its own workers, and resized them
        assert (pool_2, pool_3) == (1, 2)


@needs_proc
def test_a_class_run_starts_no_thread_beyond_the_pool():
    """Stages 2-5 of a synthetic class (selective search, descriptors, all pairs, warps) at T = 4: the
    process never holds more threads than before plus the pool's T - 1 (and the sampler)."""
    tests = str(Path(__file__).resolve().parent)
    out = run_python(POOL_PROBE + f"""
    sys.path.insert(0, {tests!r})
    import cv2
    from tqdm.auto import tqdm
    from synthetic import synthetic_class
    from vsum.clusters import find_summaries
    from vsum.pairs import match_class
    from vsum.proposals import selective_search

    T = 4  # more than the cores, on purpose
    vsum.threads.set_num_threads(T)
    birds = synthetic_class(5, 128, seed=0)
    # Libraries start their own threads on first use; start them here, they are not vsum's: OpenCV's pool,
    # the BLAS pool of SciPy (the whitening's Cholesky solve) and tqdm's monitor (even of a disabled bar).
    cv2.remap(birds.images[0], np.zeros((128, 128), np.float32), np.zeros((128, 128), np.float32), cv2.INTER_LINEAR)
    vsum.features.whiten(np.ones((2, vsum.features.DESC_LENGTH), np.float32))
    tqdm(total=1, disable=True).close()
    before = total_threads()
    result = {{}}

    def class_run():
        boxes = [selective_search(im, num=100)[0] for im in birds.images]
        descs = [vsum.features.describe(im, b) for im, b in zip(birds.images, boxes)]
        result["r"] = find_summaries(birds.images, boxes, descs, match_class(birds.masks, boxes, descs))

    peak = peak_threads(class_run)
    assert result["r"].counts["summaries"] >= 1 and result["r"].counts["clusters"] >= 2, result["r"].counts
    assert len(pool_threads()) == T - 1, pool_threads()
    print(before, peak)
    """, timeout=600)
    before, peak = (int(v) for v in out.split())
    assert peak <= before + 3 + 1, (before, peak)

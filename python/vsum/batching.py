"""How many images stage 1 optimises together, chosen for the device.

Batching changes nothing but speed (each image's mask receives only its own
gradient), so the batch size is a pure performance setting, and the best one
depends on the hardware:

- **CPU**: the network's activations for a whole batch should stay in the
  last-level cache.  On the 2-core development machine (32 MiB L3) with
  EfficientNet-Lite0, whose largest activation is 4.9 MB per image, one
  forward-and-backward step ran at 52 image-iterations/s at batch 4, 57 at
  batch 6 and 42 at batch 8 (fp32, the engine of :mod:`vsum.engine`; batch
  8 loses most of its speed to the allocator and the cache: glibc maps
  buffers above 32 MB afresh on every step).  The rule is
  ``floor(L3 / (1.5 * largest activation per image))``, between 1 and 8,
  which gives 4 there: on the safe side of the drop.
- **GPU**: as many images as the free memory holds, measured: one
  forward-and-backward step at batch 2 gives the memory one image costs, and
  70 % of the free memory is shared out.

Either way the kept images are then cut into as few batches as that limit
allows, with the smallest batch size that needs no more batches
(:func:`balanced_batch_size`): 9 images at most 8 per batch run as 5 + 4, not
8 + 1; 100 images at most 30 as 4 x 25.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

__all__ = [
    "CPU_BATCH_LIMIT",
    "GPU_MEMORY_SHARE",
    "balanced_batch_size",
    "cpu_batch_size",
    "gpu_batch_size",
    "largest_activation_bytes",
    "last_level_cache_bytes",
    "measure_gpu_bytes_per_image",
]

CPU_BATCH_LIMIT = 8
GPU_MEMORY_SHARE = 0.7
_FALLBACK_CACHE_BYTES = 32 * 2 ** 20
_CACHE_ROOT = Path("/sys/devices/system/cpu/cpu0/cache")


def last_level_cache_bytes(cache_root: Path = _CACHE_ROOT) -> int:
    """Size in bytes of the largest CPU cache Linux reports (32 MiB where none is reported)."""
    sizes = []
    for size_file in cache_root.glob("index*/size"):
        text = size_file.read_text().strip().upper()
        units = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}
        try:
            sizes.append(int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text))
        except (ValueError, IndexError):
            continue
    return max(sizes) if sizes else _FALLBACK_CACHE_BYTES


def largest_activation_bytes(module: torch.nn.Module, input_size: int, element_bytes: int = 4) -> int:
    """Bytes of the largest output of any leaf module for one ``(1, 3, input_size, input_size)`` image.

    Parameters
    ----------
    module : torch.nn.Module
        The network as stage 1 runs it (on the CPU).
    input_size : int
        Side of the square input in pixels.
    element_bytes : int
        4 for float32, 2 under bfloat16/float16 autocast.
    """
    largest = 0

    def record(_module, _inputs, output):
        nonlocal largest
        if isinstance(output, torch.Tensor):
            largest = max(largest, output.numel())

    hooks = [m.register_forward_hook(record) for m in module.modules() if not list(m.children())]
    try:
        parameter = next(module.parameters(), None)
        dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
        with torch.no_grad():
            module(torch.zeros(1, 3, input_size, input_size, dtype=dtype))
    finally:
        for hook in hooks:
            hook.remove()
    return largest * element_bytes


def cpu_batch_size(module: torch.nn.Module, input_size: int, precision: str = "fp32",
                   cache_bytes: int | None = None) -> int:
    """Batch for the CPU: ``floor(cache / (1.5 * largest activation))``, between 1 and :data:`CPU_BATCH_LIMIT`."""
    cache = last_level_cache_bytes() if cache_bytes is None else int(cache_bytes)
    activation = largest_activation_bytes(module, input_size, 4 if precision == "fp32" else 2)
    if activation <= 0:
        return CPU_BATCH_LIMIT
    return max(1, min(CPU_BATCH_LIMIT, int(cache // (1.5 * activation))))


def gpu_batch_size(bytes_per_image: float, free_bytes: float, images: int) -> int:
    """Batch for a GPU: :data:`GPU_MEMORY_SHARE` of ``free_bytes`` over ``bytes_per_image``, at most ``images``."""
    if bytes_per_image <= 0:
        return max(1, images)
    return max(1, min(max(1, images), int(GPU_MEMORY_SHARE * free_bytes // bytes_per_image)))


def measure_gpu_bytes_per_image(step, device: torch.device) -> float:
    """GPU memory one image costs in a stage-1 step: peak of ``step(2)`` minus peak of ``step(1)``.

    ``step(batch)`` runs one forward-and-backward of the optimisation at that
    batch size on ``device`` and frees what it made.
    """
    peaks = []
    for batch in (1, 2):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step(batch)
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
    return max(float(peaks[1] - peaks[0]), float(peaks[1]) / 2.0, 1.0)


def balanced_batch_size(images: int, limit: int) -> int:
    """The batch size that splits ``images`` into as few batches of at most ``limit`` as possible, evenly."""
    if images <= 0:
        return max(1, limit)
    batches = math.ceil(images / max(1, limit))
    return math.ceil(images / batches)

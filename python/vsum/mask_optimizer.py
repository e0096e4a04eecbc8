"""Stage 1's optimisation loop: Adam on a batch of masks for one pass, with the opt-in convergence stop.

An image whose mask has converged leaves the batch: its rows of the mask and
of Adam's state are dropped (Adam is elementwise, so the others' updates do
not change).  ``pass_config`` arguments are :class:`vsum.masks.PassConfig`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .mask_ops import autocast, mask_losses, seen_mask
from .models import Classifier

_FP16_LOSS_SCALE = 1024.0


def optimize_pass(
    classifier: Classifier,
    images: torch.Tensor,
    blurred: torch.Tensor,
    targets: torch.Tensor,
    init: torch.Tensor,
    pass_config,
    learning_rate: float = 0.1,
    on_step: Callable[[int], None] | None = None,
    precision: str = "fp32",
    labels: torch.Tensor | None = None,
    early_stop: int = 0,
    tolerance: float = 0.01,
    threshold: float = 0.5,
    pixels: float = 0.002,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run one pass of Adam on a batch of masks.

    Parameters
    ----------
    images, blurred : Tensor, shape (B, 3, S, S)
    targets : Tensor, shape (B,), int64
    init : Tensor, shape (B, 1, h, w), or (B, N) with ``labels``
        Starting mask, values in [0, 1].
    pass_config : PassConfig
    learning_rate : float
    on_step : callable, optional
        Called with the number of images stepped after every step, and once
        at the end with the steps early-stopped images skipped (progress bars
        in image-iterations).
    precision : {"fp32", "bf16", "fp16"}
        :attr:`MaskConfig.precision` (autocast of the network's passes).
    labels : Tensor, shape (B, S, S), int64, optional
        Superpixel labels: ``init`` holds one value per superpixel.
    early_stop : int
        :attr:`MaskConfig.early_stop` (0 = every image takes every step).
    tolerance : float
        :attr:`MaskConfig.early_stop_tolerance`.
    pixels : float
        :attr:`MaskConfig.early_stop_pixels`.
    threshold : float
        Saliency threshold of the binary mask the convergence stop watches.

    Returns
    -------
    mask : Tensor, shape of ``init``
        The optimised mask, clamped to [0, 1], detached.
    steps : Tensor, shape (B,), int64
        Adam steps each image took (``pass_config.iterations`` unless it
        stopped early).
    """
    batch = init.shape[0]
    final = init.detach().clone().clamp_(0.0, 1.0)
    steps = torch.full((batch,), pass_config.iterations, dtype=torch.long)
    active = torch.arange(batch, device=init.device)
    mask = final.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([mask], lr=learning_rate)
    watch = _Convergence(early_stop, tolerance, pixels, batch, init.device) if early_stop > 0 else None
    if watch is not None:
        with torch.no_grad():
            watch.previous = _binary(seen_mask(mask, images.shape[-1], pass_config, labels), threshold)
    for step in range(pass_config.iterations):
        optimizer.zero_grad(set_to_none=True)
        with autocast(images.device, precision):
            losses = mask_losses(classifier, images, blurred, mask, targets, pass_config, labels)
        # fp16 gradients of a probability underflow; Adam's step does not change when the loss is scaled
        (losses.float().sum() * (_FP16_LOSS_SCALE if precision == "fp16" else 1.0)).backward()
        optimizer.step()
        with torch.no_grad():
            mask.clamp_(0.0, 1.0)
        if on_step is not None:
            on_step(int(active.numel()))
        if watch is None:
            continue
        with torch.no_grad():
            done = watch.update(losses.detach().float(),
                                _binary(seen_mask(mask, images.shape[-1], pass_config, labels), threshold))
        if not bool(done.any()):
            continue
        final[active[done]] = mask.detach()[done]
        steps[active[done].cpu()] = step + 1
        keep = ~done
        active = active[keep]
        if active.numel() == 0:
            break
        images, blurred, targets = _rows(images, keep), _rows(blurred, keep), targets[keep]
        labels = None if labels is None else labels[keep]
        watch.keep(keep)
        mask, optimizer = _keep_rows(mask, optimizer, keep, learning_rate)
    if active.numel():
        final[active] = mask.detach()
    if on_step is not None and watch is not None:
        skipped = int((pass_config.iterations - steps).sum())
        if skipped:
            on_step(skipped)
    return final, steps


class _Convergence:
    """Per-image state of the convergence stop.

    Each image holds a reference binary mask and the steps since it was set;
    a step that moves the binary mask by more than ``pixels`` (a fraction of
    the image) from the reference makes the current mask the new reference.
    An image has converged when its reference is ``window`` steps old and the
    loss has varied by at most ``tolerance`` (relative) over those steps.
    Adam keeps a few boundary pixels flipping back and forth to the end, so
    "unchanged" allows that much.
    """

    def __init__(self, window: int, tolerance: float, pixels: float, batch: int, device):
        self.window = window
        self.tolerance = tolerance
        self.pixels = pixels
        self.age = torch.zeros(batch, dtype=torch.long, device=device)
        self.losses = torch.full((window + 1, batch), float("nan"), device=device)
        self.previous: torch.Tensor | None = None

    def update(self, losses: torch.Tensor, binary: torch.Tensor) -> torch.Tensor:
        """Record one step; returns which images have converged, shape (B_active,), bool."""
        moved = (binary != self.previous).flatten(1).float().mean(1) > self.pixels
        self.previous = torch.where(moved.view(-1, *([1] * (binary.dim() - 1))), binary, self.previous)
        self.age = torch.where(moved, torch.zeros_like(self.age), self.age + 1)
        self.losses = torch.cat([self.losses[1:], losses.view(1, -1)])
        spread = self.losses.amax(0) - self.losses.amin(0)  # NaN until the window is full
        scale = self.losses.abs().mean(0).clamp_min(1e-8)
        return (self.age >= self.window) & (spread <= self.tolerance * scale)

    def keep(self, rows: torch.Tensor) -> None:
        self.age, self.losses, self.previous = self.age[rows], self.losses[:, rows], self.previous[rows]


def _binary(seen: torch.Tensor, threshold: float) -> torch.Tensor:
    """Binary mask of a seen mask: saliency ``1 - m`` above ``threshold``."""
    return seen < 1.0 - threshold


def _rows(tensor: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``tensor[rows]``, keeping a channels-last layout."""
    picked = tensor[rows]
    if tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last):
        picked = picked.contiguous(memory_format=torch.channels_last)
    return picked


def _keep_rows(mask: torch.Tensor, optimizer: torch.optim.Adam, rows: torch.Tensor, learning_rate: float):
    """The mask parameter and its Adam state restricted to ``rows`` (Adam is elementwise, so nothing else changes)."""
    state = optimizer.state[mask]
    kept = mask.detach()[rows].clone().requires_grad_(True)
    optimizer = torch.optim.Adam([kept], lr=learning_rate)
    optimizer.state[kept] = {"step": state["step"], "exp_avg": state["exp_avg"][rows].clone(),
                             "exp_avg_sq": state["exp_avg_sq"][rows].clone()}
    return kept, optimizer

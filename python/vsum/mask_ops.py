"""Stage 1's tensor operations: the perturbation, the mask as the model sees it, the objective.

Plain functions on torch tensors, shared by the optimisation loop
(:mod:`vsum.mask_optimizer`) and the driver (:mod:`vsum.masks`, which
re-exports them).  ``pass_config`` arguments are :class:`vsum.masks.PassConfig`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._config import PRECISIONS
from .errors import VsumError
from .models import Classifier


def gaussian_kernel1d(sigma: float, size: int | None = None, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian, ``size`` taps (default ``2 * ceil(3 sigma) + 1``)."""
    if size is None:
        size = 2 * int(math.ceil(3.0 * sigma)) + 1
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    kernel = torch.exp(-0.5 * (coords / sigma) ** 2)
    return (kernel / kernel.sum()).to(dtype=dtype, device=device)


def gaussian_blur(images: torch.Tensor, sigma: float, size: int | None = None) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding.

    Parameters
    ----------
    images : Tensor, shape (B, C, H, W), float
    sigma : float
        Standard deviation in pixels.
    size : int, optional
        Kernel taps (odd); default ``2 * ceil(3 sigma) + 1``.
    """
    kernel = gaussian_kernel1d(sigma, size, images.dtype, images.device)
    channels = images.shape[1]
    pad = kernel.numel() // 2
    mode = "reflect" if pad < min(images.shape[-2:]) else "replicate"
    out = F.pad(images, (pad, pad, pad, pad), mode=mode)
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def initial_mask(batch: int, side: int, radius: float = 0.5, device=None) -> torch.Tensor:
    """The smooth pass's start: 0 (perturbed) inside a centred disc, 1 outside.

    Returns
    -------
    Tensor, shape (batch, 1, side, side), float32
        The disc has radius ``radius * side`` pixels around the image centre,
        measured between pixel centres.
    """
    coords = torch.arange(side, dtype=torch.float32, device=device) + 0.5 - side / 2.0
    dist2 = coords.view(-1, 1) ** 2 + coords.view(1, -1) ** 2
    disc = (dist2 <= (radius * side) ** 2).float()
    return (1.0 - disc).expand(batch, 1, side, side).clone()


def resample_operator(in_side: int, out_side: int, sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """1-D linear map "upsample bilinearly, then Gaussian-blur" as a matrix.

    Bilinear upsampling (``align_corners=False``) and the reflect-padded
    Gaussian blur of :func:`gaussian_blur` are both separable linear maps, so
    applying them to a mask equals ``K.T @ mask @ K`` with this ``K``. Two
    small matrix products replace a 31-tap depthwise convolution, which is
    slow in forward and backward on the CPU.

    Returns
    -------
    Tensor, shape (in_side, out_side)
        Row ``i`` is the output signal of the unit impulse at input ``i``.
    """
    basis = torch.eye(in_side, dtype=torch.float64).unsqueeze(0)  # (1, n_in, n_in): channel i = e_i
    rows = basis if in_side == out_side else F.interpolate(basis, size=out_side, mode="linear", align_corners=False)
    if sigma > 0:
        kernel = gaussian_kernel1d(sigma, dtype=torch.float64)
        pad = kernel.numel() // 2
        mode = "reflect" if pad < out_side else "replicate"
        rows = F.conv1d(F.pad(rows.transpose(0, 1), (pad, pad), mode=mode), kernel.view(1, 1, -1)).transpose(0, 1)
    return rows.squeeze(0).to(dtype=dtype, device=device)


_OPERATORS: dict[tuple, torch.Tensor] = {}


def mask_as_seen(mask: torch.Tensor, input_size: int, pass_config) -> torch.Tensor:
    """The optimised mask as the model sees it: upsampled and blurred per the pass.

    Parameters
    ----------
    mask : Tensor, shape (B, 1, h, h)
    input_size : int
    pass_config : PassConfig

    Returns
    -------
    Tensor, shape (B, 1, input_size, input_size)
    """
    side = mask.shape[-1]
    if side == input_size and pass_config.mask_blur_sigma <= 0:
        return mask
    key = (side, input_size, float(pass_config.mask_blur_sigma), mask.dtype, mask.device)
    operator = _OPERATORS.get(key)
    if operator is None:
        operator = resample_operator(side, input_size, pass_config.mask_blur_sigma, mask.dtype, mask.device)
        _OPERATORS[key] = operator
    return operator.t() @ mask @ operator


def total_variation(mask: torch.Tensor, beta: float) -> torch.Tensor:
    """``TV_beta`` per image: mean ``|dy|^beta`` + mean ``|dx|^beta``; shape (B,)."""
    dy = (mask[:, :, 1:, :] - mask[:, :, :-1, :]).abs().pow(beta).flatten(1).mean(1)
    dx = (mask[:, :, :, 1:] - mask[:, :, :, :-1]).abs().pow(beta).flatten(1).mean(1)
    return dy + dx


def autocast(device: torch.device, precision: str = "fp32"):
    """``torch.autocast`` for :attr:`MaskConfig.precision` on ``device`` (disabled for ``"fp32"``).

    Raises
    ------
    VsumError
        The precision is unknown or unavailable on the device (fp16 on a CPU).
    """
    if precision not in PRECISIONS:
        raise VsumError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    device = torch.device(device)
    if precision == "fp16" and device.type == "cpu":
        raise VsumError("--precision fp16 needs a GPU; on the CPU use --precision bf16")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype, enabled=precision != "fp32")


def target_probability(classifier: Classifier, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Softmax probability of each image's target class; shape (B,), float32."""
    probs = torch.softmax(classifier.logits(images).float(), dim=1)
    return probs.gather(1, targets.view(-1, 1)).squeeze(1)


def superpixel_mask(values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The per-pixel mask of per-superpixel values.

    Parameters
    ----------
    values : Tensor, shape (B, N), float
        One mask value per superpixel (rows padded to the batch's largest ``N``).
    labels : Tensor, shape (B, S, S), int64
        Each pixel's superpixel, in ``[0, N)``.

    Returns
    -------
    Tensor, shape (B, 1, S, S)
    """
    return values.gather(1, labels.flatten(1)).view(labels.shape[0], 1, *labels.shape[1:])


def seen_mask(mask: torch.Tensor, input_size: int, pass_config,
              labels: torch.Tensor | None = None) -> torch.Tensor:
    """The mask the model sees, shape (B, 1, S, S): :func:`mask_as_seen`, or :func:`superpixel_mask` with ``labels``."""
    return mask_as_seen(mask, input_size, pass_config) if labels is None else superpixel_mask(mask, labels)


def mask_losses(
    classifier: Classifier,
    images: torch.Tensor,
    blurred: torch.Tensor,
    mask: torch.Tensor,
    targets: torch.Tensor,
    pass_config,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-image stage-1 objective.

    Parameters
    ----------
    images, blurred : Tensor, shape (B, 3, S, S), float32 in [0, 1]
        The input and its blurred copy.
    mask : Tensor, shape (B, 1, h, w) or (B, N), float32 in [0, 1]
        The optimised mask (``h = S // downsample``), or one value per
        superpixel when ``labels`` is given.
    targets : Tensor, shape (B,), int64
    pass_config : PassConfig
    labels : Tensor, shape (B, S, S), int64, optional
        Superpixel of each pixel (the superpixel variant); the regularisers
        then act on the per-pixel mask the model sees.

    Returns
    -------
    Tensor, shape (B,)
        ``p_c(x_m) + l1 mean|1-m| + tv TV_beta(m) + lasso mean(m(1-m))``.
    """
    seen = seen_mask(mask, images.shape[-1], pass_config, labels)
    perturbed = seen * images + (1.0 - seen) * blurred
    loss = target_probability(classifier, perturbed, targets)
    regularised = mask if labels is None else seen
    loss = loss + pass_config.l1 * (1.0 - regularised).abs().flatten(1).mean(1)
    loss = loss + pass_config.tv * total_variation(regularised, pass_config.tv_beta)
    if pass_config.lasso:
        loss = loss + pass_config.lasso * (regularised * (1.0 - regularised)).flatten(1).mean(1)
    return loss

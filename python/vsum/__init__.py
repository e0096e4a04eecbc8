"""visual-summaries: what an image classifier relies on for a whole class.

``vsum.summarize(images, model, target=..., out=...)`` runs one class end to
end (:func:`vsum.pipeline.summarize`; ``vsum summarize`` on the command
line).  The package has one module per stage (``docs/architecture.md`` in
the repository; the method is ``docs/method.md``):

- :mod:`vsum.models`    - model registry and loading (offline EfficientNet-Lite,
  torchvision architectures, any ``torch.nn.Module``)
- :mod:`vsum.masks`     - stage 1, batched crisp saliency masks (torch)
- :mod:`vsum.proposals` - stage 2, graph segmentation and selective search
- :mod:`vsum.features`  - stage 3, HOG descriptors and whitened appearance
- :mod:`vsum.flow`      - stage 4 for one pair: NAM / PHM / LOM, dense flow, warps
- :mod:`vsum.pairs`     - stage 4 for a class: all pairs, bounded memory
- :mod:`vsum.clusters`  - stage 5: pruning, affinity propagation, SSIM rules
- :mod:`vsum.render`, :mod:`vsum.report` - summary pictures, ``report.html``
- :mod:`vsum.pipeline`  - one class in a resumable run directory
- :mod:`vsum.threads`   - the thread count of the compiled core (and torch)

Importing :mod:`vsum` is cheap and does not import torch: only the modules
of stage 1 and the pipeline do, when they are imported.
"""

from ._version import __version__
from .errors import VsumError

__all__ = ["VsumError", "__version__", "get_num_threads", "set_num_threads", "summarize"]


def __getattr__(name: str):
    # vsum.summarize is vsum.pipeline.summarize, imported on first use (the pipeline imports torch).
    if name == "summarize":
        from .pipeline import summarize

        return summarize
    if name in ("get_num_threads", "set_num_threads"):
        from . import threads

        return getattr(threads, name)
    raise AttributeError(f"module 'vsum' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

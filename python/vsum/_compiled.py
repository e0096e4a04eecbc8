"""The compiled core :mod:`vsum._core`, imported once with an actionable error.

Modules that call compiled kernels do ``from ._compiled import _core``.
"""

try:
    from . import _core
except ImportError as exc:  # pragma: no cover - only without a built extension
    raise ImportError(
        "vsum._core, the compiled core of visual-summaries, could not be imported "
        f"({exc}). Install the package with `pip install .` rather than using the "
        "source tree directly."
    ) from exc

__all__ = ["_core"]

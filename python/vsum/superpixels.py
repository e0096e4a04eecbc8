"""SLIC superpixels for the superpixel variant of stage 1 (``MaskConfig.superpixels``).

The variant optimises one mask value per superpixel instead of one per pixel
in the sharp pass, so the mask follows the image's own edges.  Superpixels
come from scikit-image's SLIC on the image as the model sees it (resized
whole to the input size).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["segment_means", "slic_labels"]


def slic_labels(pixels: np.ndarray, segments: int, compactness: float = 10.0) -> np.ndarray:
    """SLIC superpixels of one image, labelled ``0 .. n - 1`` without gaps.

    Parameters
    ----------
    pixels : ndarray, shape (S, S, 3), uint8
        The image at the model's input size.
    segments : int
        Approximate number of superpixels (SLIC's ``n_segments``).
    compactness : float
        SLIC's balance of colour against position.

    Returns
    -------
    ndarray, shape (S, S), int64
        Each pixel's superpixel; ``labels.max() + 1`` superpixels in all.
    """
    from skimage.segmentation import slic

    if segments < 1:
        raise ValueError(f"superpixels must be >= 1; got {segments}")
    labels = slic(np.asarray(pixels, dtype=np.float64) / 255.0, n_segments=int(segments),
                  compactness=compactness, start_label=0, channel_axis=-1)
    _, dense = np.unique(labels, return_inverse=True)
    return dense.reshape(labels.shape).astype(np.int64)


def segment_means(values: torch.Tensor, labels: torch.Tensor, count: int) -> torch.Tensor:
    """Mean of a per-pixel map over each superpixel.

    Parameters
    ----------
    values : Tensor, shape (B, 1, S, S), float
        Per-pixel values (the smooth pass's mask as the model saw it).
    labels : Tensor, shape (B, S, S), int64
        Superpixel of each pixel, in ``[0, count)``.
    count : int
        Superpixels per row of the result (the batch's largest count).

    Returns
    -------
    Tensor, shape (B, count), float
        Means; superpixels absent from an image (padding) get 1, "keep".
    """
    flat_labels = labels.flatten(1)
    flat_values = values.flatten(1).to(torch.float32)
    sums = torch.zeros(labels.shape[0], count, dtype=torch.float32, device=values.device)
    sizes = torch.zeros_like(sums)
    sums.scatter_add_(1, flat_labels, flat_values)
    sizes.scatter_add_(1, flat_labels, torch.ones_like(flat_values))
    return torch.where(sizes > 0, sums / sizes.clamp_min(1.0), torch.ones_like(sums)).to(values.dtype)

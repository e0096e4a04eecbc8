"""The two ways an image becomes a model input.

- :func:`eval_crop`: the standard ImageNet evaluation transform, used to
  *classify* (short side resized to ``input_size / 0.875``, centre crop).
- :func:`resize_whole`: the whole picture squashed to ``input_size x
  input_size``, used by stage 1 so that no part of the object is cut away
  (as the method does).

Both take ``(H, W, 3) uint8`` RGB arrays and return ``(3, S, S) float32``
tensors in [0, 1]; normalisation is the model's business
(:meth:`vsum.models.Classifier.normalize`).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

#: Fraction of the resized short side kept by the evaluation centre crop.
CROP_FRACTION = 0.875


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255.0)


def resize_whole(rgb: np.ndarray, input_size: int) -> torch.Tensor:
    """Resize the whole image (aspect not kept) to ``input_size`` squared.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    input_size : int
        Side of the square model input in pixels.

    Returns
    -------
    Tensor, shape (3, input_size, input_size), float32 in [0, 1]
    """
    img = Image.fromarray(rgb).resize((input_size, input_size), Image.Resampling.BILINEAR)
    return _to_tensor(np.asarray(img))


def eval_crop(rgb: np.ndarray, input_size: int, crop_fraction: float = CROP_FRACTION) -> torch.Tensor:
    """Standard evaluation preprocessing: resize the short side, centre crop.

    The short side is resized (bilinear, antialiased) to
    ``round(input_size / crop_fraction)`` pixels, aspect kept, then the
    central ``input_size`` square is cut out.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    input_size : int
    crop_fraction : float
        0.875 gives the usual 256 -> 224 (and 342 -> 299) resize.

    Returns
    -------
    Tensor, shape (3, input_size, input_size), float32 in [0, 1]
    """
    h, w = rgb.shape[:2]
    short = int(round(input_size / crop_fraction))
    if h <= w:
        size = (max(short, int(round(w * short / h))), short)
    else:
        size = (short, max(short, int(round(h * short / w))))
    img = Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR)
    left = (size[0] - input_size) // 2
    top = (size[1] - input_size) // 2
    img = img.crop((left, top, left + input_size, top + input_size))
    return _to_tensor(np.asarray(img))

"""Summary images (stage 5, step 7): member views, grids, crop strips, PNG output.

:func:`render_summaries` draws every picture of a stage-5 result.

Every function takes and returns ``uint8`` RGB arrays (``(H, W, 3)``, channel
order R, G, B); grey ``(H, W)`` inputs are accepted where noted and repeated
over the three channels.  Boxes are ``(x1, y1, x2, y2)`` with inclusive pixel
corners (x = column, y = row), as in :mod:`vsum.boxes`.  Drawing, contours,
convex hulls and resizing use OpenCV; lines are drawn without anti-aliasing so
that every drawn pixel has exactly the documented colour.

Importing this module does not import torch.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import numpy as np

from ._arrays import as_image, as_mask
from .io import atomic_write_png

__all__ = [
    "GREY_LEVEL",
    "HULL_COLOR",
    "CONTOUR_COLOR",
    "BOX_COLOR",
    "EXEMPLAR_COLOR",
    "MemberRegion",
    "member_region",
    "member_view",
    "summary_grid",
    "crop_strip",
    "cluster_overview",
    "save_png",
    "render_summaries",
]

#: Value every channel of a pixel outside the kept region is set to.
GREY_LEVEL = 64
#: Outline of the convex hull of the mask inside the proposal.
HULL_COLOR = (255, 0, 0)
#: Contours of the mask regions that meet the proposal.
CONTOUR_COLOR = (0, 255, 255)
#: Proposal boxes in :func:`cluster_overview`.
BOX_COLOR = (255, 255, 0)
#: Frame around the exemplar's cell (first cell) of a grid, and its box in overviews.
EXEMPLAR_COLOR = (255, 128, 0)

_BACKGROUND = (255, 255, 255)
_TEXT_COLOR = (0, 0, 0)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.4
_FONT_THICKNESS = 1


# --------------------------------------------------------------------------- input checks


def _as_box(box, name: str = "box") -> np.ndarray:
    """``(4,)`` integer ``(x1, y1, x2, y2)`` with ``x1 <= x2``, ``y1 <= y2`` -> int64 ``(4,)``."""
    try:
        arr = np.asarray(box)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be 4 integers (x1, y1, x2, y2); could not convert it: {exc}") from None
    if arr.shape != (4,):
        raise ValueError(f"{name} must have shape (4,), (x1, y1, x2, y2); got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.floor(arr)).any():
            raise ValueError(f"{name} must hold integer pixel coordinates; got {arr.tolist()}")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integer pixel coordinates; got dtype {arr.dtype}")
    if np.abs(arr).max() > 2**31:
        raise ValueError(f"{name} coordinates are out of range: {arr.tolist()}")
    arr = arr.astype(np.int64)
    x1, y1, x2, y2 = arr.tolist()
    if x2 < x1 or y2 < y1:
        raise ValueError(f"{name} = {arr.tolist()} is degenerate: need x1 <= x2 and y1 <= y2 (inclusive corners)")
    return arr


def _clip_box(box: np.ndarray, h: int, w: int) -> tuple[int, int, int, int] | None:
    """Inclusive box clipped to a ``(h, w)`` image, or None when nothing of it is inside."""
    x1, y1, x2, y2 = box.tolist()
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w - 1), min(y2, h - 1)
    if x1 > x2 or y1 > y2:
        return None
    return x1, y1, x2, y2


def _check_color(color, name: str) -> tuple[int, int, int]:
    try:
        c = tuple(int(v) for v in color)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an (R, G, B) triple of ints in 0-255; got {color!r}") from None
    if len(c) != 3 or not all(0 <= v <= 255 for v in c):
        raise ValueError(f"{name} must be an (R, G, B) triple of ints in 0-255; got {color!r}")
    return c


def _auto_thickness(h: int, w: int) -> int:
    """Line width in pixels that stays visible once a view is shrunk to a ~200 px grid cell."""
    return max(1, round(max(h, w) / 300))


def _check_thickness(thickness, h: int, w: int) -> int:
    if thickness is None:
        return _auto_thickness(h, w)
    if isinstance(thickness, bool) or not isinstance(thickness, (int, np.integer)) or thickness < 1:
        raise ValueError(f"thickness must be a positive int or None (automatic); got {thickness!r}")
    return int(thickness)


# --------------------------------------------------------------------------- member views


class MemberRegion(NamedTuple):
    """What :func:`member_view` keeps and draws for one member.

    Attributes
    ----------
    keep : ndarray, shape (H, W), bool
        Pixels shown in their original colour: ``regions | hull area`` (or the
        clipped box when the mask has no pixel inside it, see
        :func:`member_region`).
    regions : ndarray, shape (H, W), bool
        The 8-connected components of the mask that have at least one pixel
        inside the (clipped) proposal box, whole (also their parts outside
        the box).
    hull : ndarray, shape (k, 2), int32
        Vertices ``(x, y)`` of the convex hull of the mask pixels inside the
        box, in drawing order; ``k`` is 1 or 2 for a point or segment.  When
        the mask has no pixel inside the box, the four corners of the clipped
        box; empty ``(0, 2)`` when the box lies entirely outside the image.
    box : tuple of 4 int or None
        The proposal clipped to the image, inclusive ``(x1, y1, x2, y2)``;
        None when it lies entirely outside the image.
    """

    keep: np.ndarray
    regions: np.ndarray
    hull: np.ndarray
    box: tuple[int, int, int, int] | None


def _row_extremes(inside: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """Leftmost and rightmost pixel ``(x, y)`` of every non-empty row: enough for the hull."""
    rows = np.flatnonzero(inside.any(axis=1))
    sub = inside[rows]
    left = sub.argmax(axis=1)
    right = sub.shape[1] - 1 - sub[:, ::-1].argmax(axis=1)
    ys = rows + y0
    pts = np.concatenate([np.stack([left + x0, ys], axis=1), np.stack([right + x0, ys], axis=1)])
    return pts.astype(np.int32)


def member_region(mask, box) -> MemberRegion:
    """The region a member view keeps: mask regions meeting the box, plus the hull inside it.

    Parameters
    ----------
    mask : (H, W) array-like of bool
        The member image's binary saliency mask (integer dtypes: nonzero =
        salient).
    box : (4,) array-like of int
        The member's proposal ``(x1, y1, x2, y2)``, inclusive corners, in
        pixels of the same image.  Parts outside the image are clipped away.

    Returns
    -------
    MemberRegion
        ``keep``, ``regions``, ``hull`` and the clipped ``box``.

    Notes
    -----
    * Mask regions are the 8-connected components of ``mask``; a region is
      kept whole when any of its pixels lies inside the clipped box.
    * The hull is the convex hull of the pixel centres of ``mask & box``,
      rasterised by :func:`cv2.fillConvexPoly` (boundary pixels included).
    * Empty mask inside the box (clear choice): no region meets the box and
      there is no hull, so the clipped box itself is kept and its outline takes
      the hull's place (``hull`` = its four corners).  The view then shows the
      proposal on a greyed image rather than a fully grey picture.
    * Box entirely outside the image: nothing is kept (``keep`` all False,
      ``hull`` empty, ``box`` None).
    """
    m = as_mask(mask, "mask")
    h, w = m.shape
    if h == 0 or w == 0:
        raise ValueError(f"mask must not be empty; got shape {m.shape}")
    b = _as_box(box)
    clipped = _clip_box(b, h, w)
    regions = np.zeros((h, w), dtype=bool)
    if clipped is None:
        return MemberRegion(regions.copy(), regions, np.zeros((0, 2), np.int32), None)
    x1, y1, x2, y2 = clipped
    inside = m[y1:y2 + 1, x1:x2 + 1]
    keep_u8 = np.zeros((h, w), dtype=np.uint8)
    if not inside.any():
        hull = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.int32)
        keep_u8[y1:y2 + 1, x1:x2 + 1] = 1
        return MemberRegion(keep_u8.astype(bool), regions, hull, clipped)
    _, labels = cv2.connectedComponents(m.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    met = np.unique(labels[y1:y2 + 1, x1:x2 + 1][inside])
    regions = np.isin(labels, met)
    hull = cv2.convexHull(_row_extremes(inside, x1, y1)).reshape(-1, 2).astype(np.int32)
    cv2.fillConvexPoly(keep_u8, hull, 1, lineType=cv2.LINE_8)
    return MemberRegion(regions | keep_u8.astype(bool), regions, hull, clipped)


def member_view(image, mask, box, *, thickness: int | None = None) -> np.ndarray:
    """One summary member as the method shows it (``docs/method.md``, stage 5, step 7).

    The whole image, greyed outside the union of (a) the member's mask regions
    that meet its proposal and (b) the convex hull of the mask inside the
    proposal; the hull outline drawn in red, the region contours in cyan.

    Parameters
    ----------
    image : (H, W, 3) array-like of uint8
        The member's image, RGB (a grey ``(H, W)`` image is repeated to RGB).
    mask : (H, W) array-like of bool
        Its binary saliency mask (integer dtypes: nonzero = salient).
    box : (4,) array-like of int
        Its proposal ``(x1, y1, x2, y2)``, inclusive corners, in pixels;
        clipped to the image.
    thickness : int, optional
        Line width in pixels of the outlines.  Default: ``max(1,
        round(max(H, W) / 300))``, so that lines stay visible once the view is
        shrunk into a grid cell.

    Returns
    -------
    view : (H, W, 3) ndarray of uint8
        A new array (the input is not modified):

        * pixels outside :func:`member_region`'s ``keep`` have every channel
          **replaced** by ``GREY_LEVEL`` (64), not blended;
        * pixels inside it keep their original colour, except where lines are
          drawn;
        * contours of the kept mask regions (outer borders and hole borders,
          :func:`cv2.findContours`) in ``CONTOUR_COLOR`` (0, 255, 255);
        * then the hull outline on top in ``HULL_COLOR`` (255, 0, 0), so red
          wins where the two coincide (the hull is the one closed outline of
          the proposal's part).

        With ``thickness == 1`` every drawn pixel lies inside the kept region
        (contours on region border pixels, the hull on its rasterised area).
        Empty mask inside the box: the clipped box is kept and outlined in red,
        no contours.  Box entirely outside the image: the whole image greyed,
        nothing drawn.

    Raises
    ------
    ValueError
        Wrong shapes or dtypes, a mask of another size than the image, a
        degenerate box (``x2 < x1`` or ``y2 < y1``), a bad thickness.

    Examples
    --------
    >>> image = np.full((20, 30, 3), 150, np.uint8)
    >>> mask = np.zeros((20, 30), bool); mask[5:10, 5:10] = True
    >>> view = member_view(image, mask, (0, 0, 7, 7))
    >>> view.shape, view.dtype, view[15, 25].tolist(), view[5, 5].tolist()
    ((20, 30, 3), dtype('uint8'), [64, 64, 64], [255, 0, 0])
    """
    rgb = as_image(image, "image")
    h, w = rgb.shape[:2]
    m = as_mask(mask, "mask", shape=(h, w))
    t = _check_thickness(thickness, h, w)
    region = member_region(m, box)
    out = rgb.copy()
    out[~region.keep] = GREY_LEVEL
    if region.regions.any():
        contours, _ = cv2.findContours(region.regions.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, CONTOUR_COLOR, thickness=t, lineType=cv2.LINE_8)
    if len(region.hull):
        cv2.polylines(out, [region.hull.reshape(-1, 1, 2)], True, HULL_COLOR, thickness=t, lineType=cv2.LINE_8)
    return out


# --------------------------------------------------------------------------- layout helpers


def _cell_size(cell) -> tuple[int | None, int | None]:
    """``(height, width)`` of a grid cell; ``width`` None: chosen from the views."""
    if isinstance(cell, (int, np.integer)) and not isinstance(cell, bool):
        if cell < 1:
            raise ValueError(f"cell height must be >= 1 pixel; got {cell}")
        return int(cell), None
    try:
        ch, cw = (int(v) for v in cell)
    except (TypeError, ValueError):
        raise ValueError(f"cell must be a height (int) or a (height, width) pair of ints; got {cell!r}") from None
    if ch < 1 or cw < 1:
        raise ValueError(f"cell (height, width) must be >= 1 pixel each; got {cell!r}")
    return ch, cw


def _fit(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize keeping the aspect ratio so that the image fits in ``height x width``."""
    h, w = rgb.shape[:2]
    at_full_height = max(1, round(w * height / h))
    if at_full_height <= width:  # height is the limit (rounded, so that it is met exactly)
        nh, nw = height, at_full_height
    else:
        nh, nw = min(height, max(1, round(h * width / w))), width
    if (nh, nw) == (h, w):
        return rgb
    interp = cv2.INTER_AREA if nh < h else cv2.INTER_LINEAR
    return cv2.resize(rgb, (nw, nh), interpolation=interp)


def _letterbox(rgb: np.ndarray, height: int, width: int, background) -> np.ndarray:
    """``rgb`` fitted into a ``height x width`` canvas, centred."""
    fitted = _fit(rgb, height, width)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = background
    top = (height - fitted.shape[0]) // 2
    left = (width - fitted.shape[1]) // 2
    canvas[top:top + fitted.shape[0], left:left + fitted.shape[1]] = fitted
    return canvas


def _ascii_label(text) -> list[str]:
    """Lines of ``text`` with every character OpenCV's Hershey fonts cannot draw replaced by '?'."""
    if text is None:
        return []
    s = str(text)
    lines = s.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return ["".join(c if " " <= c <= "~" else "?" for c in line) for line in lines]


def _fit_text(line: str, width: int) -> str:
    """``line`` cut (ending in '..') so that it fits ``width`` pixels."""
    def text_width(s: str) -> int:
        return cv2.getTextSize(s, _FONT, _FONT_SCALE, _FONT_THICKNESS)[0][0]

    if text_width(line) <= width:
        return line
    lo, hi = 0, len(line)
    while lo < hi:  # longest prefix whose cut version fits
        mid = (lo + hi + 1) // 2
        if text_width(line[:mid] + "..") <= width:
            lo = mid
        else:
            hi = mid - 1
    return line[:lo] + ".." if lo or text_width("..") <= width else ""


def _line_height() -> int:
    (_, th), base = cv2.getTextSize("Ag", _FONT, _FONT_SCALE, _FONT_THICKNESS)
    return th + base + 3


def _draw_label(canvas: np.ndarray, lines: list[str], x: int, y: int, width: int) -> None:
    step = _line_height()
    (_, th), _ = cv2.getTextSize("Ag", _FONT, _FONT_SCALE, _FONT_THICKNESS)
    for k, line in enumerate(lines):
        text = _fit_text(line, width)
        if text:
            cv2.putText(canvas, text, (x, y + k * step + th + 1), _FONT, _FONT_SCALE, _TEXT_COLOR,
                        _FONT_THICKNESS, cv2.LINE_AA)


def _check_pad(pad, name: str = "pad") -> int:
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ValueError(f"{name} must be an int >= 0 (pixels); got {pad!r}")
    return int(pad)


# --------------------------------------------------------------------------- grids and strips


def summary_grid(
    views: Sequence,
    *,
    columns: int = 5,
    cell=(200, 200),
    labels: Sequence | None = None,
    pad: int = 4,
    highlight_first: bool = True,
    background=_BACKGROUND,
) -> np.ndarray:
    """Member views of one summary in a grid, the exemplar first.

    Parameters
    ----------
    views : sequence of (H_i, W_i, 3) or (H_i, W_i) array-like of uint8
        The images, in display order (row by row); by convention
        ``views[0]`` is the exemplar's.  Sizes may differ.
    columns : int, default 5
        Cells per row; the grid has ``ceil(n / columns)`` rows and
        ``min(n, columns)`` columns.
    cell : int or (int, int), default (200, 200)
        ``(height, width)`` of a cell in pixels: every view is resized keeping
        its aspect ratio to fit it (downscaled with area averaging, upscaled
        bilinearly) and centred on the background (letterboxed).  A single
        int is the cell height; the width is then the widest view at that
        height, so every view is shown at exactly that height.
    labels : sequence of str or None, optional
        One per view (None or "" for none), drawn in black under the cell, for
        example ``"img_0042.jpg\\nsim 0.83"``.  ``"\\n"`` starts a new line;
        characters outside printable ASCII are drawn as ``?`` (OpenCV fonts
        have no others) and lines too long for the cell are cut with ``..``.
        The label band is as tall as the longest label needs.
    pad : int, default 4
        Pixels of background around and between cells.
    highlight_first : bool, default True
        Frame the first cell in ``EXEMPLAR_COLOR`` (drawn in the padding, so
        only when ``pad > 0``).
    background : (R, G, B), default white

    Returns
    -------
    grid : (rows * (ch + lh + pad) + pad, cols * (cw + pad) + pad, 3) ndarray of uint8
        ``ch, cw`` the cell size, ``lh`` the label band height (0 without
        labels).

    Raises
    ------
    ValueError
        No views, a view that is not uint8 ``(H, W, 3)`` / ``(H, W)`` or is
        empty, ``len(labels) != len(views)``, bad ``columns``, ``cell`` or
        ``pad``.
    """
    if isinstance(views, np.ndarray) and views.ndim == 4:  # a stack of equal-size views
        views = list(views)
    if isinstance(views, np.ndarray) or not isinstance(views, Sequence):
        raise ValueError("views must be a list of images ((H, W, 3) uint8 arrays)")
    if len(views) == 0:
        raise ValueError("views is empty: a grid needs at least one image")
    rgbs = [as_image(v, f"views[{i}]") for i, v in enumerate(views)]
    if isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 1:
        raise ValueError(f"columns must be an int >= 1; got {columns!r}")
    pad = _check_pad(pad)
    bg = _check_color(background, "background")
    ch, cw = _cell_size(cell)
    if cw is None:
        cw = max(max(1, round(v.shape[1] * ch / v.shape[0])) for v in rgbs)
    if labels is not None:
        if isinstance(labels, str) or len(labels) != len(rgbs):
            raise ValueError(f"labels must be a sequence of one label per view ({len(rgbs)}); got {labels!r:.80}")
        label_lines = [_ascii_label(t) for t in labels]
    else:
        label_lines = [[] for _ in rgbs]
    nlines = max(len(x) for x in label_lines)
    lh = nlines * _line_height() + (2 if nlines else 0)

    n = len(rgbs)
    cols = min(n, int(columns))
    rows = math.ceil(n / cols)
    grid = np.empty((rows * (ch + lh + pad) + pad, cols * (cw + pad) + pad, 3), dtype=np.uint8)
    grid[:] = bg
    for i, (rgb, lines) in enumerate(zip(rgbs, label_lines)):
        r, c = divmod(i, cols)
        y = pad + r * (ch + lh + pad)
        x = pad + c * (cw + pad)
        grid[y:y + ch, x:x + cw] = _letterbox(rgb, ch, cw, bg)
        if lines:
            _draw_label(grid, lines, x, y + ch + 1, cw)
    if highlight_first and pad > 0:
        t = min(pad, 2)
        y0, x0 = pad - t, pad - t
        grid[y0:pad, x0:pad + cw + t] = EXEMPLAR_COLOR
        grid[pad + ch + lh:pad + ch + lh + t, x0:pad + cw + t] = EXEMPLAR_COLOR
        grid[y0:pad + ch + lh + t, x0:pad] = EXEMPLAR_COLOR
        grid[y0:pad + ch + lh + t, pad + cw:pad + cw + t] = EXEMPLAR_COLOR
    return grid


def crop_strip(crops: Sequence, height: int = 64, pad: int = 2, *, background=_BACKGROUND) -> np.ndarray:
    """The exemplar-aligned crops of one summary side by side, at one height.

    Parameters
    ----------
    crops : sequence of (h_i, w_i, 3) or (h_i, w_i) array-like of uint8
        The crops in display order (grey crops are repeated to RGB), e.g. the
        members warped onto the exemplar and cut to the exemplar's box.
    height : int, default 64
        Height of every crop in the strip, pixels; each keeps its aspect
        ratio (width ``max(1, round(w_i * height / h_i))``).
    pad : int, default 2
        Pixels of background around and between crops.
    background : (R, G, B), default white

    Returns
    -------
    strip : (height + 2 * pad, sum(widths) + (n + 1) * pad, 3) ndarray of uint8

    Raises
    ------
    ValueError
        No crops, a crop that is not uint8 ``(h, w, 3)`` / ``(h, w)`` or is
        empty, ``height < 1`` or ``pad < 0``.
    """
    if isinstance(crops, np.ndarray) or not isinstance(crops, Sequence):
        raise ValueError("crops must be a list of images ((h, w, 3) or (h, w) uint8 arrays)")
    if len(crops) == 0:
        raise ValueError("crops is empty: a strip needs at least one crop")
    if isinstance(height, bool) or not isinstance(height, (int, np.integer)) or height < 1:
        raise ValueError(f"height must be an int >= 1 (pixels); got {height!r}")
    pad = _check_pad(pad)
    bg = _check_color(background, "background")
    rgbs = [as_image(c, f"crops[{i}]") for i, c in enumerate(crops)]
    widths = [max(1, round(c.shape[1] * height / c.shape[0])) for c in rgbs]
    strip = np.empty((height + 2 * pad, sum(widths) + (len(rgbs) + 1) * pad, 3), dtype=np.uint8)
    strip[:] = bg
    x = pad
    for rgb, w in zip(rgbs, widths):
        if rgb.shape[:2] != (height, w):
            interp = cv2.INTER_AREA if height < rgb.shape[0] else cv2.INTER_LINEAR
            rgb = cv2.resize(rgb, (w, height), interpolation=interp)
        strip[pad:pad + height, x:x + w] = rgb
        x += w + pad
    return strip


def cluster_overview(
    images: Sequence,
    boxes,
    *,
    labels: Sequence | None = None,
    scores: Sequence | None = None,
    exemplar: int = 0,
    columns: int = 5,
    cell=(160, 320),
    pad: int = 4,
    thickness: int | None = None,
) -> np.ndarray:
    """Debugging picture of one cluster before filtering: every member's image with its box, and its crop.

    Each cell shows the member's whole image with its proposal outlined
    (``EXEMPLAR_COLOR`` for the exemplar, ``BOX_COLOR`` otherwise) and, to its
    right, the box's crop letterboxed into a square as tall as the image.
    The exemplar's cell comes first, the others keep their order.

    Parameters
    ----------
    images : sequence of (H_i, W_i, 3) array-like of uint8
        Member images (grey ``(H_i, W_i)`` accepted).
    boxes : (n, 4) array-like of int
        Member proposals ``(x1, y1, x2, y2)``, inclusive corners, one per
        image; clipped to the image (a box entirely outside gives a grey crop).
    labels : sequence of str, optional
        One per member (e.g. the image name); see :func:`summary_grid` for
        how text is drawn.
    scores : sequence of float, optional
        One per member (e.g. similarity to the exemplar or SSIM), appended to
        the label on its own line as ``"s=0.823"`` (``"s=nan"`` for
        non-finite values); the exemplar's label ends with ``"(exemplar)"``.
    exemplar : int, default 0
        Index of the exemplar in ``images``.
    columns, cell, pad
        As in :func:`summary_grid`; the default cell is twice as wide as tall
        to fit image + crop.
    thickness : int, optional
        Box outline width per image; default as in :func:`member_view`.

    Returns
    -------
    overview : ndarray of uint8, shape as :func:`summary_grid` returns

    Raises
    ------
    ValueError
        Mismatched lengths, bad images or boxes, ``exemplar`` out of range.
    """
    if isinstance(images, np.ndarray) or not isinstance(images, Sequence):
        raise ValueError("images must be a list of images ((H, W, 3) uint8 arrays)")
    n = len(images)
    if n == 0:
        raise ValueError("images is empty: a cluster overview needs at least one member")
    try:
        box_arr = np.asarray(boxes)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"boxes must be an array-like of shape ({n}, 4); could not convert it: {exc}") from None
    if box_arr.shape != (n, 4):
        raise ValueError(f"boxes must have shape (len(images), 4) = ({n}, 4); got {box_arr.shape}")
    for name, seq in (("labels", labels), ("scores", scores)):
        if seq is not None and (isinstance(seq, str) or len(seq) != n):
            raise ValueError(f"{name} must have one entry per image ({n})")
    if isinstance(exemplar, bool) or not isinstance(exemplar, (int, np.integer)) or not 0 <= exemplar < n:
        raise ValueError(f"exemplar must be an index in [0, {n}); got {exemplar!r}")

    panels, texts = [], []
    for i in range(n):
        rgb = as_image(images[i], f"images[{i}]")
        box = _as_box(box_arr[i], f"boxes[{i}]")
        h, w = rgb.shape[:2]
        t = _check_thickness(thickness, h, w)
        shown = rgb.copy()
        clipped = _clip_box(box, h, w)
        if clipped is None:
            crop = np.full((1, 1, 3), GREY_LEVEL, np.uint8)
        else:
            x1, y1, x2, y2 = clipped
            crop = rgb[y1:y2 + 1, x1:x2 + 1]
            color = EXEMPLAR_COLOR if i == exemplar else BOX_COLOR
            cv2.rectangle(shown, (x1, y1), (x2, y2), color, thickness=t, lineType=cv2.LINE_8)
        gap = max(1, h // 50)
        panel = np.full((h, w + gap + h, 3), 255, np.uint8)
        panel[:, :w] = shown
        panel[:, w + gap:] = _letterbox(crop, h, h, (255, 255, 255))
        panels.append(panel)
        parts = []
        if labels is not None and labels[i] is not None and str(labels[i]):
            parts.append(str(labels[i]))
        if scores is not None:
            s = float(scores[i])
            parts.append(f"s={s:.3f}" if math.isfinite(s) else "s=nan")
        if i == exemplar:
            parts.append("(exemplar)")
        texts.append("\n".join(parts))
    order = [exemplar] + [i for i in range(n) if i != exemplar]
    return summary_grid([panels[i] for i in order], columns=columns, cell=cell,
                        labels=[texts[i] for i in order], pad=pad)


# --------------------------------------------------------------------------- output


def save_png(path: str | os.PathLike, rgb) -> Path:
    """Write an RGB (or grey) uint8 image as PNG, atomically.

    The bytes go to a temporary file beside ``path`` that is then renamed
    into place (:func:`vsum.io.atomic_write_png`): readers never see a
    partial file, and an interrupted write leaves the previous file intact.
    Parent folders are created.

    Parameters
    ----------
    path : path-like
        Destination file (conventionally ending in ``.png``).
    rgb : (H, W, 3) or (H, W) array-like of uint8

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        Not a non-empty uint8 ``(H, W, 3)`` or ``(H, W)`` array.
    """
    arr = as_image(rgb, "rgb")
    if np.ndim(rgb) == 2:  # grey stays a one-channel PNG
        arr = np.ascontiguousarray(arr[:, :, 0])
    path = Path(path)
    atomic_write_png(path, arr)
    return path


# --------------------------------------------------------------------------- a run's summaries


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def render_summaries(result, images: Sequence, masks: Sequence, names: Sequence[str], out_dir: str | os.PathLike,
                     cell: int = 200) -> list[str]:
    """The pictures of a stage-5 result: summary grids, aligned-crop strips, cluster overviews.

    Parameters
    ----------
    result : vsum.clusters.SummaryResult
        From :func:`vsum.clusters.find_summaries` (its clusters carry the
        aligned crops).
    images : list of N (H_i, W_i, 3) uint8 arrays
        The images stage 5 ran on.
    masks : list of N (H_i, W_i) bool arrays
        Their binary saliency masks.
    names : list of N str
        Image names for the labels.
    out_dir : path-like
        Receives ``summary_<k>.png`` and ``summary_<k>_strip.png`` for the
        k-th summary and ``debug/cluster_<c>.png`` for every cluster (before
        filtering); written atomically.
    cell : int, default 200
        Side in pixels of one member's cell in the grids.

    Returns
    -------
    list of str
        The written files, relative to ``out_dir``.
    """
    out_dir = Path(out_dir)
    written = []
    k = 0
    for cid, c in enumerate(result.clusters):
        members = list(range(len(c.images)))
        labels = [names[int(c.images[p])] for p in members]
        overview = cluster_overview([images[int(c.images[p])] for p in members], c.boxes, labels=labels,
                                    scores=[float(s) for s in c.similarity])
        save_png(out_dir / "debug" / f"cluster_{cid}.png", overview)
        written.append(f"debug/cluster_{cid}.png")
        if not c.is_summary:
            continue
        shown = [p for p in members if c.member_kept[p]]
        views = [member_view(images[int(c.images[p])], masks[int(c.images[p])], c.boxes[p]) for p in shown]
        grid_labels = [f"{labels[p]}\nsim {c.similarity[p]:.2f} ssim {_fmt(c.median_ssim(p))}" for p in shown]
        grid = summary_grid(views, cell=(cell, cell), labels=grid_labels, highlight_first=shown[0] == 0)
        save_png(out_dir / f"summary_{k}.png", grid)
        save_png(out_dir / f"summary_{k}_strip.png", crop_strip([c.crops[p] for p in shown]))
        written += [f"summary_{k}.png", f"summary_{k}_strip.png"]
        k += 1
    return written

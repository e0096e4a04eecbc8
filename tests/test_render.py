"""Summary rendering: member views (greying, hull, contours), grids, strips, overview, PNG output."""

from __future__ import annotations

import doctest
import os

import numpy as np
import pytest
from PIL import Image

from vsum import render
from vsum.render import (
    CONTOUR_COLOR,
    GREY_LEVEL,
    HULL_COLOR,
    cluster_overview,
    crop_strip,
    member_region,
    member_view,
    save_png,
    summary_grid,
)

RED = np.array(HULL_COLOR, np.uint8)
CYAN = np.array(CONTOUR_COLOR, np.uint8)


def _photo(h=60, w=80, seed=0):
    """Random colours in 100..200: never grey 64, red or cyan by chance."""
    return np.random.default_rng(seed).integers(100, 201, size=(h, w, 3), dtype=np.uint8)


def _is(view, color):
    return (view == np.asarray(color, np.uint8)).all(axis=2)


def _two_blobs():
    """Near blob (rows 10-29, cols 10-29) meets the box; far blob (rows 40-54, cols 55-74) does not."""
    mask = np.zeros((60, 80), bool)
    mask[10:30, 10:30] = True
    mask[40:55, 55:75] = True
    box = (20, 5, 45, 35)  # covers cols 20-29 of the near blob, rows 10-29
    return mask, box


def test_greying_is_exact_outside_the_union_and_untouched_inside():
    image = _photo()
    mask, box = _two_blobs()
    view = member_view(image, mask, box, thickness=1)
    assert view.shape == image.shape and view.dtype == np.uint8
    near = np.zeros_like(mask)
    near[10:30, 10:30] = True
    region = member_region(mask, box)
    # mask inside the box is the rectangle cols 20-29 x rows 10-29: its hull adds nothing to the blob
    assert np.array_equal(region.regions, near)
    assert np.array_equal(region.keep, near)
    assert (view[~near] == GREY_LEVEL).all()  # replaced, far blob included
    assert (view[40:55, 55:75] == GREY_LEVEL).all()
    drawn = _is(view, RED) | _is(view, CYAN)
    assert not (drawn & ~near).any()  # thickness 1: lines stay on kept pixels
    assert np.array_equal(view[near & ~drawn], image[near & ~drawn])
    assert (drawn & near).sum() < near.sum() // 2  # lines only, the interior is untouched
    assert np.array_equal(image, _photo())  # input not modified


def test_hull_outline_is_red_and_contours_cyan():
    image = _photo()
    mask, box = _two_blobs()
    view = member_view(image, mask, box, thickness=1)
    # hull = rectangle x 20..29, y 10..29; drawn last, red over its whole outline
    assert _is(view, RED)[10, 20:30].all() and _is(view, RED)[29, 20:30].all()
    assert _is(view, RED)[10:30, 20].all() and _is(view, RED)[10:30, 29].all()
    assert not _is(view, RED)[11:29, 21:29].any()
    # the near blob's border outside the hull is cyan, the far blob has no contour
    assert _is(view, CYAN)[10, 10:20].all() and _is(view, CYAN)[29, 10:20].all()
    assert _is(view, CYAN)[10:30, 10].all()
    assert not _is(view, CYAN)[11:29, 11:20].any()
    assert not _is(view, CYAN)[40:55, 55:75].any()


def test_hull_fills_concavity_and_region_extends_beyond_box():
    image = _photo()
    mask = np.zeros((60, 80), bool)
    mask[10:40, 10:14] = True  # vertical bar of an L
    mask[36:40, 10:40] = True  # horizontal bar
    box = (0, 0, 79, 59)
    region = member_region(mask, box)
    assert np.array_equal(region.regions, mask)
    assert region.keep[30, 25] and not mask[30, 25]  # inside the triangle the hull adds
    assert not region.keep[12, 35]
    view = member_view(image, mask, box, thickness=1)
    assert np.array_equal(view[30, 25], image[30, 25])
    assert (view[12, 35] == GREY_LEVEL).all()
    assert _is(view, RED)[10, 10] and _is(view, RED)[39, 39]
    # a box meeting only the top of the bar keeps the whole L (its region) and a tiny hull
    region = member_region(mask, (8, 8, 20, 12))
    assert np.array_equal(region.regions, mask)
    assert set(map(tuple, region.hull.tolist())) == {(10, 10), (13, 10), (13, 12), (10, 12)}


def test_eight_connected_regions():
    mask = np.zeros((20, 20), bool)
    mask[5, 5] = mask[6, 6] = mask[7, 7] = True  # diagonal chain: one 8-connected region
    mask[15, 15] = True
    region = member_region(mask, (4, 4, 5, 5))
    assert region.regions[7, 7] and not region.regions[15, 15]


def test_empty_mask_inside_box_keeps_the_box_outlined_in_red():
    image = _photo()
    mask, _ = _two_blobs()
    box = (35, 2, 50, 20)  # touches neither blob
    region = member_region(mask, box)
    assert not region.regions.any()
    view = member_view(image, mask, box, thickness=1)
    inside = np.zeros(mask.shape, bool)
    inside[2:21, 35:51] = True
    assert (view[~inside] == GREY_LEVEL).all()
    assert np.array_equal(view[3:20, 36:50], image[3:20, 36:50])
    assert _is(view, RED)[2, 35:51].all() and _is(view, RED)[2:21, 50].all()
    assert not _is(view, CYAN).any()
    # entirely empty mask, integer mask dtype
    view = member_view(image, np.zeros((60, 80), np.uint8), box, thickness=1)
    assert (view[~inside] == GREY_LEVEL).all()


def test_box_partly_and_entirely_outside_the_image():
    image = _photo()
    mask, _ = _two_blobs()
    region = member_region(mask, (-100, -100, 15, 15))
    assert region.box == (0, 0, 15, 15)
    assert region.regions[20, 20]  # the near blob meets the clipped box
    view = member_view(image, mask, (-100, -100, 15, 15), thickness=1)
    assert view.shape == image.shape
    assert (view[45, 60] == GREY_LEVEL).all()
    assert _is(view, RED)[10, 10]
    for box in [(100, 0, 120, 10), (-20, -20, -1, -1), (0, 60, 79, 70)]:
        region = member_region(mask, box)
        assert region.box is None and not region.keep.any() and region.hull.shape == (0, 2)
        assert (member_view(image, mask, box) == GREY_LEVEL).all()


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (2, 2)])
def test_tiny_images(shape):
    image = _photo(*shape)
    for fill in (False, True):
        mask = np.full(shape, fill)
        view = member_view(image, mask, (0, 0, shape[1] - 1, shape[0] - 1))
        assert view.shape == image.shape and view.dtype == np.uint8
    mask = np.zeros(shape, bool)
    mask[0, 0] = True  # a single-pixel hull
    view = member_view(image, mask, (0, 0, 0, 0))
    assert _is(view, RED)[0, 0]
    assert (view[~mask] == GREY_LEVEL).all()


def test_grey_image_and_default_thickness():
    grey = _photo(600, 900)[..., 0]
    mask = np.zeros(grey.shape, bool)
    mask[100:300, 100:400] = True
    view = member_view(grey, mask, (150, 150, 500, 500))
    assert view.shape == (600, 900, 3)
    rows = np.flatnonzero(_is(view, RED)[:, 250])  # top and bottom hull edges, thickness 3 for 900 px
    assert {150, 151, 152, 297, 298, 299} <= set(rows.tolist()) and len(rows) <= 12


@pytest.mark.parametrize("image, mask, box, message", [
    (np.zeros((10, 10, 3), np.float32), np.zeros((10, 10), bool), (0, 0, 1, 1), "uint8"),
    (np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10), bool), (0, 0, 1, 1), "shape"),
    (np.zeros((0, 10, 3), np.uint8), np.zeros((0, 10), bool), (0, 0, 1, 1), "empty"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((10, 11), bool), (0, 0, 1, 1), "image's shape"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), np.float32), (0, 0, 1, 1), "Threshold a float mask"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), bool), (5, 0, 1, 1), "degenerate"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), bool), (0, 0, 1), "shape"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), bool), (0, 0, 1.5, 1), "integer"),
    (np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), bool), ("a", 0, 1, 1), "integer"),
])
def test_member_view_rejects_bad_input(image, mask, box, message):
    with pytest.raises(ValueError, match=message):
        member_view(image, mask, box)
    with pytest.raises(ValueError, match="thickness"):
        member_view(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), bool), (0, 0, 1, 1), thickness=0)


def test_summary_grid_shapes_and_layout():
    views = [_photo(60, 80, s) for s in range(7)] + [_photo(30, 10, 7)[..., 0]]
    grid = summary_grid(views, columns=3, cell=(50, 40), pad=4)
    assert grid.dtype == np.uint8 and grid.shape == (3 * (50 + 4) + 4, 3 * (40 + 4) + 4, 3)
    # first cell: 60x80 fitted into 50x40 -> 30x40, centred vertically (top 10)
    assert (grid[4 + 10:4 + 40, 4:44] >= 100).all()
    assert (grid[4:4 + 10, 4:44] == 255).all()
    assert (grid[2:4, 2:46] == render.EXEMPLAR_COLOR).all()  # exemplar frame in the padding
    single = summary_grid([views[0]], pad=0)
    assert single.shape == (200, 200, 3)
    by_height = summary_grid(views[:2], cell=30, pad=1, highlight_first=False)
    assert by_height.shape == (30 + 2, 2 * (40 + 1) + 1, 3)  # 60x80 at height 30 is 40 wide
    tall = summary_grid([_photo(190, 63)], cell=64, pad=0)  # 63 * 64 / 190 = 21.2 -> 21 wide
    assert tall.shape == (64, 21, 3) and (tall >= 100).all()  # filled at exactly the cell height


def test_summary_grid_labels_with_odd_characters():
    views = [_photo(40, 40, s) for s in range(4)]
    labels = ["<img src=x onerror=alert(1)>.jpg\nsim 0.83", "ünïcødé ✓ 日本語", None,
              "a very long file name that cannot possibly fit in a small cell.jpeg\n\n\r\x00\t"]
    plain = summary_grid(views, columns=2, cell=(40, 40))
    grid = summary_grid(views, columns=2, cell=(40, 40), labels=labels)
    assert grid.dtype == np.uint8 and grid.shape[1] == plain.shape[1] and grid.shape[0] > plain.shape[0]
    band = grid[4 + 40:4 + 40 + 10, 4:44]
    assert (band < 128).any()  # text drawn
    with pytest.raises(ValueError, match="one label per view"):
        summary_grid(views, labels=["a"])
    with pytest.raises(ValueError, match="one label per view"):
        summary_grid(views, labels="abcd")


@pytest.mark.parametrize("kwargs, message", [
    ({"columns": 0}, "columns"), ({"cell": (0, 10)}, "cell"), ({"cell": "big"}, "cell"),
    ({"pad": -1}, "pad"), ({"background": (0, 0, 300)}, "background"),
])
def test_summary_grid_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        summary_grid([_photo()], **kwargs)


def test_summary_grid_rejects_bad_views():
    with pytest.raises(ValueError, match="empty"):
        summary_grid([])
    with pytest.raises(ValueError, match=r"views\[1\]"):
        summary_grid([_photo(), np.zeros((5, 5, 3), np.float64)])
    stack = np.stack([_photo(), _photo()])
    assert summary_grid(stack, cell=(20, 20), pad=0).shape == (20, 40, 3)


def test_crop_strip_shapes_and_dtypes():
    crops = [_photo(32, 16, 0), _photo(10, 40, 1)[..., 1], _photo(1, 1, 2)]
    strip = crop_strip(crops, height=64, pad=2)
    widths = [32, 256, 64]
    assert strip.dtype == np.uint8 and strip.shape == (68, sum(widths) + 4 * 2, 3)
    assert (strip[:2] == 255).all() and (strip[:, :2] == 255).all()
    assert (strip[2:66, 2:34] >= 100).all()
    assert crop_strip([crops[0]], height=8, pad=0).shape == (8, 4, 3)
    assert crop_strip([_photo(190, 63)], height=64, pad=0).shape == (64, 21, 3)  # width rounded down
    with pytest.raises(ValueError, match="empty"):
        crop_strip([])
    with pytest.raises(ValueError, match="height"):
        crop_strip(crops, height=0)
    with pytest.raises(ValueError, match=r"crops\[0\]"):
        crop_strip([np.zeros((0, 4, 3), np.uint8)])


def test_cluster_overview():
    images = [_photo(60, 80, 0), _photo(40, 40, 1), _photo(50, 30, 2)]
    boxes = [(10, 10, 30, 30), (-5, 0, 20, 60), (100, 100, 120, 120)]  # last entirely outside
    out = cluster_overview(images, boxes, labels=["a.jpg", "<b>ü.jpg", None], scores=[0.5, float("nan"), 0.25],
                           exemplar=1, columns=2, cell=(40, 80))
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert out.shape[1] == 2 * (80 + 4) + 4
    with pytest.raises(ValueError, match="exemplar"):
        cluster_overview(images, boxes, exemplar=3)
    with pytest.raises(ValueError, match="boxes"):
        cluster_overview(images, boxes[:2])
    with pytest.raises(ValueError, match="scores"):
        cluster_overview(images, boxes, scores=[1.0])
    with pytest.raises(ValueError, match="degenerate"):
        cluster_overview(images, [(10, 10, 5, 5)] + boxes[1:])


def test_save_png_writes_a_readable_png_atomically(tmp_path, monkeypatch):
    rgb = _photo()
    path = save_png(tmp_path / "sub" / "view.png", rgb)
    assert path.is_file()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode == "RGB"
        assert np.array_equal(np.asarray(img), rgb)
    assert sorted(p.name for p in path.parent.iterdir()) == ["view.png"]  # no temporary left
    save_png(tmp_path / "grey.png", rgb[..., 0])
    # a failing write leaves the previous file intact and no temporary behind
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_png(path, _photo(seed=1))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["view.png"]
    with pytest.raises(ValueError, match="uint8"):
        save_png(tmp_path / "x.png", rgb.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        save_png(tmp_path / "x.png", np.zeros((4, 4, 2), np.uint8))


def test_docstring_examples():
    assert doctest.testmod(render, raise_on_error=False).failed == 0

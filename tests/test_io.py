"""Image decoding, preprocessing and atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vsum import io as vio
from vsum.io import ImageSkip, atomic_write_json, list_images, read_image
from vsum.preprocess import eval_crop, resize_whole


def _photo(h=60, w=90):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_modes_are_converted_to_rgb(tmp_path):
    rgb = _photo()
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb).convert("L").save(tmp_path / "grey.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.gif")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(tmp_path / "sixteen.png")
    for name in ("rgb.png", "grey.png", "rgba.png", "palette.gif", "cmyk.jpg", "sixteen.png"):
        record = read_image(tmp_path / name)
        assert record.rgb.dtype == np.uint8 and record.rgb.shape == (60, 90, 3), name
    assert np.array_equal(read_image(tmp_path / "rgb.png").rgb, rgb)
    assert np.array_equal(read_image(tmp_path / "sixteen.png").rgb[..., 0], rgb[..., 0])
    assert "16-bit" in read_image(tmp_path / "sixteen.png").note
    assert "alpha" in read_image(tmp_path / "rgba.png").note


def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    assert (read_image(tmp_path / "clear.png").rgb == 255).all()


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b"GIF89a broken", "not a readable image"),
    (b"plain text, not an image", "not a readable image"),
])
def test_unusable_files_raise_image_skip(tmp_path, content, reason):
    path = tmp_path / "bad.gif"
    path.write_bytes(content)
    with pytest.raises(ImageSkip, match=reason):
        read_image(path)


def test_truncated_image_is_skipped(tmp_path):
    Image.fromarray(_photo(200, 200)).save(tmp_path / "full.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "full.png").read_bytes()[:5000])
    with pytest.raises(ImageSkip, match="corrupt or truncated"):
        read_image(tmp_path / "cut.png")


def test_tiny_and_huge_images_are_skipped(tmp_path, monkeypatch):
    Image.fromarray(_photo(1, 1)).save(tmp_path / "one.png")
    with pytest.raises(ImageSkip, match="too small"):
        read_image(tmp_path / "one.png")
    Image.fromarray(_photo(100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(vio, "MAX_PIXELS", 5000)
    with pytest.raises(ImageSkip, match="too large"):
        read_image(tmp_path / "big.png")


def test_large_images_are_downscaled_when_asked(tmp_path):
    Image.fromarray(_photo(400, 1000)).save(tmp_path / "wide.png")
    record = read_image(tmp_path / "wide.png", max_side=50)
    assert record.rgb.shape == (80, 200, 3) and "downscaled" in record.note


def test_list_images(tmp_path):
    for name in ("b.JPG", "a.png", "c.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.JPG"]
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "missing")


def test_preprocessing_shapes_and_ranges():
    rgb = _photo(300, 400)
    whole = resize_whole(rgb, 224)
    crop = eval_crop(rgb, 224)
    for tensor in (whole, crop):
        assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.float32
        assert 0.0 <= float(tensor.min()) and float(tensor.max()) <= 1.0
    # 299-pixel models resize the short side to 342 before cropping.
    assert eval_crop(rgb, 299).shape == (3, 299, 299)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"b": object()})  # not serialisable: fails before any rename
    assert target.read_text().strip().startswith("{") and '"a": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_writes_get_the_permissions_open_gives(tmp_path):
    from vsum.io import atomic_open

    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    atomic_target = tmp_path / "atomic.bin"
    with atomic_open(atomic_target) as fh:
        fh.write(b"x")
    assert (atomic_target.stat().st_mode & 0o777) == (plain.stat().st_mode & 0o777)  # not mkstemp's 0o600


def test_atomic_open_failure_keeps_the_old_file(tmp_path):
    from vsum.io import atomic_open

    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write(b"half")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["data.bin"]

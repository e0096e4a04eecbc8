"""Image decoding, preprocessing and atomic writes."""

from __future__ import annotations

from pathlib import Path

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


# --------------------------------------------------------------------------- issue 11: awkward inputs


def test_damaged_multipage_tiff_is_read_or_skipped_never_raised(tmp_path):
    """A TIFF whose second page lost its size made Pillow raise TypeError (not OSError) out of read_image."""
    from make_corpus import _multipage_tiff

    rng = np.random.default_rng(1)
    (tmp_path / "later.tif").write_bytes(_multipage_tiff(rng, damaged_page=1))
    record = read_image(tmp_path / "later.tif")  # page 1 is intact: it is what vsum uses
    assert record.rgb.shape == (48, 64, 3) and "frames unreadable" in record.note
    (tmp_path / "first.tif").write_bytes(_multipage_tiff(rng, damaged_page=0))
    with pytest.raises(ImageSkip, match="not a readable image"):  # Pillow reports it as unidentified
        read_image(tmp_path / "first.tif")


def test_decoder_exceptions_of_any_type_become_skips(tmp_path, monkeypatch):
    Image.fromarray(_photo()).save(tmp_path / "ok.png")

    def broken_load(self):
        raise KeyError(27649)  # what a damaged TIFF tag table raises in Pillow

    monkeypatch.setattr(Image.Image, "load", broken_load)
    with pytest.raises(ImageSkip, match=r"corrupt image \(KeyError: 27649\)"):
        read_image(tmp_path / "ok.png")


def test_exif_orientation_is_applied(tmp_path):
    from make_corpus import _exif_rotated_jpeg

    (tmp_path / "turned.jpg").write_bytes(_exif_rotated_jpeg(np.random.default_rng(0)))
    record = read_image(tmp_path / "turned.jpg")
    assert record.rgb.shape == (64, 48, 3)  # stored 48 x 64, orientation 6: shown turned by 90 degrees
    assert "exif orientation" in record.note


def test_pixel_limit_is_vsums_not_pillows(tmp_path, monkeypatch):
    """Pillow's own bomb guard (89 Mpixel warning, 179 Mpixel error) must not pre-empt the documented limit."""
    Image.fromarray(_photo(50, 50)).save(tmp_path / "under.png")
    Image.fromarray(_photo(80, 80)).save(tmp_path / "over.png")
    monkeypatch.setattr(vio, "MAX_PIXELS", 5000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow warns above 1000 and raises above 2000
    assert read_image(tmp_path / "under.png").rgb.shape == (50, 50, 3)  # 2500 <= 5000
    with pytest.raises(ImageSkip, match=r"image too large \(80x80 = 6400 pixels > 5000\)"):
        read_image(tmp_path / "over.png")


def test_real_decompression_bomb_is_skipped_by_the_limit(tmp_path):
    from make_corpus import _bomb_png

    (tmp_path / "bomb.png").write_bytes(_bomb_png())
    with pytest.raises(ImageSkip, match=r"image too large \(16000x16000 = 256000000 pixels > 200000000\)"):
        read_image(tmp_path / "bomb.png")


def test_broken_symlinks_are_listed_and_skipped_with_the_reason(tmp_path):
    Image.fromarray(_photo()).save(tmp_path / "a.png")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    (tmp_path / "sub.png").mkdir()  # a folder with an image suffix is not an input
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "gone.jpg"]
    assert [p.name for p in list_images([tmp_path / "a.png", tmp_path / "gone.jpg"])] == ["a.png", "gone.jpg"]
    with pytest.raises(ImageSkip, match=r"broken symbolic link \(to .*missing\.jpg\)"):
        read_image(tmp_path / "gone.jpg")


def test_non_regular_files_are_skipped_without_blocking(tmp_path):
    os = pytest.importorskip("os")
    os.mkfifo(tmp_path / "pipe.png")  # opening a FIFO for reading would block forever
    assert [p.name for p in list_images(tmp_path)] == ["pipe.png"]
    with pytest.raises(ImageSkip, match="not a regular file"):
        read_image(tmp_path / "pipe.png")


def test_display_name_is_valid_utf8_for_any_file_name():
    import os

    path = Path(os.fsdecode(b"/data/x\xff\xfe.png"))
    assert vio.display_name(path) == "x\\xff\\xfe.png"
    assert vio.display_name(Path("/data/caf\u00e9.png")) == "caf\u00e9.png"
    vio.display_name(path).encode("utf-8")  # never raises


def test_unique_stems_are_distinct_ignoring_case_and_deterministic():
    import os

    paths = [Path("Cat.jpg"), Path("cat.jpg"), Path("CAT.png"), Path("dog.jpg"), Path("Dog.jpg"),
             Path(os.fsdecode(b"x\xff.png")), Path("a:b.png")]
    stems = vio.unique_stems(paths)
    assert len({s.casefold() for s in stems}) == len(stems)
    assert stems == vio.unique_stems(paths)
    assert stems[3] != stems[4] and stems[0] != stems[1]
    for stem in stems:
        stem.encode("utf-8")
        assert not set(stem) & set('\\/:*?"<>|')  # a file name on every common file system
    assert vio.unique_stems([Path("a/x.jpg"), Path("b/x.png"), Path("y.jpg")]) == ["x_jpg", "x_png", "y"]


def test_atomic_write_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "x.json", {"v": float("nan")})
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "x.json", {"v": [1.0, float("inf")]})
    assert not (tmp_path / "x.json").exists()


def test_downscaling_never_makes_a_side_smaller_than_min_side(tmp_path):
    """Found by the fuzz corpus: a damaged header gave a 28 x 12000 image, downscaled to 2 x 896."""
    Image.fromarray(np.full((12, 12000, 3), 90, np.uint8)).save(tmp_path / "strip.png")
    record = read_image(tmp_path / "strip.png", max_side=50)
    assert record.rgb.shape == (vio.MIN_SIDE, 200, 3) and "downscaled" in record.note

"""Reading images and masks (pixeval.data.files, Sample.load_*): files are written with Pillow,
an encoder independent of the OpenCV decoder under test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixeval.data import DatasetError, Sample
from pixeval.data.files import find_folder, image_size, list_images, mask_index, read_image, read_mask

RNG = np.random.default_rng(7)


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tiff"])
def test_rgb_image_reads_as_rgb_uint8(tmp_path, ext):
    rgb = RNG.integers(0, 256, (13, 21, 3), dtype=np.uint8)
    image = read_image(save(tmp_path / f"a{ext}", rgb))
    assert image.dtype == np.uint8 and image.shape == (13, 21, 3)
    np.testing.assert_array_equal(image, rgb)


def test_grey_image_is_repeated_over_channels_and_alpha_dropped(tmp_path):
    grey = RNG.integers(0, 256, (9, 11), dtype=np.uint8)
    np.testing.assert_array_equal(read_image(save(tmp_path / "g.png", grey)), np.stack([grey] * 3, axis=2))
    rgba = RNG.integers(0, 256, (9, 11, 4), dtype=np.uint8)
    np.testing.assert_array_equal(read_image(save(tmp_path / "a.png", rgba)), rgba[:, :, :3])


def test_mask_is_any_channel_above_zero(tmp_path):
    truth = RNG.random((10, 12)) < 0.3
    for name, array in [
        ("u8_255.png", truth.astype(np.uint8) * 255),
        ("u8_1.png", truth.astype(np.uint8)),
        ("u16.png", truth.astype(np.uint16) * 1000),
        ("bmp.bmp", truth.astype(np.uint8) * 255),
    ]:
        mask = read_mask(save(tmp_path / name, array))
        assert mask.dtype == bool
        np.testing.assert_array_equal(mask, truth, err_msg=name)
    colour = np.zeros((10, 12, 3), np.uint8)
    colour[truth, 0] = 1  # only the red channel marks defects, with the smallest positive value
    np.testing.assert_array_equal(read_mask(save(tmp_path / "red.png", colour)), truth)
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 3] = 255  # an opaque alpha channel must not mark every pixel
    rgba[truth, 2] = 255
    np.testing.assert_array_equal(read_mask(save(tmp_path / "rgba.png", rgba)), truth)


def test_image_size_and_unreadable_files(tmp_path):
    assert image_size(save(tmp_path / "a.png", np.zeros((7, 5, 3), np.uint8))) == (7, 5)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="broken.png"):
        read_image(tmp_path / "broken.png")
    with pytest.raises(DatasetError, match="missing.png"):
        read_mask(tmp_path / "missing.png")


def test_non_ascii_path(tmp_path):
    rgb = RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(read_image(save(tmp_path / "défaut é" / "bild_ü.png", rgb)), rgb)


def test_sample_masks_have_the_image_size(tmp_path):
    image = save(tmp_path / "x.png", np.zeros((6, 8, 3), np.uint8))
    normal = Sample("good/x", image, None, 0, "good")
    assert normal.load_mask().shape == (6, 8) and not normal.load_mask().any()
    small = save(tmp_path / "x_mask.png", np.full((6, 7), 255, np.uint8))
    with pytest.raises(DatasetError, match=r"x_mask.png is 7×6 \(W×H\) but its image .*x.png is 8×6"):
        Sample("crack/x", image, small, 1, "crack").load_mask()


def test_listing_and_mask_index(tmp_path):
    for name in ["b.PNG", "a.bmp", "c.txt", ".hidden.png", "sub/d.png"]:
        save(tmp_path / name, np.zeros((2, 2), np.uint8)) if name.endswith(("png", "PNG", "bmp")) \
            else (tmp_path / name).write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["a.bmp", "b.PNG"]
    assert [p.name for p in list_images(tmp_path, recursive=True)] == ["a.bmp", "b.PNG", "d.png"]
    masks = tmp_path / "masks"
    for name in ["1.png", "1_mask.png", "2.bmp", "sub/3_mask.png"]:
        save(masks / name, np.zeros((2, 2), np.uint8))
    index = mask_index([masks], recursive=True)
    assert {k: v.relative_to(masks).as_posix() for k, v in index.items()} == {
        "1": "1_mask.png", "2": "2.bmp", "sub/3": "sub/3_mask.png"}
    (tmp_path / "OK").mkdir()
    assert find_folder(tmp_path, ("good", "ok")).name == "OK"
    assert find_folder(tmp_path, ("good",)) is None


def test_exif_orientation_is_ignored_so_images_align_with_masks(tmp_path):
    rgb = np.zeros((10, 20, 3), np.uint8)
    rgb[:, :5] = 255
    picture = Image.fromarray(rgb)
    exif = picture.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    picture.save(tmp_path / "r.jpg", exif=exif)
    image = read_image(tmp_path / "r.jpg")
    assert image.shape == (10, 20, 3) and image_size(tmp_path / "r.jpg") == (10, 20)
    assert image[:, :4].min() > 200 and image[:, 6:].max() < 50  # stored order, not rotated

"""Resizing (pixeval.data.transforms) against slow, obviously-correct numpy references."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pixeval.data import Sample
from pixeval.data.transforms import as_hw, load_resized, resize_image, resize_mask

RNG = np.random.default_rng(3)
SIZES = [(16, 16), (5, 9), (40, 70), (37, 53)]


def nearest_reference(mask: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Output pixel (i, j) takes input pixel (floor((i + .5) H / h), floor((j + .5) W / w))."""
    in_h, in_w = mask.shape
    out = np.zeros((out_h, out_w), bool)
    for i in range(out_h):
        for j in range(out_w):
            out[i, j] = mask[min(int((i + 0.5) * in_h / out_h), in_h - 1), min(int((j + 0.5) * in_w / out_w), in_w - 1)]
    return out


def bilinear_reference(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Half-pixel-centre bilinear interpolation with edge clamping, in float64."""
    in_h, in_w = image.shape[:2]
    out = np.zeros((out_h, out_w, *image.shape[2:]))
    for i in range(out_h):
        y = min(max((i + 0.5) * in_h / out_h - 0.5, 0.0), in_h - 1)
        y0 = int(np.floor(y))
        y1, fy = min(y0 + 1, in_h - 1), y - y0
        for j in range(out_w):
            x = min(max((j + 0.5) * in_w / out_w - 0.5, 0.0), in_w - 1)
            x0 = int(np.floor(x))
            x1, fx = min(x0 + 1, in_w - 1), x - x0
            top = (1 - fx) * image[y0, x0].astype(float) + fx * image[y0, x1]
            bottom = (1 - fx) * image[y1, x0].astype(float) + fx * image[y1, x1]
            out[i, j] = (1 - fy) * top + fy * bottom
    return out


@pytest.mark.parametrize("size", SIZES)
def test_masks_resize_by_exact_nearest_neighbour(size):
    mask = RNG.random((37, 53)) < 0.3
    resized = resize_mask(mask, size)
    assert resized.dtype == bool and resized.shape == size
    np.testing.assert_array_equal(resized, nearest_reference(mask, *size))


@pytest.mark.parametrize("size", SIZES)
def test_images_resize_bilinearly(size):
    image = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    resized = resize_image(image, size)
    assert resized.dtype == np.uint8 and resized.shape == (*size, 3)
    # OpenCV interpolates uint8 in fixed point: within one grey level of the exact value.
    reference = bilinear_reference(image, *size)
    assert np.abs(resized.astype(float) - reference).max() <= 1.0
    floats = resize_image(image.astype(np.float32), size)
    np.testing.assert_allclose(floats, reference, atol=1e-3)


def test_square_size_and_identity():
    image = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert resize_image(image, 4).shape == (4, 4, 3)
    same = resize_image(image, (8, 8))
    np.testing.assert_array_equal(same, image)
    assert same is not image
    assert as_hw(5) == (5, 5) and as_hw((3, 7)) == (3, 7)
    with pytest.raises(ValueError, match="must be positive"):
        as_hw((0, 4))


def test_load_resized_keeps_the_original_size(tmp_path):
    image = RNG.integers(0, 256, (30, 45, 3), dtype=np.uint8)
    mask = np.zeros((30, 45), bool)
    mask[10:20, 5:25] = True
    Image.fromarray(image).save(tmp_path / "i.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "m.png")
    resized = load_resized(Sample("x/i", tmp_path / "i.png", tmp_path / "m.png", 1, "x"), 16)
    assert resized.original_size == (30, 45)
    assert resized.image.shape == (16, 16, 3) and resized.mask.shape == (16, 16)
    np.testing.assert_array_equal(resized.mask, nearest_reference(mask, 16, 16))

"""pixeval.io: score-map files, read back exactly or refused with a message naming the file."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile

from pixeval.io import InputError, read_score_map, resize_map, write_score_map


@pytest.fixture
def scores():
    return np.random.default_rng(0).random((12, 17)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".tiff", ".tif", ".npy"])
def test_written_maps_read_back_exactly(tmp_path, scores, suffix):
    path = write_score_map(tmp_path / "deep" / f"map{suffix}", scores)
    read = read_score_map(path)
    assert read.values.dtype == np.float32 and not read.quantised
    np.testing.assert_array_equal(read.values, scores)


def test_float16_tiff_reads_as_the_same_values_in_float32(tmp_path, scores):
    tifffile.imwrite(tmp_path / "m.tiff", scores.astype(np.float16))
    read = read_score_map(tmp_path / "m.tiff")
    assert read.values.dtype == np.float32 and read.stored_dtype == np.float16 and not read.quantised
    np.testing.assert_array_equal(read.values, scores.astype(np.float16).astype(np.float32))


def test_float64_npy_keeps_float64(tmp_path, scores):
    np.save(tmp_path / "m.npy", scores.astype(np.float64) / 3)
    read = read_score_map(tmp_path / "m.npy")
    assert read.values.dtype == np.float64
    np.testing.assert_array_equal(read.values, scores.astype(np.float64) / 3)


def test_npz_with_one_array_or_a_named_key(tmp_path, scores):
    np.savez(tmp_path / "one.npz", anything=scores)
    np.testing.assert_array_equal(read_score_map(tmp_path / "one.npz").values, scores)
    np.savez(tmp_path / "two.npz", amap=scores, other=scores * 2)
    np.testing.assert_array_equal(read_score_map(tmp_path / "two.npz", npz_key="other").values, scores * 2)
    with pytest.raises(InputError, match=r"two\.npz holds 2 arrays \(amap, other\).*--npz-key"):
        read_score_map(tmp_path / "two.npz")
    with pytest.raises(InputError, match=r"no array named 'nope'.*amap, other"):
        read_score_map(tmp_path / "two.npz", npz_key="nope")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_maps_are_read_as_their_integers_and_flagged_quantised(tmp_path, dtype):
    values = np.random.default_rng(1).integers(0, np.iinfo(dtype).max, (9, 11)).astype(dtype)
    cv2.imwrite(str(tmp_path / "m.png"), values)
    read = read_score_map(tmp_path / "m.png")
    assert read.quantised and read.stored_dtype == dtype
    np.testing.assert_array_equal(read.values, values.astype(np.float32))


@pytest.mark.parametrize("shape", [(1, 12, 17), (12, 17, 1), (1, 1, 12, 17)])
def test_singleton_axes_are_dropped(tmp_path, scores, shape):
    np.save(tmp_path / "m.npy", scores.reshape(shape))
    np.testing.assert_array_equal(read_score_map(tmp_path / "m.npy").values, scores)


@pytest.mark.parametrize("shape", [(12, 17, 3), (3, 12, 17), (2, 12, 17), (17,)])
def test_maps_that_are_not_one_channel_2d_are_refused(tmp_path, shape):
    np.save(tmp_path / "m.npy", np.zeros(shape, np.float32))
    with pytest.raises(InputError, match=r"m\.npy has shape .*not one channel"):
        read_score_map(tmp_path / "m.npy")


def test_colour_png_map_is_refused(tmp_path):
    cv2.imwrite(str(tmp_path / "m.png"), np.zeros((5, 6, 3), np.uint8))
    with pytest.raises(InputError, match=r"m\.png has shape 5×6×3"):
        read_score_map(tmp_path / "m.png")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_are_refused(tmp_path, scores, bad):
    scores[3, 4] = scores[5, 6] = bad
    tifffile.imwrite(tmp_path / "m.tiff", scores)
    with pytest.raises(InputError, match=r"m\.tiff has 2 NaN or infinite score"):
        read_score_map(tmp_path / "m.tiff")


def test_non_real_scores_are_refused(tmp_path):
    np.save(tmp_path / "m.npy", np.zeros((3, 3), np.complex64))
    with pytest.raises(InputError, match="complex64"):
        read_score_map(tmp_path / "m.npy")


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("suffix", [".tiff", ".npy", ".npz", ".png"])
def test_truncated_and_empty_files_are_refused_naming_them(tmp_path, suffix):
    values = np.random.default_rng(2).random((64, 64))
    path = tmp_path / f"m{suffix}"
    if suffix == ".tiff":
        tifffile.imwrite(path, values.astype(np.float32))
    elif suffix == ".npy":
        np.save(path, values)
    elif suffix == ".npz":
        np.savez(path, x=values)
    else:
        cv2.imwrite(str(path), (values * 255).astype(np.uint8))
    _truncate(path)
    with pytest.raises(InputError, match=rf"m\{suffix}.*(unreadable|truncated)"):
        read_score_map(path)
    path.write_bytes(b"")
    with pytest.raises(InputError, match=rf"m\{suffix}"):
        read_score_map(path)


def test_unknown_suffix_is_refused(tmp_path):
    (tmp_path / "m.jpg").write_bytes(b"")
    with pytest.raises(InputError, match=r"m\.jpg is not a score-map file"):
        read_score_map(tmp_path / "m.jpg")


def _bilinear_slow(values, shape):
    """Bilinear resampling with pixel centres aligned (half-pixel offsets, edges clamped), per pixel."""
    h, w = values.shape
    out = np.empty(shape)
    for i in range(shape[0]):
        for j in range(shape[1]):
            y = min(max((i + 0.5) * h / shape[0] - 0.5, 0), h - 1)
            x = min(max((j + 0.5) * w / shape[1] - 0.5, 0), w - 1)
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            fy, fx = y - y0, x - x0
            out[i, j] = ((1 - fy) * ((1 - fx) * values[y0, x0] + fx * values[y0, x1])
                         + fy * ((1 - fx) * values[y1, x0] + fx * values[y1, x1]))
    return out


def test_resize_map_is_bilinear_with_aligned_pixel_centres(scores):
    resized = resize_map(scores, (24, 34))
    assert resized.shape == (24, 34)
    np.testing.assert_allclose(resized, _bilinear_slow(scores, (24, 34)), atol=1e-5)
    assert resize_map(scores, scores.shape) is scores


def test_write_score_map_refuses_what_it_cannot_write(tmp_path, scores):
    with pytest.raises(ValueError, match="2-D"):
        write_score_map(tmp_path / "m.tiff", scores[None, None])
    with pytest.raises(ValueError, match=r"\.png"):
        write_score_map(tmp_path / "m.png", scores)

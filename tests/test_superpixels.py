"""Superpixel tiling (detectors.superpixels): coverage, order, inverse, overflow."""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.superpixels import Tiling, grid_shape, make_tiling, slic_labels, tile, untile


def _texture(size=64, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * x + 2 * y), np.cos(5 * y - x), np.sin(3 * x * y + 1)], axis=-1)
    noise = rng.normal(0, 0.05, size=(size, size, 3))
    return np.clip((base + noise + 1) * 127.5, 0, 255).astype(np.uint8)


def _random_labels(draw_seed, size, n_seeds):
    """A label image of Voronoi cells of random seeds (arbitrary, non-consecutive label values)."""
    rng = np.random.default_rng(draw_seed)
    seeds = rng.integers(0, size, size=(n_seeds, 2))
    yy, xx = np.mgrid[0:size, 0:size]
    d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    values = rng.permutation(1000)[:n_seeds] * 7 + 3
    return values[np.argmin(d, axis=-1)]


def test_slic_superpixels_are_connected_and_numbered_in_raster_order():
    image = _texture(64)
    t = make_tiling(image, region_size=10)
    from skimage.measure import label as cc_label
    for k in range(t.n_superpixels):
        assert cc_label(t.labels == k, connectivity=1).max() == 1
    first = [np.flatnonzero(t.labels.ravel() == k)[0] for k in range(t.n_superpixels)]
    assert first == sorted(first)
    # same input, same tiling
    again = make_tiling(image, region_size=10)
    assert np.array_equal(again.labels, t.labels) and np.array_equal(again.boxes, t.boxes)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_seeds=st.integers(1, 60), region_size=st.integers(3, 40))
def test_every_pixel_gets_exactly_its_own_superpixels_value(seed, n_seeds, region_size):
    labels = _random_labels(seed, 48, n_seeds)
    t = Tiling.from_labels(labels, region_size)
    # the relabelling is a bijection of the original labels
    assert len(np.unique(t.labels)) == len(np.unique(labels)) == t.n_superpixels
    for k in range(t.n_superpixels):
        assert len(np.unique(labels[t.labels == k])) == 1
    # a tiled map whose cell k holds the constant k untiles to the label image itself
    cell_ids = np.zeros((48, 48), np.float32)
    for k in range(t.n_superpixels):
        oy, ox = t.cell_origin(k)
        cell_ids[oy:oy + t.cell_h, ox:ox + t.cell_w] = k
    assert np.array_equal(untile(cell_ids, t), t.labels.astype(np.float32))
    # boxes are the exact bounding boxes
    for k, (y0, x0, y1, x1) in enumerate(t.boxes):
        ys, xs = np.nonzero(t.labels == k)
        assert (y0, x0, y1, x1) == (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)


def test_cells_do_not_overlap_and_unused_cells_are_zero():
    image = _texture(64)
    t = make_tiling(image, region_size=16)
    tiled = tile(image, t)
    used = np.zeros((64, 64), bool)
    for k in range(t.n_superpixels):
        oy, ox = t.cell_origin(k)
        assert not used[oy:oy + t.cell_h, ox:ox + t.cell_w].any()
        used[oy:oy + t.cell_h, ox:ox + t.cell_w] = True
    assert not tiled[~used].any()
    assert t.rows * t.cell_h <= 64 and t.cols * t.cell_w <= 64


def test_more_superpixels_than_seed_cells_grows_the_grid():
    # 4x4-pixel blocks on 64x64 = 256 superpixels, region size 32 -> 2x2 seeds; grid must hold 256
    labels = (np.arange(64)[:, None] // 4) * 16 + np.arange(64)[None, :] // 4
    t = Tiling.from_labels(labels, region_size=32)
    assert t.n_superpixels == 256 and (t.rows, t.cols, t.cell_h, t.cell_w) == (16, 16, 4, 4)
    # here every box equals its cell, so tiling is a pure permutation and untiling is exact
    image = _texture(64)
    assert np.array_equal(untile(tile(image, t), t), image.astype(np.float32))
    assert grid_shape(5, 64, 64, 32) == (3, 3) and grid_shape(3, 64, 64, 32) == (2, 2)
    assert grid_shape(1, 64, 64, 100) == (1, 1) and grid_shape(2, 32, 64, 32) == (1, 2)
    assert grid_shape(9, 32, 64, 32) == (3, 5)  # (1, 2) grown by sqrt(4.5), rounded up
    with pytest.raises(ValueError, match="do not fit"):
        grid_shape(65 * 65, 64, 64, 10)


def test_tiling_then_untiling_reproduces_a_smooth_image():
    size = 96
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    smooth = np.stack([x * 2.0, y * 2.0, 100 + 40 * np.sin(x / 15) * np.cos(y / 17)], axis=-1)
    image = np.clip(smooth, 0, 255).astype(np.uint8)
    t = make_tiling(image, region_size=12)
    restored = untile(tile(image.astype(np.float32), t), t)
    err = np.abs(restored - image)
    assert err.mean() < 1.5 and np.percentile(err, 99) < 6
    # a textured image loses detail in the down-and-up resampling, but stays close to itself
    tex = _texture(96, seed=3)
    t2 = make_tiling(tex, region_size=12)
    err2 = np.abs(untile(tile(tex.astype(np.float32), t2), t2) - tex)
    assert err2.mean() < 10


def test_untiled_values_stay_within_their_cell():
    rng = np.random.default_rng(1)
    image = _texture(64)
    t = make_tiling(image, region_size=10)
    tiled = rng.random((64, 64)).astype(np.float32)
    out = untile(tiled, t)
    for k in range(t.n_superpixels):
        oy, ox = t.cell_origin(k)
        cell = tiled[oy:oy + t.cell_h, ox:ox + t.cell_w]
        vals = out[t.labels == k]
        assert vals.min() >= cell.min() - 1e-6 and vals.max() <= cell.max() + 1e-6


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="2-D"):
        Tiling.from_labels(np.zeros((3, 4, 2), int), 4)
    with pytest.raises(ValueError, match="uint8"):
        slic_labels(np.zeros((10, 10), np.float32), 4)
    t = Tiling.from_labels(np.zeros((8, 8), int), 4)
    with pytest.raises(ValueError, match="does not match"):
        tile(np.zeros((9, 9)), t)
    assert t.n_superpixels == 1 and (t.rows, t.cell_h, t.cell_w) == (2, 4, 4)


def test_rectangular_images_tile_and_untile_exactly():
    image = _texture(96)[:40]  # 40 x 96
    t = make_tiling(image, region_size=10)
    assert t.shape == (40, 96) and t.rows * t.cols >= t.n_superpixels
    cell_ids = np.zeros(t.shape, np.float32)
    for k in range(t.n_superpixels):
        oy, ox = t.cell_origin(k)
        cell_ids[oy:oy + t.cell_h, ox:ox + t.cell_w] = k
    assert np.array_equal(untile(cell_ids, t), t.labels.astype(np.float32))
    assert tile(image, t).shape == image.shape

"""Image quilting (pixeval.data.quilting): the minimum-error cut and the copied blocks."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pixeval.data.quilting import min_cut_path, quilt


def _brute_force_cut(error):
    rows, cols = error.shape
    best = None
    for path in itertools.product(range(cols), repeat=rows):
        if all(abs(a - b) <= 1 for a, b in zip(path, path[1:])):
            cost = sum(error[i, j] for i, j in enumerate(path))
            if best is None or cost < best[0] - 1e-12:
                best = (cost, path)
    return best


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 5), cols=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_min_cut_is_the_cheapest_connected_path(rows, cols, seed):
    error = np.random.default_rng(seed).random((rows, cols))
    path = min_cut_path(error)
    assert all(abs(a - b) <= 1 for a, b in zip(path, path[1:]))
    assert error[np.arange(rows), path].sum() == pytest.approx(_brute_force_cut(error)[0])


def test_blocks_are_copies_of_the_source_away_from_the_seams():
    # a source whose pixels name their own position: (row, column, 0)
    rows, cols = np.mgrid[0:120, 0:120]
    rng = np.random.default_rng(0)
    source = np.stack([rows, cols, rng.integers(0, 255, (120, 120))], axis=-1).astype(np.uint8)
    block, overlap = 20, 6
    out = quilt(source, (70, 70), block, overlap, np.random.default_rng(1))
    assert out.shape == (70, 70, 3) and out.dtype == np.uint8
    step = block - overlap
    for y in range(0, 70 - block + 1, step):
        for x in range(0, 70 - block + 1, step):
            # the part of each block that no overlap touches is a contiguous window of the source
            core = out[y + overlap:y + step, x + overlap:x + step].astype(int)
            assert (np.diff(core[..., 0], axis=0) == 1).all() and (np.diff(core[..., 1], axis=1) == 1).all()
            sy, sx = core[0, 0, 0] - overlap, core[0, 0, 1] - overlap
            assert np.array_equal(out[y + overlap:y + step, x + overlap:x + step],
                                  source[sy + overlap:sy + step, sx + overlap:sx + step])


def test_same_seed_same_texture_and_bad_sizes_are_named():
    source = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    a = quilt(source, (50, 60), 16, 4, np.random.default_rng(3))
    b = quilt(source, (50, 60), 16, 4, np.random.default_rng(3))
    assert a.shape == (50, 60) and np.array_equal(a, b)
    assert not np.array_equal(a, quilt(source, (50, 60), 16, 4, np.random.default_rng(4)))
    with pytest.raises(ValueError, match="overlap"):
        quilt(source, (50, 60), 16, 16, np.random.default_rng(0))
    with pytest.raises(ValueError, match="smaller than one"):
        quilt(source[:10], (50, 60), 16, 4, np.random.default_rng(0))

"""Boundary F1 and Boundary IoU against brute force, the DAVIS dilation and OpenCV's erosion."""

import math
import warnings

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from skimage.morphology import disk

from pixeval.metrics import DegenerateInputWarning, boundary_metrics, evaluate
from pixeval.metrics.boundary import band, contour, image_boundary

from test_evaluate import make_set


def contour_brute_force(mask):
    """DAVIS seg2bmap's rules pixel by pixel: a pixel differing from its east, south or
    south-east neighbour; on the last row only east counts, on the last column only south, and
    the bottom-right pixel never."""
    h, w = mask.shape
    out = np.zeros((h, w), bool)
    for r in range(h):
        for c in range(w):
            if r == h - 1 and c == w - 1:
                continue
            if r == h - 1:
                out[r, c] = mask[r, c] != mask[r, c + 1]
            elif c == w - 1:
                out[r, c] = mask[r, c] != mask[r + 1, c]
            else:
                out[r, c] = (mask[r, c] != mask[r, c + 1] or mask[r, c] != mask[r + 1, c]
                             or mask[r, c] != mask[r + 1, c + 1])
    return out


def band_brute_force(mask, width):
    """Mask pixels with a non-mask pixel, or a position outside the image, within chessboard
    distance ``width``."""
    h, w = mask.shape
    out = np.zeros((h, w), bool)
    for r in range(h):
        for c in range(w):
            if not mask[r, c]:
                continue
            for dr in range(-width, width + 1):
                for dc in range(-width, width + 1):
                    y, x = r + dr, c + dc
                    if not (0 <= y < h and 0 <= x < w) or not mask[y, x]:
                        out[r, c] = True
    return out


def matched_brute_force(points, targets, distance):
    """How many ``points`` have a ``targets`` pixel within Euclidean ``distance``."""
    p, t = np.argwhere(points), np.argwhere(targets)
    if not len(p) or not len(t):
        return 0
    squared = ((p[:, None, :] - t[None, :, :]) ** 2).sum(axis=2)
    return int(np.count_nonzero(squared.min(axis=1) <= distance ** 2))


def reference_band(mask, width):
    """Boundary IoU API ``mask_to_boundary`` as its README code does it, with OpenCV: pad by one
    zero pixel, erode ``width`` times with a 3x3 kernel, subtract."""
    h, w = mask.shape
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=width)[1:h + 1, 1:w + 1]
    return (mask.astype(np.uint8) - eroded).astype(bool)


masks = st.integers(0, 2**32 - 1).map(lambda seed: _random_mask(seed))


def _random_mask(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 16)), int(rng.integers(1, 16)))
    kind = rng.integers(4)
    if kind == 0:
        return rng.random(shape) < 0.3
    if kind == 1:
        return ndimage.binary_dilation(rng.random(shape) < 0.05, iterations=int(rng.integers(1, 3)))
    if kind == 2:
        return np.ones(shape, bool)
    return np.zeros(shape, bool)


@settings(max_examples=200, deadline=None)
@given(masks)
def test_contour_is_davis_seg2bmap(mask):
    np.testing.assert_array_equal(contour(mask), contour_brute_force(mask))


@settings(max_examples=150, deadline=None)
@given(masks, st.integers(1, 4))
def test_band_is_the_boundary_iou_reference(mask, width):
    expected = band_brute_force(mask, width)
    np.testing.assert_array_equal(band(mask, width), expected)
    np.testing.assert_array_equal(reference_band(mask, width), expected)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 1.5, 2, 2.5, 3, 5]), st.integers(1, 4))
def test_image_counts_equal_brute_force(seed, distance, width):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(2, 24)), int(rng.integers(2, 24)))
    true = _random_mask(seed) if rng.random() < 0.3 else ndimage.binary_dilation(
        rng.random(shape) < 0.03, iterations=int(rng.integers(1, 4)))
    shape = true.shape
    predicted = rng.random(shape) < rng.choice([0.0, 0.05, 0.3])
    predicted |= ndimage.binary_dilation(true, iterations=int(rng.integers(0, 2))) & (rng.random(shape) < 0.9)
    counts = image_boundary(predicted, true, distance, width)
    cp, ct = contour_brute_force(predicted), contour_brute_force(true)
    assert (counts.predicted, counts.true) == (cp.sum(), ct.sum())
    assert counts.matched_predicted == matched_brute_force(cp, ct, distance)
    assert counts.matched_true == matched_brute_force(ct, cp, distance)
    bp, bt = band_brute_force(predicted, width), band_brute_force(true, width)
    assert counts.band_intersection == np.count_nonzero(bp & bt)
    assert counts.band_union == np.count_nonzero(bp | bt)


def test_matching_equals_the_davis_disk_dilation():
    # davis2017-evaluation: cv2.dilate of each contour by skimage's disk(bound_pix), an integer
    # radius (ceil of a fraction of the diagonal)
    rng = np.random.default_rng(0)
    true = ndimage.binary_dilation(rng.random((60, 70)) < 0.004, iterations=5)
    predicted = ndimage.binary_dilation(rng.random((60, 70)) < 0.004, iterations=4) | true
    for radius in (1, 2, 4, 6):
        counts = image_boundary(predicted, true, radius, 2)
        cp, ct = contour(predicted), contour(true)
        footprint = disk(radius).astype(np.uint8)
        dilated_true = cv2.dilate(ct.astype(np.uint8), footprint).astype(bool)
        dilated_predicted = cv2.dilate(cp.astype(np.uint8), footprint).astype(bool)
        assert counts.matched_predicted == np.count_nonzero(cp & dilated_true)
        assert counts.matched_true == np.count_nonzero(ct & dilated_predicted)


def test_per_image_f1_follows_davis_for_empty_contours():
    empty = np.zeros((5, 5), bool)
    square = np.zeros((5, 5), bool)
    square[1:3, 1:3] = True
    assert image_boundary(empty, empty, 1, 1).f1 == 1.0
    assert image_boundary(square, empty, 1, 1).f1 == 0.0
    assert image_boundary(empty, square, 1, 1).f1 == 0.0
    assert image_boundary(square, square, 1, 1).f1 == 1.0
    assert np.isnan(image_boundary(empty, empty, 1, 1).iou)


def test_pooled_values_sum_the_images():
    maps, masks_ = make_set(40, n_images=6, shape=(30, 34), levels=0)
    report = boundary_metrics(maps, masks_, threshold=0.9, tolerance=2, band=2)
    counts = [image_boundary(m >= 0.9, k, 2.0, 2) for m, k in zip(maps, masks_)]
    matched = sum(c.matched_predicted for c in counts)
    assert report.boundary_precision == matched / sum(c.predicted for c in counts)
    assert report.boundary_recall == sum(c.matched_true for c in counts) / sum(c.true for c in counts)
    p, r = report.boundary_precision, report.boundary_recall
    assert report.boundary_f1 == pytest.approx(2 * p * r / (p + r))
    assert report.boundary_iou == pytest.approx(
        sum(c.band_intersection for c in counts) / sum(c.band_union for c in counts))
    anomalous = masks_.any(axis=(1, 2))
    assert report.boundary_f1_image_mean == pytest.approx(np.mean([c.f1 for c in np.array(counts)[anomalous]]))
    np.testing.assert_array_equal(report.per_image_iou, [c.iou for c in counts])
    assert report.n_anomalous_images == anomalous.sum() and report.threshold_from == "given"
    assert set(report.to_dict()) >= {"boundary_f1", "boundary_iou", "boundary_threshold"}


def test_default_threshold_is_the_pixel_f1_max_one():
    maps, masks_ = make_set(41, n_images=4, levels=20)
    report = boundary_metrics(maps, masks_)
    assert report.threshold == evaluate(maps, masks_).pixel_f1_threshold
    assert report.threshold_from == "pixel_f1_max"
    same = boundary_metrics(maps, masks_, threshold=report.threshold)
    assert same.boundary_f1 == report.boundary_f1 and same.boundary_iou == report.boundary_iou


def test_relative_settings_use_each_image_diagonal():
    # 300 x 400 pixels: diagonal 500 -> tolerance 0.008 is 4 px; band 0.02 is 10 px
    true = np.zeros((300, 400), bool)
    true[100:200, 100:200] = True
    scores = np.zeros((300, 400))
    scores[100:200, 104:204] = 1.0  # shifted 4 px right: contours within 4 px, not 3
    relative = boundary_metrics([scores], [true], 0.5)
    absolute = boundary_metrics([scores], [true], 0.5, tolerance=4, band=10)
    assert relative.boundary_f1 == absolute.boundary_f1 == 1.0
    assert relative.boundary_iou == absolute.boundary_iou
    assert boundary_metrics([scores], [true], 0.5, tolerance=3, band=10).boundary_f1 < 1.0


def test_threshold_is_applied_exactly():
    below = np.nextafter(np.float32(0.1), np.float32(0))
    scores = np.full((6, 6), below, dtype=np.float32)
    scores[2:4, 2:4] = np.float32(0.1)
    true = scores == np.float32(0.1)
    report = boundary_metrics([scores], [true], threshold=0.1, tolerance=1, band=1)
    assert report.boundary_f1 == 1.0 and report.boundary_iou == 1.0


def test_degenerate_sets():
    maps, masks_ = make_set(42, n_images=4)
    with pytest.warns(DegenerateInputWarning, match="boundary F1: NaN, no true contour pixel"):
        report = boundary_metrics(maps, np.zeros_like(masks_), threshold=0.5)
    assert np.isnan(report.boundary_f1) and np.isnan(report.boundary_f1_image_mean)
    with pytest.warns(DegenerateInputWarning, match="boundary precision: NaN, no predicted contour"):
        report = boundary_metrics(maps, masks_, threshold=10.0)
    assert report.boundary_f1 == 0.0 and report.boundary_recall == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInputWarning)
        with pytest.warns(DegenerateInputWarning, match="Boundary IoU: NaN, no band pixel"):
            boundary_metrics(maps, np.zeros_like(masks_), threshold=10.0)


@pytest.mark.parametrize("kwargs,match", [
    ({"tolerance": 0}, "tolerance"),
    ({"tolerance": np.nan}, "tolerance"),
    ({"band": 1.5}, "band"),
    ({"band": -0.1}, "band"),
    ({"threshold": np.inf}, "threshold"),
])
def test_invalid_arguments(kwargs, match):
    maps, masks_ = make_set(43, n_images=2)
    with pytest.raises(ValueError, match=match):
        boundary_metrics(maps, masks_, **kwargs)


def test_invalid_images_name_the_image():
    maps, masks_ = make_set(44, n_images=3)
    with pytest.raises(ValueError, match="image 1: score map shape"):
        boundary_metrics([maps[0], maps[1][:5]], [masks_[0], masks_[1]], threshold=0.5)
    with pytest.raises(ValueError, match="image 2: scores contain NaN"):
        boundary_metrics([maps[0], maps[1], np.full((3, 3), np.nan)],
                         [masks_[0], masks_[1], np.zeros((3, 3))], threshold=0.5)


def test_diagonal_rounding_matches_the_references():
    from pixeval.metrics.boundary import band_pixels, tolerance_pixels
    assert tolerance_pixels(0.008, (1024, 1024)) == math.ceil(0.008 * math.hypot(1024, 1024)) == 12
    assert band_pixels(0.02, (1024, 1024)) == 29
    assert band_pixels(0.02, (10, 10)) == 1  # round(0.28) = 0 -> at least 1
    assert tolerance_pixels(2.5, (10, 10)) == 2.5 and band_pixels(3, (10, 10)) == 3


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 2, 3, 7]), st.integers(1, 5))
def test_boxes_change_nothing(seed, distance, width):
    # small true and predicted blobs anywhere in a larger image (touching its borders too): the
    # bounding-box computation equals the same primitives on the whole image
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(20, 60)), int(rng.integers(20, 60)))
    true = ndimage.binary_dilation(rng.random(shape) < 0.003, iterations=int(rng.integers(0, 3)))
    predicted = ndimage.binary_dilation(rng.random(shape) < 0.004, iterations=int(rng.integers(0, 3)))
    if rng.random() < 0.3:
        true[-1, -3:] = predicted[:2, 0] = True
    cp, ct = contour(predicted), contour(true)
    whole = (
        cp.sum(), ct.sum(),
        np.count_nonzero(cp & (ndimage.distance_transform_edt(~ct) <= distance)) if ct.any() else 0,
        np.count_nonzero(ct & (ndimage.distance_transform_edt(~cp) <= distance)) if cp.any() else 0,
        np.count_nonzero(band(predicted, width) & band(true, width)),
        np.count_nonzero(band(predicted, width) | band(true, width)))
    counts = image_boundary(predicted, true, distance, width)
    assert (counts.predicted, counts.true, counts.matched_predicted, counts.matched_true,
            counts.band_intersection, counts.band_union) == whole

"""AUPIMO against a plain reading of its definition, the reference algorithm and its test case."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from pixeval.metrics import DegenerateInputWarning, aupimo


def definition(maps, masks, lower, upper):
    """AUPIMO per image from the definition, by brute force (NaN for normal images).

    Every distinct score is a threshold, plus one above them all (FPR 0, TPR 0); the shared FPR
    is the mean over normal images of each image's fraction of pixels >= t; each anomalous
    image's curve is the polyline through (log FPR, TPR) in descending threshold order,
    integrated from log(lower) to log(upper) with TPR interpolated linearly in log FPR at the
    bounds. NaN when no threshold gives a positive FPR <= lower.
    """
    normal = [np.ravel(m) for m, k in zip(maps, masks) if not np.any(k)]
    thresholds = np.unique(np.concatenate([np.ravel(m) for m in maps]))[::-1]
    fpr = [0.0] + [float(np.mean([np.mean(s >= t) for s in normal])) for t in thresholds]
    reachable = [f for f in fpr if f > 0]
    results = []
    for score_map, mask in zip(maps, masks):
        mask = np.asarray(mask) > 0
        if not mask.any():
            results.append(np.nan)
            continue
        if min(reachable) > lower:
            results.append(np.nan)
            continue
        anomalous = np.asarray(score_map)[mask]
        tpr = [0.0] + [float(np.mean(anomalous >= t)) for t in thresholds]
        area = 0.0
        for p in range(len(fpr) - 1):
            if fpr[p + 1] <= fpr[p]:
                continue
            x0 = math.log(fpr[p]) if fpr[p] > 0 else -math.inf
            x1 = math.log(fpr[p + 1])
            lo, hi = max(x0, math.log(lower)), min(x1, math.log(upper))
            if hi <= lo:
                continue
            y_lo, y_hi = (tpr[p] + (tpr[p + 1] - tpr[p]) * (z - x0) / (x1 - x0) for z in (lo, hi))
            area += (hi - lo) * (y_lo + y_hi) / 2
        results.append(area / math.log(upper / lower))
    return np.array(results)


def reference_algorithm(maps, masks, lower, upper, num_thresholds):
    """The jpcbertoldo/aupimo / anomalib algorithm as read there, in plain numpy; None where it
    raises. Thresholds ``linspace(min, max, K)`` of the normal images' scores in the maps'
    dtype; shared FPR = mean of per-image FPRs over normal images; bounds at the thresholds with
    the nearest shared FPR (first, i.e. lowest, threshold); points with FPR 0 dropped; trapezoid
    in log FPR; divided by log(U/L) and clipped to [0, 1]."""
    maps, masks = np.asarray(maps), np.asarray(masks) > 0
    anomalous = masks.any(axis=(1, 2))
    thresholds = np.linspace(maps[~anomalous].min(), maps[~anomalous].max(), num_thresholds,
                             dtype=maps.dtype)
    flat, labels = maps.reshape(len(maps), -1), masks.reshape(len(maps), -1)
    fpr_images = np.array([[np.mean(s[~g] >= t) for t in thresholds]
                           for s, g in zip(flat[~anomalous], labels[~anomalous])])
    shared = fpr_images.mean(axis=0)
    if not (shared.min() <= lower and upper <= shared.max()):
        return None
    low_index = int(np.argmin(np.abs(shared - lower)))
    high_index = int(np.argmin(np.abs(shared - upper)))
    if high_index >= low_index:
        return None
    with np.errstate(divide="ignore"):
        x = np.log(shared[high_index:low_index + 1][::-1])
    result = np.full(len(maps), np.nan)
    for i in np.flatnonzero(anomalous):
        s, g = flat[i], labels[i]
        tpr = np.array([np.mean(s[g] >= t) for t in thresholds])[high_index:low_index + 1][::-1]
        finite = np.isfinite(x)
        area = np.trapezoid(tpr[finite], x[finite])
        result[i] = np.clip(area / math.log(upper / lower), 0, 1)
    return result


def random_set(seed, n_images=5, shape=(9, 11), levels=0, density=0.08, dtype=np.float64):
    """Blob defects on every other image; ``levels`` > 0 quantises the scores (heavy ties)."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_images, *shape), dtype=bool)
    for i in range(1, n_images, 2):
        masks[i] = ndimage.binary_dilation(rng.random(shape) < density)
        if not masks[i].any():
            masks[i, 0, 0] = True
    raw = rng.random((n_images, *shape)) + 0.5 * masks * rng.random((n_images, *shape))
    maps = np.floor(raw * levels) / levels if levels else raw
    return maps.astype(dtype), masks


BOUNDS = [(0.01, 0.1), (0.02, 0.5), (0.1, 1.0), (0.05, 0.3), (0.001, 0.01), (0.2, 0.25)]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 6), st.sampled_from([0, 2, 5, 30]),
       st.sampled_from(BOUNDS), st.sampled_from([np.float64, np.float32]))
def test_equals_the_definition(seed, n_images, levels, bounds, dtype):
    maps, masks = random_set(seed, n_images, shape=(14, 16), levels=levels, dtype=dtype)
    expected = definition(maps, masks, *bounds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInputWarning)
        report = aupimo(maps, masks, fpr_bounds=bounds)
    np.testing.assert_allclose(report.per_image, expected, rtol=0, atol=1e-12)
    finite = expected[np.isfinite(expected)]
    if finite.size:
        assert report.mean == pytest.approx(finite.mean(), abs=1e-12)
        assert report.median == pytest.approx(np.median(finite), abs=1e-12)


@pytest.mark.parametrize("levels,dtype", [(0, np.float32), (0, np.float64), (40, np.float32), (150, np.float64)])
@pytest.mark.parametrize("bounds", [(0.01, 0.1), (0.05, 0.5), (0.004, 0.02)])
def test_reproduces_the_reference_algorithm_on_its_thresholds(levels, dtype, bounds):
    maps, masks = random_set(3, n_images=8, shape=(20, 24), levels=levels, dtype=dtype)
    normal = maps[~masks.any(axis=(1, 2))]
    for num_thresholds in (40, 500):
        expected = reference_algorithm(maps, masks, *bounds, num_thresholds)
        thresholds = np.linspace(normal.min(), normal.max(), num_thresholds, dtype=maps.dtype)
        if expected is None:  # the reference raises: range not reached, or bounds at one threshold
            with pytest.warns(DegenerateInputWarning, match="cannot reach"):
                report = aupimo(maps, masks, fpr_bounds=bounds, thresholds=thresholds,
                                bound_rule="nearest")
            assert np.isnan(report.per_image).all()
            continue
        report = aupimo(maps, masks, fpr_bounds=bounds, thresholds=thresholds,
                        bound_rule="nearest")
        np.testing.assert_allclose(report.per_image, expected, rtol=0, atol=1e-12)


def test_exact_nearest_is_the_limit_of_the_reference():
    # 300 score levels: once every gap between two levels holds a grid threshold, the
    # reference's curve has exactly the exact curve's points
    maps, masks = random_set(11, n_images=8, shape=(20, 24), levels=300)
    bounds = (0.01, 0.2)
    exact = aupimo(maps, masks, fpr_bounds=bounds, bound_rule="nearest").per_image
    coarse = reference_algorithm(maps, masks, *bounds, 25)
    fine = reference_algorithm(maps, masks, *bounds, 5000)
    anomalous = np.isfinite(exact)
    assert np.max(np.abs(coarse - exact)[anomalous]) > 1e-3
    np.testing.assert_allclose(fine, exact, rtol=0, atol=1e-12)


def test_interpolated_and_nearest_bounds_differ_only_by_the_fpr_resolution():
    maps, masks = random_set(12, n_images=8, shape=(20, 24))
    bounds = (0.013, 0.17)
    exact = aupimo(maps, masks, fpr_bounds=bounds)
    nearest = aupimo(maps, masks, fpr_bounds=bounds, bound_rule="nearest")
    # 4 normal images of 480 pixels: shared FPR steps of 1/1920; the nearest bounds are at most
    # half a step away from L and U, and the curve is at most 1 there
    step = 1 / 1920
    slack = (math.log((0.013 + step) / 0.013) + math.log(0.17 / (0.17 - step))) / math.log(0.17 / 0.013)
    difference = np.abs(exact.per_image - nearest.per_image)
    assert np.nanmax(difference) <= slack
    assert np.nanmax(difference) > 0


def test_the_reference_test_case():
    # jpcbertoldo/aupimo tests/test_aupimo/test_pimo.py: one normal image of 10**6 pixels with
    # scores 7 (1 pixel), 6 (9), 5 (90), 4 (900), 3 (9e3), 2 (9e4), 1 (the rest): FPR 10**-k at
    # score 7 - k. Image 1 is all anomalous with the same scores (TPR = FPR); image 2 has its
    # 10**5 highest pixels anomalous (TPR = min(10 FPR, 1)).
    normal = np.ones(1_000_000, dtype=np.float32)
    for count in (100_000, 10_000, 1_000, 100, 10, 1):
        normal[:count] += 1
    normal = normal.reshape(1000, 1000)
    maps = np.stack([normal, normal, normal])
    masks = np.zeros(maps.shape, dtype=np.int32)
    masks[1] = 1
    masks[2].reshape(-1)[:100_000] = 1
    expected = {
        (1e-1, 1.0): [(0.1 + 1.0) / 2, 1.0],
        (1e-3, 1e-1): [((1e-3 + 1e-2) / 2 + (1e-2 + 1e-1) / 2) / 2,
                       ((1e-2 + 1e-1) / 2 + (1e-1 + 1.0) / 2) / 2],
        (1e-5, 1e-4): [(1e-5 + 1e-4) / 2, (1e-4 + 1e-3) / 2],
    }
    for bounds, values in expected.items():
        for options in ({}, {"bound_rule": "nearest"},
                        {"thresholds": np.arange(1, 8, dtype=np.float32), "bound_rule": "nearest"}):
            report = aupimo(maps, masks, fpr_bounds=bounds, **options)
            assert np.isnan(report.per_image[0])
            np.testing.assert_allclose(report.per_image[1:], values, rtol=1e-9)
    # and the same for scores scaled by 10 (the reference's second case)
    report = aupimo(10 * maps, masks, fpr_bounds=(1e-5, 1e-4))
    np.testing.assert_allclose(report.per_image[1:], expected[(1e-5, 1e-4)], rtol=1e-9)


def test_shared_fpr_is_the_mean_of_per_image_fprs():
    # normal images of 4 and 8 pixels: at the top score, the 4-pixel image has FPR 1/4, the
    # other 0 -> shared 1/8; pooled it would be 1/12
    small = np.array([[9.0, 0.0], [0.0, 0.0]])
    large = np.zeros((2, 4))
    anomalous = np.array([[9.0, 1.0, 0.0]])
    masks = [np.zeros((2, 2)), np.zeros((2, 4)), np.array([[1, 1, 0]])]
    with pytest.warns(DegenerateInputWarning, match="smallest positive value is 0.125"):
        report = aupimo([small, large, anomalous], masks, fpr_bounds=(0.1, 0.125))
    # between FPR 0.1 and 0.125 the curve is on the segment from (0, T(>9) = 0) to
    # (1/8, T(>=9) = 1/2): undefined below 1/8 -> NaN; from 1/8 up it is 1/2
    assert np.isnan(report.per_image[2])
    report = aupimo([small, large, anomalous], masks, fpr_bounds=(0.125, 0.9))
    assert report.smallest_fpr == 0.125
    assert report.per_image[2] == pytest.approx(definition(
        [small, large, anomalous], masks, 0.125, 0.9)[2], abs=1e-12)


def test_a_perfect_image_scores_one_and_transforms_change_nothing():
    maps, masks = random_set(5, n_images=6, shape=(30, 30))
    maps = np.where(masks, 2.0 + maps, maps)
    report = aupimo(maps, masks, fpr_bounds=(0.001, 0.01))
    np.testing.assert_array_equal(report.per_image[1::2], 1.0)
    maps, masks = random_set(6, n_images=6, shape=(30, 30), levels=200)
    base = aupimo(maps, masks, fpr_bounds=(0.01, 0.1)).per_image
    transformed = aupimo(np.exp(3 * maps) - 2, masks, fpr_bounds=(0.01, 0.1)).per_image
    np.testing.assert_allclose(transformed, base, rtol=0, atol=1e-12)


def test_summary_and_to_dict():
    maps, masks = random_set(8, n_images=9, shape=(30, 30))
    report = aupimo(maps, masks, fpr_bounds=(0.005, 0.05))
    values = report.per_image[np.isfinite(report.per_image)]
    assert report.n_anomalous_images == values.size == 4 and report.n_normal_images == 5
    assert report.std == pytest.approx(np.std(values, ddof=1))
    assert (report.q1, report.q3) == pytest.approx(tuple(np.quantile(values, [0.25, 0.75])))
    assert (report.minimum, report.maximum) == (values.min(), values.max())
    flat = report.to_dict()
    assert flat["pixel_aupimo"] == report.mean
    assert flat["aupimo_fpr_levels"] == report.n_fpr_levels > 0
    assert all(not isinstance(v, (list, tuple, np.ndarray)) for v in flat.values())


def test_degenerate_sets_are_nan_with_a_warning():
    maps, masks = random_set(9)
    with pytest.warns(DegenerateInputWarning, match="AUPIMO: NaN, no normal image"):
        report = aupimo(maps[1::2], masks[1::2], fpr_bounds=(0.01, 0.1))
    assert np.isnan(report.per_image).all() and np.isnan(report.mean)
    with pytest.warns(DegenerateInputWarning, match="no anomalous image"):
        aupimo(maps[::2], masks[::2], fpr_bounds=(0.01, 0.1))
    # 3 normal images of 99 pixels: the smallest positive shared FPR is 1/297 > 1e-3
    with pytest.warns(DegenerateInputWarning, match="cannot reach the range .* smallest positive value is 0.00337"):
        report = aupimo(maps, masks)
    assert np.isnan(report.per_image).all()


@pytest.mark.parametrize("kwargs,match", [
    ({"fpr_bounds": (1e-4, 1e-5)}, "0 < lower < upper <= 1"),
    ({"fpr_bounds": (0, 0.1)}, "0 < lower < upper <= 1"),
    ({"fpr_bounds": 0.1}, "two numbers"),
    ({"bound_rule": "closest"}, "bound_rule"),
    ({"thresholds": [0.5, 0.2]}, "strictly increasing"),
    ({"thresholds": [0.5, np.nan]}, "finite"),
])
def test_invalid_arguments(kwargs, match):
    maps, masks = random_set(10)
    with pytest.raises(ValueError, match=match):
        aupimo(maps, masks, **kwargs)

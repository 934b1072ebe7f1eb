"""Thresholds set on normal maps, and the metrics a given threshold yields on a test set."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import precision_recall_fscore_support

from pixeval.metrics import DegenerateInputWarning, metrics_at_threshold, threshold_at_fpr

from test_evaluate import make_set


def threshold_brute_force(maps, target):
    """The smallest distinct score v with #{score >= v} / n <= target, or the next float32 /
    float64 above the highest score when none qualifies."""
    scores = np.concatenate([np.ravel(m) for m in maps])
    for v in np.unique(scores):
        count = np.count_nonzero(scores >= v)
        if count / scores.size <= target:
            return float(v), count / scores.size
    top = scores.max().astype(np.float64 if scores.dtype == np.float64 else np.float32)
    return float(np.nextafter(top, np.asarray(np.inf, dtype=top.dtype))), 0.0


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.sampled_from([0, 1, 3, 10, 1000]),
       st.sampled_from([np.float32, np.float64, np.uint8]),
       st.one_of(st.sampled_from([0.0, 1.0, 0.01, 0.1, 0.5, 1e-9]), st.floats(0, 1)))
def test_threshold_at_fpr_equals_brute_force(seed, n_maps, levels, dtype, target):
    rng = np.random.default_rng(seed)
    maps = [rng.random((int(rng.integers(1, 9)), int(rng.integers(1, 9)))) for _ in range(n_maps)]
    if levels:
        maps = [np.floor(m * levels) for m in maps]
    maps = [(m * (100 if dtype == np.uint8 and not levels else 1)).astype(dtype) for m in maps]
    expected, expected_fpr = threshold_brute_force(maps, target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = threshold_at_fpr(maps, target)
    assert result.threshold == expected
    assert result.fpr == expected_fpr
    assert result.n_pixels == sum(m.size for m in maps) and result.n_images == n_maps


def test_threshold_at_fpr_with_target_hit_exactly_and_ties():
    scores = np.array([[5, 5, 5, 4, 3, 2, 1, 1, 0, 0]], dtype=np.float64)
    assert threshold_at_fpr([scores], 0.3).threshold == 5.0  # 3 pixels >= 5: FPR 0.3
    with pytest.warns(UserWarning, match="more than 2 of the 10 pixels"):
        assert threshold_at_fpr([scores], 0.29).threshold == np.nextafter(5.0, 6.0)
    assert threshold_at_fpr([scores], 0.5).threshold == 3.0
    result = threshold_at_fpr([scores], 0.75)  # 1 is held by 2 pixels: FPR 0.8 at 1 is too high
    assert (result.threshold, result.fpr) == (2.0, 0.6)
    assert threshold_at_fpr([scores], 1.0).threshold == 0.0


def test_threshold_at_fpr_warns_when_no_score_qualifies():
    with pytest.warns(UserWarning, match="less than one"):
        result = threshold_at_fpr([np.arange(10.0).reshape(2, 5)], 0.05)
    assert result.threshold == np.nextafter(9.0, 10.0) and result.fpr == 0.0
    with pytest.warns(UserWarning, match="more than 2 of the 10 pixels hold the highest score"):
        threshold_at_fpr([np.r_[np.zeros(7), np.ones(3)].reshape(2, 5)], 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        threshold_at_fpr([np.arange(10.0).reshape(2, 5)], 0.0)  # asked for FPR 0: no warning


def test_threshold_at_fpr_does_not_modify_the_maps():
    maps = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    copy = maps.copy()
    threshold_at_fpr(maps, 0.1)
    threshold_at_fpr([maps[0]], 0.1)
    np.testing.assert_array_equal(maps, copy)


@pytest.mark.parametrize("maps,target,match", [
    ([np.zeros((2, 2))], 1.5, "target_fpr"),
    ([np.zeros((2, 2))], -0.1, "target_fpr"),
    ([np.zeros((2, 2)), np.zeros((0, 3))], 0.1, r"normal_maps\[1\]: empty"),
    ([np.array([[0.0, np.nan]])], 0.1, r"normal_maps\[0\]: scores contain NaN"),
    ([np.array([["a", "b"]])], 0.1, "numeric"),
    (np.zeros((2, 2)), 0.1, "one 2-D array"),
    ([], 0.1, "no images"),
])
def test_threshold_at_fpr_invalid_input(maps, target, match):
    with pytest.raises(ValueError, match=match):
        threshold_at_fpr(maps, target)


def _expected_at(maps, masks, threshold, image_scores=None, image_threshold=None):
    y, s = masks.ravel().astype(bool), maps.ravel().astype(np.float64)
    p, r, f, _ = precision_recall_fscore_support(y, s >= threshold, average="binary", zero_division=np.nan)
    image_y = masks.any(axis=(1, 2))
    image_s = maps.max(axis=(1, 2)).astype(np.float64) if image_scores is None else image_scores
    cut = threshold if image_threshold is None else image_threshold
    ip, ir, i_f, _ = precision_recall_fscore_support(image_y, image_s >= cut, average="binary",
                                                     zero_division=np.nan)
    return (p, r, f, np.mean((s >= threshold)[~y]), ip, ir, i_f, np.mean((image_s >= cut)[~image_y]))


@pytest.mark.parametrize("threshold", [0.3, 0.75, 0.9, 1.2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_metrics_at_threshold_equal_sklearn(threshold, dtype):
    maps, masks = make_set(20, levels=16, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInputWarning)
        report = metrics_at_threshold(maps, masks, threshold)
    expected = _expected_at(maps, masks, threshold)
    got = (report.pixel_precision, report.pixel_recall, report.pixel_f1, report.pixel_fpr,
           report.image_precision, report.image_recall, report.image_f1, report.image_fpr)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert (report.n_pixels, report.n_anomalous_pixels) == (maps.size, masks.sum())
    assert (report.n_images, report.n_anomalous_images) == (8, 4)


def test_given_image_scores_and_image_threshold():
    maps, masks = make_set(21)
    image_scores = maps.mean(axis=(1, 2)).astype(np.float64)
    cut = float(np.median(image_scores))
    report = metrics_at_threshold(maps, masks, 0.8, image_scores, image_threshold=cut)
    expected = _expected_at(maps, masks, 0.8, image_scores, cut)
    assert (report.image_precision, report.image_recall, report.image_f1) == pytest.approx(
        expected[4:7], abs=1e-12)
    assert report.image_threshold == cut and report.threshold == 0.8


def test_threshold_between_float32_values_is_applied_exactly():
    below = np.nextafter(np.float32(0.1), np.float32(0))
    maps = [np.array([[np.float32(0.1), below]]), np.array([[below, below]])]
    report = metrics_at_threshold(maps, [np.array([[1, 0]]), np.zeros((1, 2))], 0.1)
    assert (report.pixel_precision, report.pixel_recall, report.pixel_fpr) == (1.0, 1.0, 0.0)
    assert (report.image_precision, report.image_recall) == (1.0, 1.0)


def test_normal_threshold_applied_to_a_test_set():
    normal, _ = make_set(22, n_images=6, levels=0)
    maps, masks = make_set(23, levels=0)
    cut = threshold_at_fpr(normal[1::2], 0.05)
    report = metrics_at_threshold(maps, masks, cut.threshold)
    # the test set's normal pixels come from the same distribution: FPR near the target
    assert 0.03 < report.pixel_fpr < 0.07
    assert report.to_dict()["pixel_f1_at_threshold"] == report.pixel_f1


def test_metrics_at_threshold_degenerate():
    maps, masks = make_set(24)
    with pytest.warns(DegenerateInputWarning) as record:
        report = metrics_at_threshold(maps, np.zeros_like(masks), 0.5)
    assert {str(w.message) for w in record} == {"metrics at the threshold: NaN, no anomalous pixel",
                                                "metrics at the threshold: NaN, no anomalous image"}
    assert np.isnan(report.pixel_f1) and np.isnan(report.image_f1)
    with pytest.warns(DegenerateInputWarning) as record:
        report = metrics_at_threshold(maps, masks, 10.0)
    assert {str(w.message) for w in record} == {
        "precision at the threshold: NaN, no pixel scores >= the threshold",
        "precision at the threshold: NaN, no image scores >= the threshold"}
    assert report.image_recall == 0.0 and np.isnan(report.image_precision)


@pytest.mark.parametrize("kwargs,match", [
    ({"threshold": np.nan}, "threshold: expected a finite number"),
    ({"threshold": "high"}, "threshold: expected a number"),
    ({"threshold": 0.5, "image_threshold": np.inf}, "image_threshold"),
    ({"threshold": 0.5, "image_scores": [1.0, 2.0]}, "one score per image"),
])
def test_metrics_at_threshold_invalid_input(kwargs, match):
    maps, masks = make_set(25)
    with pytest.raises(ValueError, match=match):
        metrics_at_threshold(maps, masks, **kwargs)

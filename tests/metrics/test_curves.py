"""Curves: vertices of the exact curves (checked against scikit-learn and the MVTec reference)."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score
from sklearn.metrics import precision_recall_curve as sk_pr_curve
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from pixeval.metrics import DegenerateInputWarning
from pixeval.metrics.curves import pixel_curves, precision_recall_curve, pro_curve, roc_curve

import _metrics_reference as reference
from test_evaluate import make_set


def _flat(levels):
    rng = np.random.default_rng(levels)
    labels = rng.random(3000) < 0.03
    scores = np.floor((rng.random(3000) + 0.3 * labels) * levels) if levels else rng.random(3000) + labels
    return scores, labels


def _points(x, y):
    return set(zip(np.round(x, 12), np.round(y, 12)))


def _corners(x, y):
    """The points where the polyline turns (collinear middle points dropped), in counts."""
    dx1, dy1 = x[1:-1] - x[:-2], y[1:-1] - y[:-2]
    dx2, dy2 = x[2:] - x[1:-1], y[2:] - y[1:-1]
    turn = ~np.isclose(dx1 * dy2 - dy1 * dx2, 0, atol=1e-15)
    keep = np.r_[True, turn, True]
    return _points(x[keep], y[keep])


@pytest.mark.parametrize("levels", [0, 4, 30])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_roc_vertices(levels, dtype):
    scores, labels = _flat(levels)
    scores = scores.astype(dtype)
    fpr, tpr, thresholds = roc_curve(scores, labels)
    sk_fpr, sk_tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    assert _points(fpr, tpr) <= _points(sk_fpr, sk_tpr)
    assert _corners(sk_fpr, sk_tpr) <= _points(fpr, tpr)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert thresholds[0] == np.inf and thresholds[-1] == -np.inf
    assert (np.diff(thresholds) < 0).all()
    for x, y, t in zip(fpr[1:-1], tpr[1:-1], thresholds[1:-1]):  # each point is its threshold's
        assert x == np.mean(scores[~labels] >= t) and y == np.mean(scores[labels] >= t)


@pytest.mark.parametrize("levels", [0, 5])
def test_precision_recall_points(levels):
    scores, labels = _flat(levels)
    precision, recall, thresholds = precision_recall_curve(scores, labels)
    ap = np.sum(np.diff(np.r_[0.0, recall]) * precision)
    assert ap == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    sk_precision, sk_recall, sk_thresholds = sk_pr_curve(labels, scores)
    lookup = dict(zip(sk_thresholds, zip(sk_precision, sk_recall)))
    for p, r, t in zip(precision, recall, thresholds):
        assert lookup[t] == pytest.approx((p, r), abs=1e-12)


def test_pro_curve_vertices_match_mvtec():
    maps, masks = make_set(40, levels=6)
    fpr, pro, _ = pro_curve(maps, masks)
    ref_fpr, ref_pro = reference.pro_curve(maps, masks)
    assert _points(fpr, pro) <= _points(ref_fpr, ref_pro)
    assert np.trapezoid(pro, fpr) == pytest.approx(np.trapezoid(ref_pro, ref_fpr), abs=1e-12)


@pytest.mark.parametrize("limit", [0.3, 0.05, 1.0])
def test_pro_curve_cut_at_the_limit_integrates_to_aupro(limit):
    from pixeval.metrics import aupro
    maps, masks = make_set(41, levels=9)
    fpr, pro, _ = pro_curve(maps, masks, fpr_limit=limit)
    assert fpr[-1] == limit and (fpr <= limit).all()
    assert np.trapezoid(pro, fpr) / limit == pytest.approx(aupro(maps, masks, limit), abs=1e-12)


@pytest.mark.parametrize("levels", [0, 7])
@pytest.mark.parametrize("max_points", [None, 25])
def test_pixel_curves_equal_the_three_curve_functions(levels, max_points):
    maps, masks = make_set(42, levels=levels)
    scores, labels = maps.ravel(), masks.ravel()
    curves = pixel_curves(maps, masks, max_points=max_points)
    expected = {"roc": roc_curve(scores, labels, max_points), "pr": precision_recall_curve(scores, labels, max_points),
                "pro": pro_curve(maps, masks, max_points)}
    assert curves.keys() == expected.keys()
    for name, arrays in expected.items():
        for got, want in zip(curves[name], arrays, strict=True):
            np.testing.assert_array_equal(got, want)


def test_thinning_keeps_ends():
    scores, labels = _flat(0)
    full = roc_curve(scores, labels)
    thinned = roc_curve(scores, labels, max_points=10)
    assert all(t.size <= 10 for t in thinned)
    for a, b in zip(full, thinned):
        assert a[0] == b[0] and a[-1] == b[-1]
    with pytest.raises(ValueError, match="max_points"):
        roc_curve(scores, labels, max_points=1)


def test_degenerate_curves_are_empty():
    with pytest.warns(DegenerateInputWarning, match="no anomalous pixel"):
        fpr, tpr, thresholds = roc_curve([0.1, 0.2], [0, 0])
    assert fpr.size == tpr.size == thresholds.size == 0
    with pytest.warns(DegenerateInputWarning, match="no anomalous pixel"):
        curves = pixel_curves([np.ones((2, 2))], [np.zeros((2, 2))])
    assert all(array.size == 0 for arrays in curves.values() for array in arrays)

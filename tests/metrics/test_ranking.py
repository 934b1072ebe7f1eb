"""Flat-array metrics against scikit-learn and a brute-force F1 loop."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from pixeval.metrics import (
    DegenerateInputWarning,
    auroc,
    average_precision,
    f1_at_threshold,
    f1_max,
)
from pixeval.metrics.ranking import Ranking

from _metrics_reference import f1_max_brute_force


def _random_case(seed, n, levels, positive_rate):
    """Scores with heavy ties (``levels`` distinct values, 0 = continuous) and rare positives."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < positive_rate
    labels[rng.integers(n)] = True  # at least one of each class
    labels[rng.integers(n)] = False
    if labels.all():
        labels[0] = False
    if not labels.any():
        labels[0] = True
    if levels:
        scores = rng.integers(0, levels, n).astype(np.float64) + 0.6 * labels * rng.random(n).round()
    else:
        scores = rng.normal(size=n) + labels
    return scores, labels


cases = st.tuples(
    st.integers(0, 2**32 - 1),
    st.integers(2, 3000),
    st.sampled_from([0, 1, 2, 3, 5, 20, 200]),
    st.sampled_from([0.001, 0.01, 0.05, 0.3, 0.9]),
)


@settings(max_examples=150, deadline=None)
@given(cases)
def test_auroc_and_ap_equal_sklearn(case):
    scores, labels = _random_case(*case)
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert average_precision(scores, labels) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-9
    )


@settings(max_examples=100, deadline=None)
@given(cases)
def test_f1_max_equals_brute_force(case):
    scores, labels = _random_case(*case)
    best, threshold = f1_max(scores, labels)
    expected, _ = f1_max_brute_force(scores, labels)
    assert best == pytest.approx(expected, abs=1e-12)
    f1_there, _, _ = f1_at_threshold(scores, labels, threshold)
    assert f1_there == pytest.approx(expected, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(cases, st.floats(-3, 3))
def test_f1_at_threshold_counts(case, threshold):
    scores, labels = _random_case(*case)
    predicted = scores >= threshold
    tp = np.count_nonzero(predicted & labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInputWarning)
        f1, precision, recall = f1_at_threshold(scores, labels, threshold)
    assert recall == tp / labels.sum()
    assert f1 == pytest.approx(2 * tp / (predicted.sum() + labels.sum()), abs=1e-15)
    if predicted.any():
        assert precision == tp / predicted.sum()
    else:
        assert np.isnan(precision)


def test_small_hand_case():
    # scores 4 3 3 2 1 with labels 1 0 1 0 0: pairs (pos>neg): 4 beats 3 of 3 negatives;
    # the positive 3 beats 2 and 1 and ties the negative 3 -> AUROC = (3 + 2.5) / 6
    scores = np.array([4, 3, 3, 2, 1])
    labels = np.array([1, 0, 1, 0, 0])
    assert auroc(scores, labels) == pytest.approx(5.5 / 6)
    # thresholds with recall steps: t=4 (P=1, R=.5), t=3 (P=2/3, R=1)
    assert average_precision(scores, labels) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # F1 at t=4: 2/(1+2)=0.667; at t=3: 4/(3+2)=0.8 -> best 0.8 at 3
    assert f1_max(scores, labels) == pytest.approx((0.8, 3.0))


def test_counts_are_int64_and_exact():
    scores, labels = _random_case(1, 500, 5, 0.1)
    ranking = Ranking.from_flat(scores, labels)
    for counts in (ranking.per_value, ranking.below, ranking.at_or_below, ranking.tp, ranking.fp):
        assert counts.dtype == np.int64
    assert ranking.tp[-1] == labels.sum()
    assert ranking.fp[-1] == np.count_nonzero(~labels & (scores >= ranking.values[0]))
    assert ranking.below[3] == np.count_nonzero(scores < ranking.values[3])
    assert ranking.at_or_below[3] == np.count_nonzero(scores <= ranking.values[3])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int8, np.uint16, np.int64])
def test_dtypes_give_the_same_result(dtype):
    rng = np.random.default_rng(3)
    levels = rng.integers(0, 100, 4000)
    labels = rng.random(4000) < 0.05 + 0.01 * levels / 10
    scores = levels.astype(dtype)
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, levels), abs=1e-12)
    assert average_precision(scores, labels) == pytest.approx(
        average_precision_score(labels, levels), abs=1e-12
    )


def test_float64_scores_are_not_rounded_to_float32():
    # two scores that are equal in float32 but not in float64 must stay distinct
    scores = np.array([1.0, 1.0 + 1e-12, 0.0])
    labels = np.array([0, 1, 0])
    assert auroc(scores, labels) == 1.0


def test_constant_scores():
    labels = np.array([0, 0, 1, 0, 1, 0, 0, 0])
    scores = np.full(8, 0.25, dtype=np.float32)
    assert auroc(scores, labels) == 0.5
    assert average_precision(scores, labels) == pytest.approx(2 / 8)
    assert f1_max(scores, labels) == pytest.approx((2 * 2 / (8 + 2), 0.25))


@pytest.mark.parametrize("labels,reason", [([0, 0, 0], "no anomalous pixel"),
                                           ([1, 1, 1], "no normal pixel")])
def test_one_class_is_nan_with_warning(labels, reason):
    with pytest.warns(DegenerateInputWarning, match=reason):
        assert np.isnan(auroc([0.1, 0.5, 0.2], labels))
    with pytest.warns(DegenerateInputWarning, match=reason):
        f1, t = f1_max([0.1, 0.5, 0.2], labels)
    assert np.isnan(f1) and np.isnan(t)


def test_precision_nan_when_nothing_predicted():
    with pytest.warns(DegenerateInputWarning, match="no pixel scores >= the threshold"):
        f1, precision, recall = f1_at_threshold([0.1, 0.2, 0.3], [0, 1, 0], 0.5)
    assert f1 == 0.0 and recall == 0.0 and np.isnan(precision)


@pytest.mark.parametrize("scores,labels,match", [
    ([0.1, np.nan, 0.3], [0, 1, 0], "NaN"),
    ([0.1, np.inf, 0.3], [0, 1, 0], "infinite"),
    ([0.1, 0.2], [0, 1, 0], "length 2"),
    ([0.1, 0.2, 0.3], [0, 1, 2], "not binary"),
    ([0.1, 0.2, 0.3], [0, -1, 0], "negative"),
    ([[0.1, 0.2]], [0, 1], "1-D"),
])
def test_invalid_input_raises(scores, labels, match):
    with pytest.raises(ValueError, match=match):
        auroc(np.asarray(scores), labels)


@pytest.mark.slow
def test_counts_stay_exact_beyond_float32_range():
    # 2**24 + 1 normal pixels: float32 counters could not tell 2**24 + 1 from 2**24
    n_neg = 2**24 + 1
    scores = np.zeros(n_neg + 2, dtype=np.float32)
    scores[-2:] = (1.0, 0.0)
    labels = np.zeros(n_neg + 2, dtype=bool)
    labels[-2:] = True
    ranking = Ranking.from_flat(scores, labels)
    assert ranking.fp[-1] == n_neg and ranking.n_neg == n_neg
    assert ranking.below[0] == 0 and ranking.at_or_below[0] == n_neg + 1
    assert average_precision(scores, labels) == pytest.approx(0.5 + 0.5 * 2 / (n_neg + 2), abs=1e-15)

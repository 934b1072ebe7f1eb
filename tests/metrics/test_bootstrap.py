"""Bootstrap over images: each resample equals evaluate() on the resampled image list."""

import numpy as np
import pytest

from sklearn.metrics import average_precision_score, roc_auc_score

from pixeval.metrics import _kernels, bootstrap_samples, evaluate, paired_bootstrap
from pixeval.metrics.bootstrap import compare, draw_multiplicities
from pixeval.metrics.pooled import analyse, collect

from test_evaluate import make_set, quiet_evaluate


@pytest.mark.parametrize("levels,dtype", [(8, np.float32), (0, np.float64)])
def test_each_resample_equals_evaluate_on_the_resampled_images(levels, dtype):
    maps, masks = make_set(30, n_images=9, levels=levels, dtype=dtype)
    image_scores = maps.mean(axis=(1, 2))
    buffer, images, chunks = collect(maps, masks)
    _, resample_set = analyse(buffer, images, chunks, image_scores=image_scores,
                              fpr_limit=0.2, threshold=0.6, resample=True)
    multiplicities = draw_multiplicities(len(maps), 12, seed=5)
    samples = resample_set.metrics(multiplicities, 0.2)
    for b, row in enumerate(multiplicities):
        chosen = np.repeat(np.arange(len(maps)), row)
        expected = quiet_evaluate(maps[chosen], masks[chosen], image_scores[chosen],
                                  fpr_limit=0.2, threshold=0.6)
        for name, values in samples.items():
            assert values[b] == pytest.approx(getattr(expected, name), abs=1e-12, nan_ok=True), name


def test_resamples_do_not_depend_on_how_they_are_split_over_threads():
    maps, masks = make_set(32, n_images=8, levels=6)
    buffer, images, chunks = collect(maps, masks)
    _, resample_set = analyse(buffer, images, chunks, fpr_limit=0.3, resample=True)
    units = resample_set.pixels
    multiplicities = draw_multiplicities(len(maps), 10, seed=2)

    def summaries(n_chunks):
        return _kernels.resampled_summaries(
            multiplicities, units.neg_ptr, units.neg_cell, units.neg_count, units.pos_ptr, units.pos_value,
            units.pos_weight, units.regions, units.n_values, 0.3, n_chunks)

    one_run = summaries(1)
    assert np.isfinite(one_run[:, 1]).sum() >= 5   # most resamples hold anomalous pixels
    for n_chunks in (2, 3, 10, 64):   # 64: more runs than resamples
        np.testing.assert_array_equal(summaries(n_chunks), one_run)


def test_multiplicities_are_seeded_and_sum_to_n():
    first = draw_multiplicities(7, 50, seed=3)
    assert (first.sum(axis=1) == 7).all()
    np.testing.assert_array_equal(first, draw_multiplicities(7, 50, seed=3))
    assert not np.array_equal(first, draw_multiplicities(7, 50, seed=4))


def test_intervals_contain_the_estimate_and_are_reproducible():
    maps, masks = make_set(31, n_images=12)
    report = evaluate(maps, masks, bootstrap=300, seed=1)
    assert report.bootstrap_resamples == 300 and report.confidence == 0.95
    for name in ("pixel_auroc", "pixel_aupr", "pixel_f1_max", "pixel_aupro"):
        low, high = report.intervals[name]
        assert low <= getattr(report, name) <= high
        assert low < high
    assert evaluate(maps, masks, bootstrap=300, seed=1).intervals == report.intervals
    flat = report.to_dict()
    assert flat["pixel_aupr_ci_low"] == report.intervals["pixel_aupr"][0]


def test_paired_bootstrap():
    maps, masks = make_set(32, n_images=16)
    noisy = maps + np.random.default_rng(0).normal(0, 0.5, maps.shape)
    result = paired_bootstrap(maps, noisy, masks, n_resamples=200)
    aupr = result["pixel_aupr"]
    assert aupr.value_a == evaluate(maps, masks).pixel_aupr
    assert aupr.difference == pytest.approx(aupr.value_a - aupr.value_b)
    assert aupr.ci_low > 0 and aupr.p_value < 0.05
    same = paired_bootstrap(maps, maps, masks, n_resamples=200, metrics=["pixel_aupro"])
    assert list(same) == ["pixel_aupro"]
    assert same["pixel_aupro"].difference == 0 and same["pixel_aupro"].p_value == 1.0
    with pytest.raises(ValueError, match="unknown"):
        paired_bootstrap(maps, maps, masks, n_resamples=5, metrics=["nope"])


def test_bootstrap_samples_equal_a_slow_reference_on_the_repeated_images():
    maps, masks = make_set(33, n_images=10, levels=0, dtype=np.float64)
    image_scores = maps.mean(axis=(1, 2))
    samples = bootstrap_samples(maps, masks, image_scores=image_scores, n_resamples=6, seed=9,
                                fpr_limit=0.25)
    assert all(values.shape == (6,) for values in samples.values())
    # the reference builds each resampled image list explicitly, repeating the drawn images
    for b, row in enumerate(draw_multiplicities(len(maps), 6, seed=9)):
        chosen = np.repeat(np.arange(len(maps)), row)
        expected = quiet_evaluate(list(maps[chosen]), list(masks[chosen]), image_scores[chosen],
                                  fpr_limit=0.25)
        for name, values in samples.items():
            assert values[b] == pytest.approx(getattr(expected, name), abs=1e-12, nan_ok=True), name
        labels, scores = masks[chosen].ravel(), maps[chosen].ravel()
        if labels.any():
            assert samples["pixel_auroc"][b] == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
            assert samples["pixel_aupr"][b] == pytest.approx(average_precision_score(labels, scores),
                                                             abs=1e-9)


def test_bootstrap_samples_of_two_detectors_are_paired():
    maps, masks = make_set(34, n_images=12)
    noisy = maps + np.random.default_rng(1).normal(0, 0.4, maps.shape)
    samples_a = bootstrap_samples(maps, masks, n_resamples=150, seed=4)
    samples_b = bootstrap_samples(noisy, masks, n_resamples=150, seed=4)
    # same seed, same image count: the same resamples, so compare() on them is paired_bootstrap
    paired = paired_bootstrap(maps, noisy, masks, n_resamples=150, seed=4)
    report_a, report_b = evaluate(maps, masks), evaluate(noisy, masks)
    for name, comparison in paired.items():
        again = compare(name, getattr(report_a, name), getattr(report_b, name), samples_a[name],
                        samples_b[name], 0.95)
        assert again == comparison, name
    repeated = bootstrap_samples(maps, masks, n_resamples=150, seed=4)
    for name, values in samples_a.items():
        np.testing.assert_array_equal(values, repeated[name])
    other_seed = bootstrap_samples(maps, masks, n_resamples=150, seed=5)
    assert not np.array_equal(other_seed["pixel_aupr"], samples_a["pixel_aupr"])
    with pytest.raises(ValueError, match="n_resamples >= 1"):
        bootstrap_samples(maps, masks, n_resamples=0)

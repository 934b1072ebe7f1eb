"""evaluate(): pooled pixel metrics, image metrics, invariances, degenerate and invalid input."""

import sys
import warnings

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from pixeval.metrics import (DegenerateInputWarning, MetricReport, aupimo, boundary_metrics, evaluate,
                             paired_bootstrap)

import _metrics_reference as reference

METRICS = ("pixel_auroc", "pixel_aupr", "pixel_f1_max", "pixel_aupro",
           "image_auroc", "image_aupr", "image_f1_max")


def make_set(seed=0, n_images=8, shape=(24, 20), levels=32, dtype=np.float32):
    """Score maps with blob defects on half the images, quantised to ``levels`` values (0: not)."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_images, *shape), dtype=bool)
    for i in range(0, n_images, 2):
        masks[i] = ndimage.binary_dilation(rng.random(shape) < 0.01, iterations=2)
    raw = rng.random((n_images, *shape)) + 0.4 * masks
    maps = (np.floor(raw * levels) / levels if levels else raw).astype(dtype)
    return maps, masks


def quiet_evaluate(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInputWarning)
        return evaluate(*args, **kwargs)


def test_pixel_and_image_metrics_equal_references():
    maps, masks = make_set()
    report = evaluate(maps, masks)
    y, s = masks.ravel(), maps.ravel()
    assert report.pixel_auroc == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert report.pixel_aupr == pytest.approx(average_precision_score(y, s), abs=1e-9)
    assert report.pixel_f1_max == pytest.approx(reference.f1_max_brute_force(s, y)[0], abs=1e-12)
    assert report.pixel_aupro == pytest.approx(reference.aupro(maps, masks), abs=1e-9)
    image_y = masks.any(axis=(1, 2))
    image_s = maps.max(axis=(1, 2))
    assert report.image_auroc == pytest.approx(roc_auc_score(image_y, image_s), abs=1e-12)
    assert report.image_aupr == pytest.approx(average_precision_score(image_y, image_s), abs=1e-12)
    assert (report.n_images, report.n_anomalous_images) == (8, 4)
    assert report.n_pixels == maps.size
    assert report.n_anomalous_pixels == masks.sum()
    assert report.n_regions == sum(
        ndimage.label(m, structure=np.ones((3, 3)))[1] for m in masks)


def test_given_image_scores_are_used():
    maps, masks = make_set()
    image_scores = maps.mean(axis=(1, 2))
    report = evaluate(maps, masks, image_scores)
    assert report.image_auroc == pytest.approx(
        roc_auc_score(masks.any(axis=(1, 2)), image_scores), abs=1e-12)


def test_maps_of_different_sizes():
    maps_a, masks_a = make_set(1, shape=(16, 30))
    maps_b, masks_b = make_set(2, shape=(11, 9))
    maps = list(maps_a) + list(maps_b)
    masks = list(masks_a) + list(masks_b)
    report = evaluate(maps, masks)
    y = np.concatenate([m.ravel() for m in masks])
    s = np.concatenate([m.ravel() for m in maps])
    assert report.pixel_aupr == pytest.approx(average_precision_score(y, s), abs=1e-9)
    assert report.pixel_aupro == pytest.approx(reference.aupro(maps, masks), abs=1e-9)


def test_threshold_metrics():
    maps, masks = make_set()
    t = 0.75
    report = evaluate(maps, masks, threshold=t)
    predicted = maps >= t
    tp = np.count_nonzero(predicted & masks)
    assert report.threshold == t
    assert report.pixel_precision_at_threshold == tp / predicted.sum()
    assert report.pixel_recall_at_threshold == tp / masks.sum()
    assert report.pixel_f1_at_threshold == pytest.approx(
        2 * tp / (predicted.sum() + masks.sum()), abs=1e-15)
    labels, flagged = masks.any(axis=(1, 2)), maps.max(axis=(1, 2)) >= t
    assert report.image_f1_at_threshold == pytest.approx(f1_score(labels, flagged), abs=1e-15)
    assert evaluate(maps, masks).image_f1_at_threshold is None


def test_extended_metrics_are_those_of_aupimo_and_boundary_metrics():
    maps, masks = make_set(n_images=12, shape=(200, 100), levels=0)  # 120,000 normal pixels: FPR 1e-5 reachable
    t = 0.9
    plain = evaluate(maps, masks, threshold=t)
    report = evaluate(maps, masks, threshold=t, extended=True)
    assert report.pixel_aupimo == aupimo(maps, masks).mean
    at_f1_max = boundary_metrics(maps, masks, plain.pixel_f1_threshold)
    at_t = boundary_metrics(maps, masks, t)
    assert (report.boundary_f1, report.boundary_iou) == (at_f1_max.boundary_f1, at_f1_max.boundary_iou)
    assert (report.boundary_f1_at_threshold, report.boundary_iou_at_threshold) == (at_t.boundary_f1,
                                                                                   at_t.boundary_iou)
    assert report.aupimo.to_dict().items() <= report.to_dict().items()
    extended = ("boundary_f1", "boundary_iou", "boundary_f1_at_threshold", "boundary_iou_at_threshold",
                *report.aupimo.to_dict())
    assert {k: v for k, v in report.to_dict().items() if k not in extended} == \
        {k: v for k, v in plain.to_dict().items() if k not in extended}
    assert plain.pixel_aupimo is None and plain.aupimo is None and plain.boundary_f1 is None


def test_threshold_between_float32_values():
    # 0.1 is not a float32: a float32 score of 0.1f (> 0.1) counts, the next float32 below not
    maps = np.array([[[np.float32(0.1), np.nextafter(np.float32(0.1), np.float32(0))]]])
    masks = np.array([[[True, False]]])
    report = quiet_evaluate(maps, masks, threshold=0.1)  # a single image: no normal image
    assert report.pixel_recall_at_threshold == 1.0
    assert report.pixel_precision_at_threshold == 1.0


def test_strictly_increasing_transform_changes_nothing():
    maps, masks = make_set(3, levels=50, dtype=np.float64)
    base = evaluate(maps, masks)
    transformed = evaluate(np.exp(4 * maps) - 7.0, masks)
    for name in METRICS:
        assert getattr(transformed, name) == pytest.approx(getattr(base, name), abs=1e-12)
    assert transformed.pixel_f1_threshold == pytest.approx(np.exp(4 * base.pixel_f1_threshold) - 7)


def test_image_permutation_changes_nothing():
    maps, masks = make_set(4)
    base = evaluate(maps, masks)
    order = np.random.default_rng(0).permutation(len(maps))
    permuted = evaluate(maps[order], masks[order])
    for name in METRICS:
        assert getattr(permuted, name) == getattr(base, name)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.uint8, np.int32])
def test_score_dtypes(dtype):
    maps, masks = make_set(5, levels=0 if dtype in (np.float16, np.float64) else 200,
                           dtype=np.float64)
    maps = (maps * 100).astype(dtype)
    report = evaluate(maps, masks)
    y, s = masks.ravel(), maps.ravel().astype(np.float64)
    assert report.pixel_auroc == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert report.pixel_aupr == pytest.approx(average_precision_score(y, s), abs=1e-9)


@pytest.mark.parametrize("scale", [1, 255])
def test_mask_encodings(scale):
    maps, masks = make_set(6)
    base = evaluate(maps, masks)
    report = evaluate(maps, masks.astype(np.uint8) * scale)
    assert report.pixel_aupro == base.pixel_aupro
    assert report.pixel_aupr == base.pixel_aupr


def test_input_is_not_modified():
    maps, masks = make_set(7)
    copy = maps.copy()
    evaluate(maps, masks)
    np.testing.assert_array_equal(maps, copy)


def test_no_anomalous_pixel():
    maps, masks = make_set(8)
    with pytest.warns(DegenerateInputWarning) as record:
        report = evaluate(maps, np.zeros_like(masks))
    messages = {str(w.message) for w in record}
    assert messages == {"pixel metrics: NaN, no anomalous pixel",
                        "image metrics: NaN, no anomalous image"}
    for name in METRICS:
        assert np.isnan(getattr(report, name)), name


@pytest.mark.filterwarnings("ignore:image metrics")
def test_no_normal_pixel():
    maps, masks = make_set(8)
    with pytest.warns(DegenerateInputWarning, match="no normal pixel"):
        report = evaluate(maps, np.ones_like(masks))
    for name in ("pixel_auroc", "pixel_aupr", "pixel_f1_max", "pixel_aupro"):
        assert np.isnan(getattr(report, name)), name


def test_no_normal_image_only_affects_image_metrics():
    maps, masks = make_set(9)
    with pytest.warns(DegenerateInputWarning, match="no normal image"):
        report = evaluate(maps[::2], masks[::2])
    assert np.isnan(report.image_auroc)
    assert not np.isnan(report.pixel_aupro)


def test_constant_maps():
    maps, masks = make_set(10)
    report = evaluate(np.zeros_like(maps), masks)
    assert report.pixel_auroc == 0.5
    assert report.pixel_aupr == pytest.approx(masks.mean())
    # the PRO curve is the diagonal from (0, 0) to (1, 1): area 0.3^2/2 / 0.3
    assert report.pixel_aupro == pytest.approx(0.15)


@pytest.mark.parametrize("change,match", [
    (lambda maps, masks: (maps.astype(np.float32) * np.where(np.arange(maps.size).reshape(maps.shape) == 500, np.nan, 1), masks), "image 1: scores contain NaN"),
    (lambda maps, masks: (list(maps[:2]) + [np.full((3, 3), np.inf)], list(masks[:2]) + [np.zeros((3, 3))]), "image 2: scores contain infinite"),
    (lambda maps, masks: (list(maps[:3]), list(masks[:2]) + [masks[2][:5]]), "image 2: score map shape"),
    (lambda maps, masks: (maps, masks * np.uint8(2) + (np.arange(masks.size).reshape(masks.shape) == 3)), "image 0: mask is not binary"),
    (lambda maps, masks: (maps, masks[:3]), "8 score maps but 3 masks"),
    (lambda maps, masks: ([], []), "no images"),
    (lambda maps, masks: ([maps[0], np.zeros((0, 4))], [masks[0], np.zeros((0, 4))]), "image 1: empty"),
    (lambda maps, masks: (maps[0], masks[0]), "one 2-D array"),
])
def test_invalid_input_names_the_problem(change, match):
    maps, masks = make_set(11)
    bad_maps, bad_masks = change(maps, masks)
    with pytest.raises(ValueError, match=match):
        evaluate(bad_maps, bad_masks)


def test_fpr_limit_is_checked():
    maps, masks = make_set(12)
    with pytest.raises(ValueError, match="fpr_limit"):
        evaluate(maps, masks, fpr_limit=0)


@pytest.mark.parametrize("arguments, match", [
    ({"fpr_limit": 1.5}, "fpr_limit"),
    ({"bootstrap": -1}, "bootstrap must be a non-negative integer"),
    ({"bootstrap": 10, "confidence": 1.0}, "confidence must be in"),
    ({"threshold": float("nan")}, "threshold: expected a finite number"),
    ({"image_scores": np.zeros(3)}, r"image_scores: expected one score per image \(8\)"),
])
def test_arguments_are_checked_before_the_maps_are_copied(monkeypatch, arguments, match):
    """A bad argument is reported before any work on the maps: the copy into one buffer never runs."""
    module = sys.modules["pixeval.metrics.evaluate"]  # the module, which the function of that name hides

    def never(*args):
        raise AssertionError("the maps were copied before the arguments were checked")

    monkeypatch.setattr(module, "collect", never)
    maps, masks = make_set(12)
    with pytest.raises(ValueError, match=match):
        evaluate(maps, masks, **arguments)


def test_paired_bootstrap_checks_metric_names_before_any_resampling(monkeypatch):
    module = sys.modules["pixeval.metrics.evaluate"]
    monkeypatch.setattr(module, "_report_and_samples", lambda *args: pytest.fail("resampled before checking"))
    maps, masks = make_set(12)
    with pytest.raises(ValueError, match=r"unknown or unavailable \['pixel_f1_at_threshold'\]"):
        paired_bootstrap(maps, maps, masks, metrics=["pixel_aupr", "pixel_f1_at_threshold"])


def test_to_dict_is_flat():
    maps, masks = make_set(13)
    flat = evaluate(maps, masks).to_dict()
    assert flat["pixel_aupr"] == evaluate(maps, masks).pixel_aupr
    assert all(not isinstance(v, (dict, list, tuple)) for v in flat.values())
    assert isinstance(evaluate(maps, masks), MetricReport)


@pytest.mark.parametrize("chunk", [1, 37, 1000])
def test_scores_sorted_in_several_chunks(monkeypatch, chunk):
    from pixeval.metrics import curves
    from pixeval.metrics.ranking import SortedScores
    maps, masks = make_set(14, levels=40)
    expected = evaluate(maps, masks, threshold=0.5)
    expected_curve = curves.pro_curve(maps, masks)
    monkeypatch.setattr(SortedScores, "CHUNK", chunk)
    assert evaluate(maps, masks, threshold=0.5) == expected
    assert expected.pixel_aupr == pytest.approx(
        average_precision_score(masks.ravel(), maps.ravel()), abs=1e-9)
    for a, b in zip(curves.pro_curve(maps, masks), expected_curve):
        np.testing.assert_array_equal(a, b)

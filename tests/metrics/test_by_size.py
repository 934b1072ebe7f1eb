"""Metrics by defect size against a slow reference that labels, bins and scores each bin alone."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from sklearn.metrics import average_precision_score

from pixeval.metrics import DegenerateInputWarning, evaluate, metrics_by_size

import _metrics_reference as reference


def aupro_brute_force(scores, normal, region_ids, limit):
    """MVTec AUPRO from flat arrays: ``normal`` marks the negatives, ``region_ids`` (> 0) the
    regions; pixels that are neither are left out. Every distinct score is a threshold."""
    regions = np.unique(region_ids[region_ids > 0])
    sizes = np.bincount(region_ids)[regions]
    fprs, pros = [0.0], [0.0]
    for t in np.unique(scores[normal | (region_ids > 0)])[::-1]:
        fprs.append(np.mean(scores[normal] >= t))
        hits = np.bincount(region_ids, weights=scores >= t, minlength=regions.max() + 1)[regions]
        pros.append(np.mean(hits / sizes))
    fprs.append(1.0)
    pros.append(1.0)
    return reference.trapezoid(fprs, pros, limit) / limit


def by_size_reference(maps, masks, edges, threshold, limit, min_overlap):
    """Per bin: (n_regions, AP, AUPRO, mean overlap, detection rate, pixel recall)."""
    scores, normal, bins, ids = [], [], [], []
    next_id = 0
    for score_map, mask in zip(maps, masks):
        labels, count = reference.label_8_connected(np.asarray(mask) > 0)
        region_bin = np.zeros(labels.shape, dtype=int) - 1
        region_ids = np.zeros(labels.shape, dtype=int)
        for r in range(1, count + 1):
            area = np.count_nonzero(labels == r) / labels.size
            region_bin[labels == r] = np.searchsorted(edges, area, side="right")
            next_id += 1
            region_ids[labels == r] = next_id
        scores.append(np.ravel(score_map).astype(np.float64))
        normal.append(np.ravel(labels == 0))
        bins.append(region_bin.ravel())
        ids.append(region_ids.ravel())
    scores, normal, bins, ids = map(np.concatenate, (scores, normal, bins, ids))
    results = []
    for b in range(len(edges) + 1):
        in_bin = bins == b
        if not in_bin.any():
            results.append(None)
            continue
        keep = normal | in_bin
        ap = average_precision_score(in_bin[keep], scores[keep])
        aupro = aupro_brute_force(scores, normal, np.where(in_bin, ids, 0), limit)
        overlaps = [np.mean(scores[ids == r] >= threshold) for r in np.unique(ids[in_bin])]
        results.append((len(overlaps), ap, aupro, np.mean(overlaps),
                        np.mean(np.array(overlaps) >= min_overlap), np.mean(scores[in_bin] >= threshold)))
    return results


def random_set(seed, n_images, size, levels):
    """Blobs of many sizes (so the bins fill), defect-free images among them, ties by levels."""
    rng = np.random.default_rng(seed)
    maps, masks = [], []
    for i in range(n_images):
        shape = (size + i % 3, size)
        mask = rng.random(shape) < 0.02
        mask |= ndimage.binary_dilation(rng.random(shape) < 0.005, iterations=int(rng.integers(1, 4)))
        if i % 3 == 2:
            mask[:] = False
        raw = rng.random(shape) + 0.4 * mask * rng.random(shape)
        maps.append(np.floor(raw * levels) / levels if levels else raw)
        masks.append(mask)
    masks[0][0, 0] = True
    return maps, masks


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(8, 36),
       st.sampled_from([0, 3, 16]), st.sampled_from([(0.001, 0.01), (0.005,), (0.002, 0.01, 0.03)]),
       st.sampled_from([0.3, 0.1, 1.0]), st.sampled_from([0.5, 1.0, 0.25]))
def test_each_bin_equals_the_reference(seed, n_images, size, levels, edges, limit, min_overlap):
    maps, masks = random_set(seed, n_images, size, levels)
    threshold = float(np.quantile(np.concatenate([m.ravel() for m in maps]), 0.9))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInputWarning)
        report = metrics_by_size(maps, masks, edges=edges, threshold=threshold, fpr_limit=limit,
                                 min_overlap=min_overlap)
    expected = by_size_reference(maps, masks, edges, threshold, limit, min_overlap)
    assert len(report.bins) == len(edges) + 1
    for got, want in zip(report.bins, expected):
        if want is None:
            assert got.n_regions == 0 and np.isnan(got.pixel_aupr)
            continue
        assert got.n_regions == want[0]
        assert got.pixel_aupr == pytest.approx(want[1], abs=1e-9)
        assert got.aupro == pytest.approx(want[2], abs=1e-9)
        assert (got.region_recall, got.region_detection_rate, got.pixel_recall) == pytest.approx(
            want[3:], abs=1e-12)


def test_one_bin_is_the_whole_set():
    maps, masks = random_set(1, 4, 20, 0)
    report = metrics_by_size(maps, masks, edges=())
    whole = evaluate(maps, masks)
    (only,) = report.bins
    assert only.label == "all" and only.n_regions == whole.n_regions
    assert only.pixel_aupr == pytest.approx(whole.pixel_aupr, abs=1e-12)
    assert only.aupro == pytest.approx(whole.pixel_aupro, abs=1e-12)
    assert report.threshold == whole.pixel_f1_threshold and report.threshold_from == "pixel_f1_max"


def test_bins_labels_edges_and_counts():
    scores = np.zeros((40, 50))
    mask = np.zeros((40, 50), bool)
    mask[0, 0] = True                     # 1 px = 0.05 %
    mask[10:12, 10:12] = True             # 4 px = 0.2 % (exactly on no edge)
    mask[20:30, 20:30] = True             # 100 px = 5 %
    mask[35, 45] = mask[36, 46] = True    # diagonal neighbours: one region of 2 px = 0.1 %
    report = metrics_by_size([scores], [mask], threshold=0.5)
    assert [b.label for b in report.bins] == ["< 0.1%", "0.1-1%", ">= 1%"]
    assert [b.n_regions for b in report.bins] == [1, 2, 1]  # 0.1 % is on the edge: the bin above
    assert [b.n_pixels for b in report.bins] == [1, 6, 100]
    assert [(b.low, b.high) for b in report.bins] == [(0, 0.001), (0.001, 0.01), (0.01, 1)]
    rows = report.to_records()
    assert rows[1]["n_regions"] == 2 and rows[1]["threshold"] == 0.5 and rows[1]["fpr_limit"] == 0.3


def test_detection_rate_counts_regions_over_the_overlap():
    scores = np.zeros((10, 10))
    mask = np.zeros((10, 10), bool)
    mask[0, 0:4] = True
    scores[0, 0:2] = 1.0   # region A: overlap 0.5
    mask[5, 0:4] = True
    scores[5, 0] = 1.0     # region B: overlap 0.25
    (size_bin,) = metrics_by_size([scores], [mask], edges=(), threshold=0.5).bins
    assert size_bin.region_recall == pytest.approx(0.375)
    assert size_bin.region_detection_rate == 0.5
    assert size_bin.pixel_recall == 0.375
    (strict,) = metrics_by_size([scores], [mask], edges=(), threshold=0.5, min_overlap=0.6).bins
    assert strict.region_detection_rate == 0.0


def test_empty_bin_is_nan_with_a_warning():
    maps, masks = random_set(2, 3, 20, 0)
    with pytest.warns(DegenerateInputWarning, match="size bin >= 90%: NaN, no anomalous region"):
        report = metrics_by_size(maps, masks, edges=(0.9,))
    assert report.bins[1].n_regions == 0 and np.isnan(report.bins[1].aupro)
    assert report.bins[0].n_regions > 0


@pytest.mark.parametrize("kwargs,match", [
    ({"edges": (0.01, 0.001)}, "edges"),
    ({"edges": (0.0, 0.1)}, "edges"),
    ({"edges": (0.5, 1.0)}, "edges"),
    ({"min_overlap": 0}, "min_overlap"),
    ({"fpr_limit": 2}, "fpr_limit"),
    ({"threshold": np.nan}, "threshold"),
])
def test_invalid_arguments(kwargs, match):
    maps, masks = random_set(3, 2, 10, 0)
    with pytest.raises(ValueError, match=match):
        metrics_by_size(maps, masks, **kwargs)

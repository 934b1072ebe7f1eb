"""PixelAccumulator: streaming == evaluate, merge == one pass, binned mode."""

import pickle

import numpy as np
import pytest

from pixeval.metrics import PixelAccumulator, evaluate

from test_evaluate import make_set


def _fill(accumulator, maps, masks, image_scores=None):
    for i, (score_map, mask) in enumerate(zip(maps, masks)):
        accumulator.update(score_map, mask, None if image_scores is None else image_scores[i])
    return accumulator


def test_streaming_equals_evaluate():
    maps, masks = make_set(20, levels=0)
    assert _fill(PixelAccumulator(), maps, masks).compute(threshold=0.6) == evaluate(
        maps, masks, threshold=0.6)


@pytest.mark.parametrize("split", [1, 3, 7])
def test_merged_shards_equal_one_pass(split):
    maps, masks = make_set(21, n_images=8)
    scores = maps.mean(axis=(1, 2))
    one_pass = _fill(PixelAccumulator(0.2), maps, masks, scores).compute(threshold=0.5)
    first = _fill(PixelAccumulator(0.2), maps[:split], masks[:split], scores[:split])
    second = _fill(PixelAccumulator(0.2), maps[split:], masks[split:], scores[split:])
    shipped = pickle.loads(pickle.dumps(second))  # shards travel between processes
    assert first.merge(shipped).compute(threshold=0.5) == one_pass
    assert len(first) == 8


def test_compute_can_be_repeated_and_continued():
    maps, masks = make_set(22)
    accumulator = _fill(PixelAccumulator(), maps[:4], masks[:4])
    accumulator.compute()
    _fill(accumulator, maps[4:], masks[4:])
    assert accumulator.compute() == evaluate(maps, masks)


def test_mixed_dtypes_rank_in_float64():
    maps, masks = make_set(23, levels=0, dtype=np.float64)
    accumulator = PixelAccumulator()
    for i, (score_map, mask) in enumerate(zip(maps, masks)):
        accumulator.update(score_map if i % 2 else score_map.astype(np.float32), mask)
    mixed = [m if i % 2 else m.astype(np.float32) for i, m in enumerate(maps)]
    assert accumulator.compute() == evaluate(mixed, masks)


def test_binned_equals_exact_metrics_of_binned_scores():
    maps, masks = make_set(24, levels=0)
    bins, low, high = 50, 0.0, 1.4
    binned = _fill(PixelAccumulator(bins=bins, score_range=(low, high)), maps, masks)
    report = binned.compute(threshold=0.7)
    indices = np.clip(np.floor((maps.astype(np.float64) - low) * bins / (high - low)), 0, bins - 1)
    expected = evaluate(indices, masks, maps.max(axis=(1, 2)),
                        threshold=np.floor((0.7 - low) * bins / (high - low)))
    assert report.binned
    for name in ("pixel_auroc", "pixel_aupr", "pixel_f1_max", "pixel_aupro",
                 "pixel_f1_at_threshold", "pixel_precision_at_threshold", "image_auroc"):
        assert getattr(report, name) == pytest.approx(getattr(expected, name), abs=1e-12), name
    assert report.pixel_f1_threshold == pytest.approx(low + expected.pixel_f1_threshold * (high - low) / bins)
    exact = evaluate(maps, masks)
    assert report.pixel_aupr == pytest.approx(exact.pixel_aupr, abs=0.05)


def test_binned_merge_and_many_bins_are_exact_on_quantised_scores():
    maps, masks = make_set(25, levels=16)  # scores are multiples of 1/16
    shards = [_fill(PixelAccumulator(bins=4096, score_range=(0, 2)), maps[i::2], masks[i::2])
              for i in range(2)]
    report = shards[0].merge(shards[1]).compute()
    exact = evaluate(np.concatenate([maps[0::2], maps[1::2]]),
                     np.concatenate([masks[0::2], masks[1::2]]))
    for name in ("pixel_auroc", "pixel_aupr", "pixel_f1_max", "pixel_aupro"):
        assert getattr(report, name) == pytest.approx(getattr(exact, name), abs=1e-12)


def test_invalid_use():
    with pytest.raises(ValueError, match="score_range"):
        PixelAccumulator(bins=10)
    with pytest.raises(ValueError, match="no images"):
        PixelAccumulator().compute()
    with pytest.raises(ValueError, match="different"):
        PixelAccumulator().merge(PixelAccumulator(0.1))
    maps, masks = make_set(26)
    accumulator = PixelAccumulator()
    accumulator.update(maps[0], masks[0], 0.5)
    accumulator.update(maps[1], masks[1])
    with pytest.raises(ValueError, match="some images but not all"):
        accumulator.compute()
    with pytest.raises(ValueError, match="image 2: score map shape"):
        accumulator.update(maps[2], masks[2][:3])
    binned = _fill(PixelAccumulator(bins=8, score_range=(0, 1)), maps, masks)
    with pytest.raises(ValueError, match="exact mode"):
        binned.compute(bootstrap=10)

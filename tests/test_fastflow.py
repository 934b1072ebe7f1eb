"""FastFlow (detectors.fastflow): the loss and the map against plain references, the detector
contract, and an end-to-end run on the built-in data."""

import numpy as np
import pytest
import torch

from detectors.fastflow import PRESETS, FastFlow, FastFlowModel, fastflow_loss, fastflow_map
from pixeval import get_detector, load_detector
from pixeval.testing import check_detector

from detector_data import defect_contrast, texture_images

TINY = dict(backbone="tiny", resolution=32, epochs=2, flow_steps=2, train_batch=4)


def test_loss_is_the_batch_mean_negative_log_likelihood_without_its_constant():
    rng = np.random.default_rng(0)
    outputs = [(torch.from_numpy(rng.normal(size=(3, 4, 2, 2))), torch.from_numpy(rng.normal(size=3))),
               (torch.from_numpy(rng.normal(size=(3, 6, 1, 1))), torch.from_numpy(rng.normal(size=3)))]
    expected = sum(np.mean([0.5 * np.sum(z.numpy()[i] ** 2) - d.numpy()[i] for i in range(3)]) for z, d in outputs)
    assert float(fastflow_loss(outputs)) == pytest.approx(expected, rel=1e-12)


def test_map_is_the_mean_over_levels_of_the_upsampled_negative_channel_mean_likelihood():
    rng = np.random.default_rng(1)
    z1 = rng.normal(size=(2, 3, 4, 4)) * 5
    z2 = rng.normal(size=(2, 5, 2, 2)) * 5
    got = fastflow_map([(torch.from_numpy(z1), None), (torch.from_numpy(z2), None)], 8).numpy()

    def upsample(m, size):  # bilinear, align_corners=False, written out
        h = m.shape[0]
        coords = np.clip((np.arange(size) + 0.5) * h / size - 0.5, 0, h - 1)
        lo = np.floor(coords).astype(int)
        hi = np.minimum(lo + 1, h - 1)
        w = coords - lo
        rows = m[lo] * (1 - w)[:, None] + m[hi] * w[:, None]
        return rows[:, lo] * (1 - w)[None] + rows[:, hi] * w[None]

    for i in range(2):
        levels = [-np.exp(-0.5 * np.mean(z[i] ** 2, axis=0)) for z in (z1, z2)]
        expected = np.mean([upsample(level, 8) for level in levels], axis=0)
        assert np.allclose(got[i], expected, atol=1e-12)
    assert got.dtype == np.float64 and got.max() <= 0


def test_model_has_a_layer_norm_and_alternating_subnets_per_level():
    model = FastFlowModel([(4, 8, 8), (6, 4, 4)], flow_steps=4, hidden_ratio=1.0, conv3x3_only=False,
                          clamp=2.0, seed=0)
    kernels = [block.subnet[0].kernel_size[0] for block in model.flows[0].blocks]
    assert kernels == [3, 1, 3, 1] and model.norms[1].normalized_shape == (6, 4, 4)
    three = FastFlowModel([(4, 8, 8)], flow_steps=2, hidden_ratio=1.0, conv3x3_only=True, clamp=2.0, seed=0)
    assert [b.subnet[0].kernel_size[0] for b in three.flows[0].blocks] == [3, 3]


def test_presets_fill_only_unset_values():
    assert FastFlow().params.epochs == PRESETS["quick"]["epochs"]
    assert FastFlow(preset="paper").params.epochs == 500 and FastFlow(preset="paper", epochs=3).params.epochs == 3
    assert get_detector("fastflow") is FastFlow


@pytest.mark.slow
def test_keeps_the_detector_contract():
    check_detector(FastFlow, **TINY, seed=3)


def test_training_lowers_the_loss_and_a_saved_detector_predicts_the_same_maps(tmp_path):
    images = texture_images(8)
    detector = FastFlow(**TINY, seed=1)
    levels = detector.levels(images)
    with torch.no_grad():
        before = float(fastflow_loss(detector._model([tuple(lv.shape[1:]) for lv in levels])(levels)))
    detector.fit(images)
    with torch.no_grad():
        after = float(fastflow_loss(detector.model(levels)))
    assert after < before
    test = texture_images(2, seed=5) + texture_images(1, seed=6, shape=(30, 20))
    prediction = detector.predict(test)
    assert [m.shape for m in prediction.maps] == [(40, 48), (40, 48), (30, 20)]
    assert np.allclose(prediction.image_scores, [m.max() for m in prediction.maps])
    again = load_detector(detector.save(tmp_path / "ff")).predict(test)
    assert all(np.array_equal(a, b) for a, b in zip(prediction.maps, again.maps))


@pytest.mark.slow
def test_defects_of_the_built_in_data_score_higher_than_their_surroundings():
    inside, outside = defect_contrast(FastFlow(resolution=128, epochs=30, train_batch=8, seed=0))
    assert inside > outside

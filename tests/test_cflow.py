"""CFLOW-AD (detectors.cflow): the positional encoding, likelihood and learning-rate schedule
against plain references, the detector contract, maps independent of the other test images,
and an end-to-end run on the built-in data."""

import math

import numpy as np
import pytest
import torch

from detectors.cflow import PRESETS, CFlow, learning_rate, log_likelihood_per_dim, positional_encoding
from pixeval import ParamError, get_detector, load_detector
from pixeval.testing import check_detector

from detector_data import defect_contrast, texture_images

TINY = dict(backbone="tiny", resolution=32, meta_epochs=2, sub_epochs=1, coupling_blocks=2, train_batch=4)


def test_positional_encoding_matches_a_plain_loop():
    channels, height, width = 16, 3, 5
    got = positional_encoding(channels, height, width).numpy()
    half = channels // 2
    for c in range(channels):
        k = (c % half) // 2
        omega = math.exp(-2 * k * math.log(10000.0) / half)
        for i in range(height):
            for j in range(width):
                coordinate = j if c < half else i
                expected = math.sin(coordinate * omega) if c % 2 == 0 else math.cos(coordinate * omega)
                assert got[c, i, j] == pytest.approx(expected, abs=1e-6)


def test_likelihood_per_dimension_is_the_standard_normal_log_density_plus_the_log_determinant():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 7))
    log_det = rng.normal(size=5)
    got = log_likelihood_per_dim(torch.from_numpy(z), torch.from_numpy(log_det)).numpy()
    density = np.array([np.sum([-0.5 * math.log(2 * math.pi) - 0.5 * v * v for v in row]) for row in z])
    assert np.allclose(got, (density + log_det) / 7, atol=1e-12)


def test_learning_rate_warms_up_linearly_then_follows_the_cosine():
    lr, epochs = 2e-4, 25
    cosine = [lr * 1e-3 + (lr - lr * 1e-3) * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)]
    assert learning_rate(lr, epochs, 2, 0, 0.0) == pytest.approx(lr / 10)
    assert learning_rate(lr, epochs, 2, 1, 0.5) == pytest.approx(lr / 10 + 0.5 * (cosine[2] - lr / 10))
    assert [learning_rate(lr, epochs, 2, e, 1.0) for e in range(2, epochs)] == pytest.approx(cosine[2:])


def test_default_layers_are_the_stride_8_16_32_stage_ends():
    detector = CFlow()
    assert detector.params.layers == "blocks.4,blocks.10,blocks.14"
    assert detector.params.meta_epochs == PRESETS["quick"]["meta_epochs"] and get_detector("cflow") is CFlow
    assert CFlow(backbone="tiny").layer_names == ("layer1", "layer2", "layer3")
    with pytest.raises(ParamError, match="has no layer9"):
        CFlow(backbone="tiny", layers="layer1,layer9").layer_names


@pytest.mark.slow
def test_keeps_the_detector_contract():
    check_detector(CFlow, **TINY, seed=3)


def test_maps_do_not_depend_on_the_other_test_images_and_survive_save_and_load(tmp_path):
    images = texture_images(6)
    detector = CFlow(**TINY, seed=1).fit(images)
    test = texture_images(3, seed=4) + texture_images(1, seed=5, shape=(30, 20))
    together = detector.predict(test)
    alone = [detector.predict([image]).maps[0] for image in test]
    # no statistic of the test set enters a map: alone or together, the same up to float rounding
    assert all(np.allclose(a, b, rtol=1e-5, atol=1e-9) for a, b in zip(together.maps, alone))
    assert [m.shape for m in together.maps] == [(40, 48)] * 3 + [(30, 20)]
    assert np.allclose(together.image_scores, [m.max() for m in together.maps])
    # the training fibres' likelihood peaks at m_l, so a training image's map is >= -(levels) nowhere below
    train_map = detector.predict(images[:1]).maps[0]
    assert train_map.min() >= -3.0 - 1e-5
    again = load_detector(detector.save(tmp_path / "cflow")).predict(test)
    assert all(np.array_equal(a, b) for a, b in zip(together.maps, again.maps))


@pytest.mark.slow
def test_defects_of_the_built_in_data_score_higher_than_their_surroundings():
    inside, outside = defect_contrast(CFlow(resolution=128, meta_epochs=4, sub_epochs=2, train_batch=8, seed=0))
    assert inside > outside


def test_fibres_likelier_than_every_training_fibre_count_as_the_likeliest_and_maps_stay_finite():
    detector = CFlow(**TINY, seed=2).fit(texture_images(4))
    detector.max_likelihood = [-1e6] * 3  # every test fibre above the training maximum: exp would overflow
    maps = detector.predict(texture_images(2, seed=8)).maps
    assert all(np.isfinite(m).all() and np.allclose(m, -3.0) for m in maps)


def test_rotated_views_turn_the_resized_image_about_its_centre_with_black_corners():
    from detectors.cflow import rotated_view
    from detectors.features import IMAGENET_MEAN, IMAGENET_STD, images_to_tensor

    image = texture_images(1, seed=9, shape=(50, 70))[0]
    assert torch.equal(rotated_view(image, 24, 0.0), images_to_tensor([image], 24)[0])
    # a quarter turn of a square view moves whole pixels: counter-clockwise, nothing filled
    assert torch.equal(rotated_view(image, 24, 90.0), torch.rot90(images_to_tensor([image], 24)[0], 1, dims=(1, 2)))
    # at 45 degrees the corners come from outside the image: black, i.e. -mean/std after normalisation
    corner = rotated_view(image, 24, 45.0)[:, 0, 0]
    black = -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(corner, black)


def test_rotation_augmentation_is_seeded_and_changes_the_fit_only_when_asked():
    images = texture_images(6)
    plain = CFlow(**TINY, seed=1).fit(images).state_dict()["decoders"]
    turned = [CFlow(**TINY, seed=1, rotation_degrees=5.0).fit(images).state_dict()["decoders"] for _ in range(2)]
    assert all(torch.equal(turned[0][k], turned[1][k]) for k in plain)
    assert not all(torch.equal(plain[k], turned[0][k]) for k in plain)

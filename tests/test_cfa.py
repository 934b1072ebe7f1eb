"""CFA (detectors.cfa) against slow, obviously-correct references of the original code's maths."""

import numpy as np
import pytest
import torch

from detectors.cfa import CFA, PRESETS
from detectors.cfa.loss import CFAHead, squared_distances
from detectors.cfa.model import CoordConvDescriptor, fuse_levels, fused_features
from detectors.cfa.training import train_heads
from pixeval import ParamError, get_detector
from pixeval.testing import check_detector

from detector_data import texture_images


def test_fuse_levels_is_3x3_mean_with_zero_padding_then_bilinear_upsampling():
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.random((1, 2, 6, 6)).astype(np.float32))
    b = torch.from_numpy(rng.random((1, 3, 3, 3)).astype(np.float32))
    fused = fuse_levels([a, b])
    assert fused.shape == (1, 5, 6, 6)
    padded = np.pad(a[0].numpy(), ((0, 0), (1, 1), (1, 1)))
    ref = np.zeros((2, 6, 6), np.float32)
    for i in range(6):
        for j in range(6):
            ref[:, i, j] = padded[:, i:i + 3, j:j + 3].sum(axis=(1, 2)) / 9.0
    assert np.allclose(fused[0, :2].numpy(), ref, atol=1e-6)
    # level 2 pooled the same way, then upsampled: the centre of each 2x2 output block
    # maps to an input pixel centre exactly only at the corners; check the corner values
    pb = np.pad(b[0].numpy(), ((0, 0), (1, 1), (1, 1)))
    corner = pb[:, 0:3, 0:3].sum(axis=(1, 2)) / 9.0
    assert np.allclose(fused[0, 2:, 0, 0].numpy(), corner, atol=1e-6)


def test_coordconv_is_a_1x1_conv_over_features_and_coordinates():
    torch.manual_seed(0)
    desc = CoordConvDescriptor(3, 4)
    x = torch.randn(2, 3, 5, 7)
    out = desc(x).detach().numpy()
    w = desc.conv.weight.detach().numpy()[:, :, 0, 0]
    bias = desc.conv.bias.detach().numpy()
    for n in range(2):
        for i in range(5):
            for j in range(7):
                v = np.concatenate([x[n, :, i, j].numpy(), [i / 4 * 2 - 1, j / 6 * 2 - 1]])
                assert np.allclose(out[n, :, i, j], w @ v + bias, atol=1e-5)


def _slow_loss(phi, bank, r, K=3, J=3, alpha=0.1, nu=1e-3):
    phi = phi.detach().numpy().astype(np.float64)
    bank = bank.numpy().astype(np.float64)
    att, rep = [], []
    for n in range(phi.shape[0]):
        for p in phi[n].reshape(phi.shape[1], -1).T:
            d = np.sort(((p[None] - bank) ** 2).sum(1))[:K + J]
            att += list(np.maximum(d[:K] - r ** 2, 0))
            rep += list(np.maximum(r ** 2 - d[J:] - alpha, 0))
    return (np.mean(att) + np.mean(rep)) / nu


def test_loss_and_score_match_a_slow_reference():
    rng = np.random.default_rng(1)
    feats = torch.from_numpy(rng.normal(size=(3, 5, 4, 4)).astype(np.float32))
    head = CFAHead(5, seed=3)
    head.init_bank(feats)
    phi = head.descriptor(feats)
    assert np.isclose(float(head.loss(feats).detach()), _slow_loss(phi, head.bank, 1e-5), rtol=1e-4)
    # with a large radius the repulsion term is active and r receives a gradient
    with torch.no_grad():
        head.r.fill_(3.0)
    loss = head.loss(feats)
    assert np.isclose(float(loss.detach()), _slow_loss(phi, head.bank, 3.0), rtol=1e-4)
    loss.backward()
    assert head.r.grad is not None and float(head.r.grad) != 0.0
    # score: softmin over the 3 nearest distances, weight of the nearest times its distance
    score = head.score(feats).numpy()
    p = phi.detach().numpy()
    for n in range(3):
        for i in range(4):
            for j in range(4):
                d = np.sort(np.sqrt(((p[n, :, i, j][None] - head.bank.numpy()) ** 2).sum(1)))[:3]
                w = np.exp(-d) / np.exp(-d).sum()
                assert np.isclose(score[n, i, j], w[0] * d[0], rtol=1e-4, atol=1e-6)


def test_memory_bank_is_the_per_position_mean_and_kmeans_compresses_it():
    rng = np.random.default_rng(2)
    feats = torch.from_numpy(rng.normal(size=(5, 4, 4, 4)).astype(np.float16))
    head = CFAHead(4, seed=0)
    head.init_bank(feats, batch_size=2)
    phi = head.descriptor(feats.float()).detach().numpy()
    ref = phi.mean(0).reshape(4, -1).T
    assert head.bank.shape == (16, 4) and np.allclose(head.bank.numpy(), ref, atol=1e-5)
    head.init_bank(feats, gamma_c=2)
    assert head.bank.shape == (8, 4)
    with pytest.raises(ValueError, match="fewer than K"):
        head.init_bank(feats, gamma_c=4)


def test_distances_are_squared_euclidean():
    phi = torch.randn(2, 3, 2, 2)
    bank = torch.randn(5, 3)
    ref = ((phi.flatten(2).transpose(1, 2)[:, :, None, :] - bank[None, None]) ** 2).sum(-1)
    assert torch.allclose(squared_distances(phi, bank), ref, atol=1e-5)


@pytest.mark.slow
def test_training_lowers_the_loss_and_learns_the_radius():
    rng = np.random.default_rng(3)
    feats = torch.from_numpy(rng.normal(size=(8, 6, 6, 6)).astype(np.float16))
    head = CFAHead(6, seed=0)
    head.init_bank(feats)
    history = train_heads([head], [feats], [1.0], epochs=6, seed=0)
    assert history[-1] < history[0]
    assert float(head.r.detach()) != pytest.approx(1e-5)


def test_feature_cache_on_disk_equals_the_one_in_memory():
    from detectors.backbones import load_backbone

    backbone = load_backbone("tiny")
    images = texture_images(3)
    in_memory = fused_features(backbone, images, 32, batch_size=2)
    on_disk = fused_features(backbone, images, 32, batch_size=2, max_memory_bytes=0)
    assert in_memory.dtype == on_disk.dtype == torch.float16
    assert torch.equal(in_memory, on_disk)


def test_presets_fill_only_unset_values_and_are_recorded():
    d = CFA()
    assert d.params.preset == "quick" and d.params.epochs == PRESETS["quick"]["epochs"]
    assert d.params.gamma_c == PRESETS["quick"]["gamma_c"]
    p = CFA(preset="paper", epochs=2).params
    assert (p.epochs, p.gamma_c) == (2, 1)
    with pytest.raises(ParamError):
        CFA(preset="fast")
    assert get_detector("cfa") is CFA


@pytest.mark.slow
def test_keeps_the_detector_contract():
    check_detector(CFA, backbone="tiny", resolution=32, epochs=2, gamma_c=2, seed=5)


@pytest.mark.slow
def test_image_score_is_the_maps_maximum_and_predict_needs_fit():
    params = dict(backbone="tiny", resolution=32, epochs=2, gamma_c=2, seed=5)
    images = texture_images(6)
    prediction = CFA(**params).fit(images).predict(images[:2] + [texture_images(1, seed=9, shape=(30, 20))[0]])
    assert np.allclose(prediction.image_scores, [m.max() for m in prediction.maps])
    with pytest.raises(RuntimeError, match="not fitted"):
        CFA(**params).predict(images)


@pytest.mark.slow
def test_an_anomaly_scores_higher_than_normal_texture():
    images = texture_images(8, shape=(48, 48))
    det = CFA(backbone="tiny", resolution=48, epochs=3, gamma_c=1, sigma=1.0).fit(images)
    test = texture_images(1, seed=11, shape=(48, 48))[0].copy()
    test[16:32, 16:32] = [255, 0, 0]
    m = det.predict([test]).maps[0]
    inside = np.zeros((48, 48), bool)
    inside[18:30, 18:30] = True
    assert m[inside].mean() > m[~inside].mean()


def test_descriptor_without_coordinates_is_translation_invariant():
    torch.manual_seed(0)
    plain = CoordConvDescriptor(5, 3, coords=False)
    assert plain.conv.in_channels == 5
    x = torch.randn(1, 5, 6, 7)
    shifted = torch.roll(x, shifts=(2, 3), dims=(2, 3))
    assert torch.allclose(torch.roll(plain(x), shifts=(2, 3), dims=(2, 3)), plain(shifted))
    with_coords = CoordConvDescriptor(5, 3)
    with_coords.conv.weight.data[:, :5] = plain.conv.weight.data[:, :, :, :]
    with_coords.conv.bias.data[:] = plain.conv.bias.data
    rows = torch.linspace(-1, 1, 6)[:, None].expand(6, 7)
    cols = torch.linspace(-1, 1, 7)[None, :].expand(6, 7)
    expected = plain(x) + torch.einsum("o,hw->ohw", with_coords.conv.weight[:, 5, 0, 0], rows) \
        + torch.einsum("o,hw->ohw", with_coords.conv.weight[:, 6, 0, 0], cols)
    assert torch.allclose(with_coords(x), expected, atol=1e-6)


def test_patch_bank_finds_the_patch_types_wherever_they_occur():
    # features made of 4 distinct vectors scattered at random positions of each image: a
    # position-free bank of 4 centres recovers exactly their descriptor outputs
    rng = np.random.default_rng(0)
    types = rng.normal(size=(4, 6)).astype(np.float32) * 5
    which = rng.integers(0, 4, size=(10, 4, 4))
    features = torch.from_numpy(types[which]).permute(0, 3, 1, 2).contiguous()
    head = CFAHead(6, seed=1, coordconv=False, K=1, J=1)
    head.init_bank(features, gamma_c=4, bank="patches", bank_sample=120, seed=0)
    expected = head.descriptor(torch.from_numpy(types)[:, :, None, None])[:, :, 0, 0]
    assert head.bank.shape == (4, 6)
    found = squared_distances(expected[None, :, :, None].permute(0, 2, 1, 3), head.bank)[0]
    assert torch.allclose(found.min(dim=1).values, torch.zeros(4), atol=1e-3)
    # the per-position bank mixes the types instead
    positions = CFAHead(6, seed=1, coordconv=False, K=1, J=1)
    positions.init_bank(features, gamma_c=4)
    assert squared_distances(expected[None, :, :, None].permute(0, 2, 1, 3), positions.bank)[0].min(1).values.max() > 1
    with pytest.raises(ValueError, match="bank="):
        head.init_bank(features, bank="nearest")

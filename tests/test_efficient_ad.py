"""EfficientAD (detectors.efficient_ad) against plain references of the reference code's maths."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from detectors.backbones import load_backbone
from detectors.efficient_ad import PRESETS, EfficientAD
from detectors.efficient_ad.augment import colour_jitter, grayscale, random_resized_crop_box
from detectors.efficient_ad.networks import (
    MODEL_SIZES,
    Autoencoder,
    patch_description_network,
    pdn_output_size,
)
from detectors.efficient_ad.stats import ChannelMoments, QuantileNormalisation, upper_quantile
from detectors.efficient_ad.teacher import (
    EXCLUDED_PHOTOGRAPHS,
    TargetMaker,
    descriptor_targets,
    load_teacher_weights,
    offline_photographs,
)
from detectors.efficient_ad.training import (
    TeacherNormaliser,
    hard_loss,
    holdout_split,
    learning_rate,
    raw_maps,
    step_losses,
)
from detectors.features import imagenet_normalise, images_to_tensor, unit_tensor
from pixeval import ParamError, load_detector
from pixeval.testing import check_detector, contract_images

from detector_data import defect_contrast

@pytest.fixture(scope="module", autouse=True)
def teacher_cache(tmp_path_factory):
    """Distilled teachers go to a fresh cache folder of this module, never the user's."""
    folder = tmp_path_factory.mktemp("pixeval-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIXEVAL_DATA", str(folder))
        yield folder


#: A schedule that makes a fit take seconds: tiny backbone, 48 px (4×4 maps), 1 teacher iteration, 2 steps.
TINY = dict(backbone="tiny", resolution=48, teacher_steps=1, teacher_batch=2, teacher_norm_images=2,
            train_steps=2, seed=3)


# --------------------------------------------------------------------------- networks

def test_networks_have_the_reference_shapes_at_256_px_and_at_small_sizes():
    with torch.device("meta"):   # shapes only, no arithmetic
        x = torch.empty(1, 3, 256, 256)
        for size in MODEL_SIZES:
            assert patch_description_network(size, 384)(x).shape == (1, 384, 56, 56)
            assert patch_description_network(size, 384, padded=True)(x).shape == (1, 384, 64, 64)
            assert patch_description_network(size, 768)(x).shape == (1, 768, 56, 56)
        assert Autoencoder(256)(x).shape == (1, 384, 56, 56)
        assert Autoencoder(256).sizes == (3, 8, 15, 32, 63, 127, 56)
        for resolution in (33, 48, 64, 100):
            x = torch.empty(2, 3, resolution, resolution)
            for padded in (False, True):
                out = patch_description_network("small", 384, padded)(x)
                assert out.shape == (2, 384) + (pdn_output_size(resolution, padded),) * 2
            assert Autoencoder(resolution)(x).shape == (2, 384) + (pdn_output_size(resolution),) * 2
    assert pdn_output_size(32) < 1 <= pdn_output_size(33)


def test_networks_have_the_reference_parameters_and_key_names():
    def count(module):
        return sum(p.numel() for p in module.parameters())

    with torch.device("meta"):
        small_teacher, small_student = patch_description_network("small", 384), patch_description_network("small", 768)
        # the sizes measured on the reference networks (seed-rows §5.1: 2.69 M, 4.27 M, 1.10 M)
        assert (count(small_teacher), count(small_student), count(Autoencoder(256))) == (2_694_144, 4_267_392,
                                                                                         1_096_320)
        assert list(small_teacher.state_dict()) == [f"{i}.{p}" for i in (0, 3, 6, 8) for p in ("weight", "bias")]
        medium = patch_description_network("medium", 384)
        assert list(medium.state_dict()) == [f"{i}.{p}" for i in (0, 3, 6, 8, 10, 12) for p in ("weight", "bias")]
        padded = patch_description_network("small", 384, padded=True)
        assert {k: v.shape for k, v in padded.state_dict().items()} == \
            {k: v.shape for k, v in small_teacher.state_dict().items()}


# --------------------------------------------------------------------------- statistics

@pytest.mark.parametrize("n", [1, 2, 7, 1000, 384 * 6 * 6])
def test_upper_quantile_is_numpys_linear_quantile(n):
    rng = np.random.default_rng(n)
    values = rng.exponential(size=n).astype(np.float32)
    values[: n // 3] = values[0]   # ties
    x = torch.from_numpy(values)
    for q in (0.0, 0.3, 0.9, 0.995, 0.999, 1.0):
        assert float(upper_quantile(x, q)) == pytest.approx(float(np.quantile(values.astype(np.float64), q)),
                                                            rel=1e-6)


def test_hard_loss_is_the_mean_of_the_distances_at_or_above_the_quantile():
    rng = np.random.default_rng(0)
    distance = rng.random((1, 384, 9, 9)).astype(np.float32) ** 3
    x = torch.from_numpy(distance).requires_grad_(True)
    loss = hard_loss(x, 0.999)
    threshold = np.quantile(distance.astype(np.float64), 0.999)
    selected = distance[distance >= threshold]
    assert len(selected) == math.ceil(0.001 * (distance.size - 1))
    assert float(loss.detach()) == pytest.approx(selected.mean(), rel=1e-6)
    loss.backward()
    assert int((x.grad != 0).sum()) == len(selected)


def test_learning_rate_drops_tenfold_at_95_percent_of_the_steps():
    assert learning_rate(66_499, 70_000, 1e-4) == 1e-4
    assert learning_rate(66_500, 70_000, 1e-4) == pytest.approx(1e-5)
    assert learning_rate(69_999, 70_000, 1e-4) == pytest.approx(1e-5)
    assert [learning_rate(s, 4, 1.0) for s in range(4)] == [1.0, 1.0, 1.0, pytest.approx(0.1)]
    assert learning_rate(0, 1, 1.0) == 1.0


def test_channel_moments_are_float64_mean_and_population_std_over_all_pixels():
    rng = np.random.default_rng(1)
    batches = [rng.normal(3.0, 2.0, size=(n, 4, 5, 6)).astype(np.float32) for n in (1, 3, 2)]
    batches[1][:, 2] = 7.0   # a channel of zero spread in one batch only
    moments = ChannelMoments()
    for b in batches:
        moments.update(torch.from_numpy(b))
    everything = np.concatenate(batches).astype(np.float64).transpose(1, 0, 2, 3).reshape(4, -1)
    assert moments.mean.dtype == torch.float64
    np.testing.assert_allclose(moments.mean.numpy(), everything.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(moments.std.numpy(), everything.std(axis=1), rtol=1e-10)
    dead = ChannelMoments()
    dead.update(torch.zeros(2, 3, 4, 4))
    assert dead.std.tolist() == [0.0, 0.0, 0.0] and dead.divisor.tolist() == [1.0, 1.0, 1.0]


def test_quantile_normalisation_and_its_guard():
    rng = np.random.default_rng(2)
    maps = rng.gamma(2.0, size=(3, 7, 7)).astype(np.float32)
    norm = QuantileNormalisation.from_maps(maps)
    q_a, q_b = np.quantile(maps.astype(np.float64), [0.9, 0.995])
    assert (norm.start, norm.end, norm.spread, norm.guarded) == (q_a, q_b, q_b - q_a, False)
    raw = rng.random((4, 4))
    np.testing.assert_allclose(norm(raw), 0.1 * (raw - q_a) / (q_b - q_a), rtol=1e-12)
    flat = QuantileNormalisation.from_maps(np.full((2, 5, 5), 0.25, np.float32))
    assert flat.guarded and flat.spread == pytest.approx(0.25e-6)
    assert np.isfinite(flat(raw)).all() and flat(np.full(3, 0.25)).tolist() == [0.0, 0.0, 0.0]
    zero = QuantileNormalisation.from_maps(np.zeros((1, 3, 3)))
    assert zero.guarded and np.isfinite(zero(raw)).all()


def test_the_map_is_half_of_each_normalised_map_padded_with_the_value_of_raw_zero():
    det = EfficientAD(backbone="tiny", resolution=48)
    det.normalisation = {"st": QuantileNormalisation(0.5, 1.5, 1.0, False),
                         "ae": QuantileNormalisation(0.2, 0.6, 0.4, False)}
    rng = np.random.default_rng(3)
    st, ae = rng.random((3, 5)).astype(np.float32), rng.random((3, 5)).astype(np.float32)
    combined = det.combined_map(st, ae)
    assert combined.shape == (11, 13) and combined.dtype == np.float64
    interior = 0.5 * 0.1 * (st - 0.5) / 1.0 + 0.5 * 0.1 * (ae - 0.2) / 0.4
    np.testing.assert_allclose(combined[4:-4, 4:-4], interior, rtol=1e-6)
    border = 0.5 * 0.1 * (0 - 0.5) / 1.0 + 0.5 * 0.1 * (0 - 0.2) / 0.4
    ring = np.ones((11, 13), bool)
    ring[4:-4, 4:-4] = False
    np.testing.assert_allclose(combined[ring], border, rtol=1e-12)


# --------------------------------------------------------------------------- teacher target

def _neighbourhoods(f):
    """C×h×w → (C·9)×h×w: each position's zero-padded 3×3 neighbourhood, channel-major."""
    c, h, w = f.shape
    padded = np.pad(f, ((0, 0), (1, 1), (1, 1)))
    out = np.zeros((c * 9, h, w))
    for ch in range(c):
        for dy in range(3):
            for dx in range(3):
                out[ch * 9 + dy * 3 + dx] = padded[ch, dy:dy + h, dx:dx + w]
    return out


def _bilinear(maps, size):
    """C×h×w → C×size×size, bilinear with align_corners=False (torch's source-index rule)."""
    def taps(n_in):
        src = np.maximum((np.arange(size) + 0.5) * n_in / size - 0.5, 0.0)
        low = np.floor(src).astype(int)
        return low, np.minimum(low + 1, n_in - 1), src - low

    (y0, y1, ly), (x0, x1, lx) = taps(maps.shape[1]), taps(maps.shape[2])
    out = np.zeros((maps.shape[0], size, size))
    for i in range(size):
        for j in range(size):
            top = (1 - lx[j]) * maps[:, y0[i], x0[j]] + lx[j] * maps[:, y0[i], x1[j]]
            bottom = (1 - lx[j]) * maps[:, y1[i], x0[j]] + lx[j] * maps[:, y1[i], x1[j]]
            out[:, i, j] = (1 - ly[i]) * top + ly[i] * bottom
    return out


def _adaptive_mean(v, m):
    n = len(v)
    return np.array([v[(i * n) // m:-((-(i + 1) * n) // m)].mean() for i in range(m)])


def test_teacher_target_is_the_reference_descriptor():
    rng = np.random.default_rng(4)
    level1 = rng.normal(size=(2, 3, 4, 4)).astype(np.float32)
    level2 = rng.normal(size=(2, 5, 2, 2)).astype(np.float32)
    target = descriptor_targets([torch.from_numpy(level1), torch.from_numpy(level2)], size=4).numpy()
    assert target.shape == (2, 384, 4, 4)
    for n in range(2):
        v1 = _neighbourhoods(level1[n].astype(np.float64))
        v2 = _bilinear(_neighbourhoods(level2[n].astype(np.float64)), 4)
        for y in range(4):
            for x in range(4):
                stacked = np.concatenate([_adaptive_mean(v1[:, y, x], 1024), _adaptive_mean(v2[:, y, x], 1024)])
                np.testing.assert_allclose(target[n, :, y, x], _adaptive_mean(stacked, 384), rtol=1e-5, atol=1e-6)


def test_targets_come_from_the_two_deeper_backbone_layers_at_the_padded_grid():
    maker = TargetMaker(load_backbone("tiny"), pdn_output_size(32, padded=True))
    assert maker.layers == ("layer2", "layer3")
    views = torch.randn(3, 3, 64, 64)
    targets = maker(views)
    assert targets.shape == (3, 384, 8, 8)
    features = load_backbone("tiny")(views[1:2], ["layer2", "layer3"])
    single = descriptor_targets([features["layer2"], features["layer3"]], 8)
    assert torch.allclose(targets[1:2], single, atol=1e-5)   # batching changes the convs' rounding only


def test_offline_pool_holds_photographs_and_never_the_built_in_textures():
    names = [name for name, _ in offline_photographs()]
    assert len(names) == len(set(names)) == 16
    assert {"sklearn.china", "sklearn.flower", "skimage.astronaut"} <= set(names)
    assert not any(excluded in name for name in names for excluded in EXCLUDED_PHOTOGRAPHS)
    assert all(image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
               for _, image in offline_photographs())


# --------------------------------------------------------------------------- training

def _toy_networks(seed=0):
    torch.manual_seed(seed)
    teacher, student, autoencoder = nn.Conv2d(3, 384, 1), nn.Conv2d(3, 768, 1), nn.Conv2d(3, 384, 1)
    mean, std = torch.randn(384, dtype=torch.float64), torch.rand(384, dtype=torch.float64) + 0.5
    return TeacherNormaliser(teacher, mean, std), student, autoencoder


def test_step_losses_are_the_reference_terms():
    teacher, student, autoencoder = _toy_networks()
    plain, augmented, penalty = torch.randn(1, 3, 6, 6), torch.randn(1, 3, 6, 6), torch.randn(1, 3, 6, 6)
    terms = step_losses(teacher, student, autoencoder, plain, augmented, penalty, 0.99)
    hard, pen, ae, stae = (float(t.detach()) for t in terms)

    def out(module, x):
        return module(x).detach().double().numpy()

    t_plain = (out(teacher.teacher, plain) - teacher.mean.double().numpy()) / teacher.std.double().numpy()
    d = (t_plain - out(student, plain)[:, :384]) ** 2
    assert hard == pytest.approx(d[d >= np.quantile(d, 0.99)].mean(), rel=1e-5)
    assert pen == pytest.approx((out(student, penalty)[:, :384] ** 2).mean(), rel=1e-5)
    t_aug = (out(teacher.teacher, augmented) - teacher.mean.double().numpy()) / teacher.std.double().numpy()
    assert ae == pytest.approx(((t_aug - out(autoencoder, augmented)) ** 2).mean(), rel=1e-5)
    assert stae == pytest.approx(((out(autoencoder, augmented) - out(student, augmented)[:, 384:]) ** 2).mean(),
                                 rel=1e-5)
    assert float(step_losses(teacher, student, autoencoder, plain, augmented, None, 0.99)[1]) == 0.0
    sum(terms).backward()
    assert teacher.teacher.weight.grad is None and student.weight.grad is not None


def test_raw_maps_are_channel_means_of_the_squared_differences():
    teacher, student, autoencoder = _toy_networks(1)
    views = torch.randn(2, 3, 5, 4)
    map_st, map_ae = raw_maps(teacher, student, autoencoder, views)
    t = ((teacher.teacher(views) - teacher.mean) / teacher.std).detach().numpy()
    s, a = student(views).detach().numpy(), autoencoder(views).detach().numpy()
    assert map_st.shape == map_ae.shape == (2, 5, 4) and map_st.dtype == np.float32
    np.testing.assert_allclose(map_st, ((t - s[:, :384]) ** 2).mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(map_ae, ((a - s[:, 384:]) ** 2).mean(axis=1), rtol=1e-5)


def test_colour_jitter_is_one_of_brightness_contrast_saturation():
    x = torch.from_numpy(np.random.default_rng(5).random((3, 4, 4)).astype(np.float32))
    grey = 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]
    assert torch.allclose(grayscale(x), grey.expand(3, -1, -1))
    kinds = set()
    for seed in range(12):
        draws = np.random.default_rng(seed)
        kind, factor = int(draws.integers(3)), float(draws.uniform(0.8, 1.2))
        expected = [x * factor, factor * x + (1 - factor) * grey.mean(), factor * x + (1 - factor) * grey][kind]
        assert torch.allclose(colour_jitter(x, np.random.default_rng(seed)), expected.clamp(0, 1), atol=1e-6)
        kinds.add(kind)
    assert kinds == {0, 1, 2}


def test_random_resized_crops_stay_inside_the_image():
    rng = np.random.default_rng(6)
    for height, width in ((300, 451), (64, 64), (1411, 1411), (10, 200)):
        for _ in range(50):
            top, left, h, w = random_resized_crop_box(height, width, rng)
            assert 0 <= top and top + h <= height and 0 <= left and left + w <= width and h > 0 and w > 0


def test_training_views_equal_the_prediction_views_bit_for_bit():
    _, test = contract_images()
    for image in test:
        assert torch.equal(imagenet_normalise(unit_tensor(image, 48)), images_to_tensor([image], 48)[0])


def test_holdout_split_keeps_ten_percent_apart():
    train, held = holdout_split(60, np.random.default_rng(0))
    assert (len(train), len(held)) == (54, 6)
    assert not set(train) & set(held) and set(train) | set(held) == set(range(60))
    assert [len(part) for part in holdout_split(5, np.random.default_rng(0))] == [4, 1]
    with pytest.raises(ValueError, match="at least 2"):
        holdout_split(1, np.random.default_rng(0))


def test_presets_fill_only_unset_values_and_bad_values_are_refused():
    d = EfficientAD()
    assert (d.params.preset, d.params.backbone, d.params.model_size) == ("quick", "efficientnet_lite0", "small")
    assert {k: getattr(d.params, k) for k in PRESETS["quick"]} == PRESETS["quick"]
    paper = EfficientAD(preset="paper", train_steps=10).params
    assert (paper.train_steps, paper.teacher_steps, paper.teacher_norm_images) == (10, 60_000, 10_000)
    with pytest.raises(ParamError, match="resolution >= 33"):
        EfficientAD(resolution=32)
    with pytest.raises(ParamError):
        EfficientAD(hard_quantile=1.5)
    with pytest.raises(ParamError):
        EfficientAD(model_size="large")


# --------------------------------------------------------------------------- the fitted detector

@pytest.fixture(scope="module")
def fitted():
    train, test = contract_images()
    reports = []
    det = EfficientAD(**TINY).fit(train, progress=lambda *r: reports.append(r))
    return det, train, test, reports


def test_fit_records_its_schedule_teacher_and_split(fitted):
    det, train, _, reports = fitted
    record = det.record
    assert record["teacher"]["source"] == "distilled" and record["teacher"]["layers"] == ["layer2", "layer3"]
    assert record["teacher"]["losses"].shape == (1,) and record["train_losses"].shape == (2, 4)
    assert record["teacher"]["pool"] == [name for name, _ in offline_photographs()]   # never the training images
    assert (len(record["train_index"]), len(record["holdout_index"])) == (4, 1)
    assert (record["train_losses"][:, 1] > 0).all()   # penalty on
    assert [r for r in reports if r[0] == "teacher"] == [("teacher", 1, 1)]
    assert [r for r in reports if r[0] == "train"] == [("train", 1, 2), ("train", 2, 2)]


def test_map_quantiles_come_from_the_held_out_training_images_only(fitted):
    det, train, _, _ = fitted
    held = [train[i] for i in det.record["holdout_index"]]
    maps_st, maps_ae = raw_maps(det.teacher, det.student, det.autoencoder, images_to_tensor(held, 48))
    assert maps_st.shape == (1, 4, 4)
    assert det.normalisation["st"] == QuantileNormalisation.from_maps(maps_st)
    assert det.normalisation["ae"] == QuantileNormalisation.from_maps(maps_ae)


def test_teacher_statistics_are_over_the_training_split(fitted):
    det, train, _, _ = fitted
    views = images_to_tensor([train[i] for i in det.record["train_index"]], 48)
    with torch.no_grad():
        out = det.teacher.teacher(views).double().numpy().transpose(1, 0, 2, 3).reshape(384, -1)
    np.testing.assert_allclose(det.teacher_stats[0], out.mean(axis=1), rtol=1e-6, atol=1e-9)
    std = out.std(axis=1)
    np.testing.assert_allclose(det.teacher_stats[1], np.where(std > 0, std, 1.0), rtol=1e-5, atol=1e-9)


def test_prediction_maps_have_the_image_size_and_the_score_is_their_maximum(fitted):
    det, _, test, _ = fitted
    prediction = det.predict(test)
    assert [m.shape for m in prediction.maps] == [image.shape[:2] for image in test]
    assert prediction.image_scores.dtype == np.float64
    assert prediction.image_scores.tolist() == [float(m.max()) for m in prediction.maps]
    with pytest.raises(RuntimeError, match="not fitted"):
        EfficientAD(**TINY).predict(test)
    with pytest.raises(ValueError, match="at least 2"):
        EfficientAD(**TINY).fit(test[:1])


def test_save_and_load_restore_the_detector_bit_for_bit(fitted, tmp_path):
    det, _, test, _ = fitted
    loaded = load_detector(det.save(tmp_path / "efficient_ad"))
    for part in ("teacher", "student", "autoencoder"):
        saved, back = det.state_dict()[part], loaded.state_dict()[part]
        assert saved.keys() == back.keys() and all(torch.equal(saved[k], back[k]) for k in saved)
    assert loaded.normalisation == det.normalisation
    assert all(a.tobytes() == b.tobytes() for a, b in zip(det.predict(test).maps, loaded.predict(test).maps))


def test_fitting_again_reuses_the_cached_teacher_and_gives_the_same_networks(fitted, teacher_cache):
    det, train, _, _ = fitted
    cache_file = det.record["teacher"]["cache_file"]
    assert cache_file is not None and cache_file.startswith(str(teacher_cache / "efficient_ad-teachers"))
    reports = []
    again = EfficientAD(**TINY).fit(train, progress=lambda *r: reports.append(r))
    assert not [r for r in reports if r[0] == "teacher"]   # read from the cache, not distilled
    afresh = EfficientAD(**TINY, teacher_cache=False).fit(train)
    assert afresh.record["teacher"]["cache_file"] is None
    for other in (again, afresh):
        for part in ("teacher", "student", "autoencoder"):
            first, second = det.state_dict()[part], other.state_dict()[part]
            assert all(torch.equal(first[k], second[k]) for k in first)
        np.testing.assert_array_equal(det.record["train_losses"], other.record["train_losses"])
        np.testing.assert_array_equal(det.record["teacher"]["losses"], other.record["teacher"]["losses"])


def test_another_seed_or_teacher_setting_distils_another_teacher_and_a_damaged_file_is_replaced(fitted):
    det, train, _, _ = fitted
    other_seed = EfficientAD(**{**TINY, "seed": 4}).fit(train)
    more_steps = EfficientAD(**{**TINY, "teacher_steps": 2}).fit(train)
    files = {det.record["teacher"]["cache_file"], other_seed.record["teacher"]["cache_file"],
             more_steps.record["teacher"]["cache_file"]}
    assert len(files) == 3
    damaged = other_seed.record["teacher"]["cache_file"]
    with open(damaged, "wb") as f:
        f.write(b"not a torch file")
    reports = []
    again = EfficientAD(**{**TINY, "seed": 4}).fit(train, progress=lambda *r: reports.append(r))
    assert [r for r in reports if r[0] == "teacher"] == [("teacher", 1, 1)]
    first, second = other_seed.state_dict()["teacher"], again.state_dict()["teacher"]
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert torch.load(damaged, weights_only=True)["recipe"]["seed"] == 4


def test_teacher_weights_from_a_file_are_loaded_and_nothing_is_distilled(tmp_path):
    train, _ = contract_images()
    torch.manual_seed(7)
    published = patch_description_network("small", 384).state_dict()
    nelson = tmp_path / "teacher_small.pth"
    torch.save(published, nelson)
    reports = []
    det = EfficientAD(**TINY, teacher_weights=str(nelson), penalty=False)
    det.fit(train, progress=lambda *r: reports.append(r))
    assert det._backbone is None and not [r for r in reports if r[0] == "teacher"]
    assert det.record["teacher"] == {"source": "file", "path": str(nelson)}
    assert all(torch.equal(det.state_dict()["teacher"][k], v) for k, v in published.items())
    assert (det.record["train_losses"][:, 1] == 0).all()   # penalty off
    # anomalib's file names the same convolutions conv1..conv4
    anomalib_names = {"0": "conv1", "3": "conv2", "6": "conv3", "8": "conv4"}
    anomalib = tmp_path / "pretrained_teacher_small.pth"
    torch.save({f"{anomalib_names[k.split('.')[0]]}.{k.split('.')[1]}": v for k, v in published.items()}, anomalib)
    loaded = load_teacher_weights(anomalib, "small").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in published.items())
    with pytest.raises(ParamError, match="model_size"):
        load_teacher_weights(nelson, "medium")
    with pytest.raises(ParamError, match="no such file"):
        EfficientAD(**TINY, teacher_weights=str(tmp_path / "missing.pth")).fit(train)


@pytest.mark.slow
def test_another_backbone_distils_from_its_two_deeper_layers(tmp_path):
    import torchvision

    torch.manual_seed(0)   # random weights: only the plumbing is under test
    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    det = EfficientAD(**{**TINY, "backbone": "resnet18"}, weights=str(weights)).fit(contract_images()[0])
    assert det.record["teacher"]["layers"] == ["layer2", "layer3"] and det.record["teacher"]["backbone"] == "resnet18"


@pytest.mark.slow
def test_keeps_the_detector_contract():
    check_detector(EfficientAD, **TINY)


@pytest.mark.slow
def test_defects_of_the_built_in_data_score_higher_than_their_surroundings():
    # A short schedule (5 teacher iterations, 20 steps, 64 px), far from the reference's: the
    # student-teacher and autoencoder discrepancies already stand out on the defects.
    detector = EfficientAD(resolution=64, teacher_steps=5, teacher_batch=8, teacher_norm_images=8, train_steps=20,
                           seed=0)   # efficientnet_lite0
    inside, outside = defect_contrast(detector, category="gravel", n_train=12)
    assert inside > outside

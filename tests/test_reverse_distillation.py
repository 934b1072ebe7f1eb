"""Reverse Distillation (detectors.reverse_distillation) against plain references of the RD4AD
code's maths (hq-deng/RD4AD@6554076: main.py loss_fucntion, test.py cal_anomaly_map)."""

import numpy as np
import pytest
import scipy.ndimage
import torch

from detectors.backbones import load_backbone
from detectors.features import extract_features
from detectors.reverse_distillation import (PRESETS, OneClassBottleneck, ReverseDistillation, StudentDecoder,
                                            build_student, distillation_loss, level_distance_sum, train_student)
from pixeval import ParamError, load_detector
from pixeval.testing import check_detector

from detector_data import texture_images

TINY = dict(backbone="tiny", resolution=32, epochs=2, seed=3)


def _images(n=6, seed=0, shape=(32, 32)):
    return texture_images(n, seed, shape)


def _levels(seed=0, n=3, channels=(4, 6, 8), size=16):
    """Random teacher-like levels: ``n`` images, level ``l`` with ``channels[l]`` channels at ``size / 2^l``."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, c, size // 2 ** i, size // 2 ** i, generator=g) for i, c in enumerate(channels)]


def _cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _upsample_aligned(m, size):
    """Bilinear up-sampling of an h×w array to size×size with align_corners=True, written plainly."""
    h, w = m.shape
    out = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            y, x = i * (h - 1) / (size - 1), j * (w - 1) / (size - 1)
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            dy, dx = y - y0, x - x0
            out[i, j] = ((1 - dy) * (1 - dx) * m[y0, x0] + (1 - dy) * dx * m[y0, x1]
                         + dy * (1 - dx) * m[y1, x0] + dy * dx * m[y1, x1])
    return out


def _plain_map(teacher, student, size):
    """Σ_levels upsampled (1 − per-pixel cosine along channels), float64, one image."""
    total = np.zeros((size, size))
    for t, s in zip(teacher, student):
        t, s = t.detach().numpy().astype(np.float64), s.detach().numpy().astype(np.float64)
        distance = np.array([[1 - _cosine(t[:, i, j], s[:, i, j]) for j in range(t.shape[2])]
                             for i in range(t.shape[1])])
        total += _upsample_aligned(distance, size)
    return total


# --------------------------------------------------------------------------- maths

def test_loss_is_the_codes_cosine_of_whole_flattened_maps_not_the_papers_per_pixel_one():
    teacher = _levels(0)
    student = [t + 0.7 * s for t, s in zip(teacher, _levels(1))]
    flattened = sum(np.mean([1 - _cosine(t[i].numpy().ravel(), s[i].numpy().ravel()) for i in range(len(t))])
                    for t, s in zip(teacher, student))
    assert float(distillation_loss(teacher, student)) == pytest.approx(flattened, rel=1e-5)
    per_pixel = sum(np.mean([1 - _cosine(t[i, :, y, x].numpy(), s[i, :, y, x].numpy())
                             for i in range(len(t)) for y in range(t.shape[2]) for x in range(t.shape[3])])
                    for t, s in zip(teacher, student))
    assert abs(flattened - per_pixel) > 1e-3
    assert float(distillation_loss(teacher, teacher)) == pytest.approx(0.0, abs=1e-6)


def test_map_sums_per_pixel_cosine_distances_upsampled_with_aligned_corners():
    teacher = _levels(2, n=2, size=8)
    student = [t + s for t, s in zip(teacher, _levels(3, n=2, size=8))]
    maps = level_distance_sum(teacher, student, 24)
    assert maps.dtype == torch.float64 and maps.shape == (2, 24, 24)
    for i in range(2):
        ref = _plain_map([t[i] for t in teacher], [s[i] for s in student], 24)
        assert np.allclose(maps[i].numpy(), ref, atol=1e-5)


def test_predicted_map_is_the_blurred_sum_at_resolution_and_its_maximum_the_score():
    images = _images(6)
    det = ReverseDistillation(**TINY).fit(images)
    test = _images(2, seed=7) + _images(1, seed=8, shape=(40, 24))
    prediction = det.predict(test)
    teacher = list(extract_features(load_backbone("tiny"), test[:2], 32).values())
    with torch.no_grad():
        student = det.decoder(det.ocbe(teacher))
    for i in range(2):
        ref = scipy.ndimage.gaussian_filter(_plain_map([t[i] for t in teacher], [s[i] for s in student], 32),
                                            sigma=4, mode="reflect")
        assert prediction.maps[i].dtype == np.float32
        assert np.allclose(prediction.maps[i], ref, atol=1e-5)
    assert prediction.maps[2].shape == (40, 24)
    assert np.array_equal(prediction.image_scores, [m.max() for m in prediction.maps])
    assert prediction.image_scores.dtype == np.float64


# --------------------------------------------------------------------------- networks

@pytest.mark.parametrize("channels", [(16, 32, 64), (24, 40, 112), (64, 128, 256)])
@pytest.mark.parametrize("form", ["basic", "bottleneck"])
def test_student_restores_the_teachers_shapes_from_a_stride_32_embedding(channels, form):
    ocbe, decoder = build_student(channels, form, final_relu=True, seed=0)
    teacher = _levels(0, n=2, channels=channels, size=16)
    embedding = ocbe(teacher)
    assert embedding.shape == (2, 2 * channels[2], 2, 2)      # level 1 at 16×16 (stride 4) → stride 32
    assert [tuple(s.shape) for s in decoder(embedding)] == [tuple(t.shape) for t in teacher]
    bigger = _levels(1, n=2, channels=channels, size=32)
    assert [tuple(s.shape) for s in decoder(ocbe(bigger))] == [tuple(t.shape) for t in bigger]


def test_student_sizes_are_the_reference_codes():
    # counted on hq-deng/RD4AD at random init: BN_layer (without its never-used conv4/bn4) and the decoder of
    # resnet18 (AttnBasicBlock x2, de_resnet18) and of wide_resnet50_2 (AttnBottleneck x3, width 128)
    with torch.device("meta"):
        for channels, form, sizes in [((64, 128, 256), "basic", (11_680_000, 3_703_168)),
                                      ((256, 512, 1024), "bottleneck", (58_885_120, 24_917_504))]:
            ocbe, decoder = build_student(channels, form, final_relu=True, seed=0)
            assert (sum(p.numel() for p in ocbe.parameters()), sum(p.numel() for p in decoder.parameters())) == sizes
    assert ReverseDistillation(backbone="wide_resnet50_2").params.student == "bottleneck"
    assert ReverseDistillation(backbone="resnet18").params.student == "basic"
    assert ReverseDistillation().params.student == "basic"


def test_init_is_kaiming_fan_out_on_convs_and_seeded_without_touching_the_global_rng():
    before = torch.random.get_rng_state()
    ocbe, decoder = build_student((16, 32, 64), "basic", final_relu=True, seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)
    again, _ = build_student((16, 32, 64), "basic", final_relu=True, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(ocbe.state_dict().values(), again.state_dict().values()))
    conv = ocbe.level1[0]                   # 3×3, 16 → 32 channels: fan_out = 32·9 (fan_in would be 16·9)
    assert float(conv.weight.detach().std()) == pytest.approx((2 / (32 * 9)) ** 0.5, rel=0.05)
    deconv = decoder.stages[0][0].body[0]   # transposed convs keep PyTorch's default (uniform) init
    assert isinstance(deconv, torch.nn.ConvTranspose2d)
    assert float(deconv.weight.detach().abs().max()) <= float(1 / (deconv.weight.shape[1] * 4) ** 0.5) + 1e-6


def test_decoder_relu_switch_drops_only_the_last_relu_of_each_stage():
    channels = (16, 32, 64)
    with_relu = StudentDecoder(channels, final_relu=True)
    linear = StudentDecoder(channels, final_relu=False)
    linear.load_state_dict(with_relu.state_dict())
    with_relu.eval()
    linear.eval()
    embedding = OneClassBottleneck(channels).eval()(_levels(0, n=2, channels=channels, size=32))
    firsts = []
    hooks = [stage[0].register_forward_hook(lambda m, i, o: firsts.append(o)) for stage in linear.stages]
    with torch.no_grad():
        a, b = with_relu(embedding), linear(embedding)
    for hook in hooks:
        hook.remove()
    assert all(float(x.min()) >= 0 for x in a)
    assert all(float(x.min()) < 0 for x in b)
    assert all(float(x.min()) >= 0 for x in firsts)        # the first block of each stage keeps its ReLU
    assert torch.equal(a[2], torch.relu(b[2]))                # first stage: the same but for the last ReLU
    assert ReverseDistillation().params.decoder_relu is False                      # efficientnet_lite0
    assert ReverseDistillation(backbone="tiny").params.decoder_relu is True
    assert ReverseDistillation(backbone="resnet18").params.decoder_relu is True
    assert ReverseDistillation(decoder_relu=True).params.decoder_relu is True
    det = ReverseDistillation(**TINY, decoder_relu=False).fit(_images(4))
    assert det.decoder.stages[0][-1].final_relu is False and det.decoder.stages[0][0].final_relu is True


# --------------------------------------------------------------------------- detector

def test_refuses_backbones_and_resolutions_it_cannot_mirror():
    with pytest.raises(ParamError, match="efficientnet_lite0"):
        ReverseDistillation(backbone="vgg19_bn")
    with pytest.raises(ParamError, match="divisible by 32"):
        ReverseDistillation(backbone="tiny", resolution=48)
    with pytest.raises(ValueError, match="train_batch"):
        ReverseDistillation(**TINY, train_batch=2).fit(_images(5))


def test_presets_fill_only_unset_values():
    assert ReverseDistillation().params.epochs == PRESETS["quick"]["epochs"]
    assert ReverseDistillation(preset="paper").params.epochs == 200
    assert ReverseDistillation(preset="paper", epochs=3).params.epochs == 3


def test_training_lowers_the_loss_and_reports_epochs():
    teacher = list(extract_features(load_backbone("tiny"), _images(6), 32).values())
    ocbe, decoder = build_student([t.shape[1] for t in teacher], "basic", final_relu=True, seed=0)
    reports = []
    history = train_student(ocbe, decoder, teacher, epochs=8, batch_size=4, lr=0.005, betas=(0.5, 0.999), seed=0,
                            device=torch.device("cpu"), progress=lambda *r: reports.append(r))
    assert history[-1] < history[0]
    assert reports == [("epochs", e, 8) for e in range(1, 9)]
    assert not ocbe.training and not decoder.training


def test_fit_is_seeded_and_save_load_is_bit_for_bit(tmp_path):
    images, test = _images(5), _images(2, seed=9)
    first = ReverseDistillation(**TINY).fit(images)
    maps = first.predict(test).maps
    assert all(np.array_equal(a, b) for a, b in zip(maps, ReverseDistillation(**TINY).fit(images).predict(test).maps))
    other = ReverseDistillation(**{**TINY, "seed": 4}).fit(images).predict(test).maps
    assert not all(np.array_equal(a, b) for a, b in zip(maps, other))
    loaded = load_detector(first.save(tmp_path / "rd"))
    assert loaded.params == first.params
    for part in ("ocbe", "decoder"):
        saved, back = first.state_dict()[part], loaded.state_dict()[part]
        assert saved.keys() == back.keys() and all(torch.equal(saved[k], back[k]) for k in saved)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(maps, loaded.predict(test).maps))
    with pytest.raises(RuntimeError, match="not fitted"):
        ReverseDistillation(**TINY).predict(test)


def test_keeps_the_detector_contract():
    check_detector(ReverseDistillation, **TINY)


@pytest.mark.slow
def test_defects_of_the_built_in_textures_score_above_their_surroundings():
    from pixeval.data.synthetic import generate_category

    train, defects = [], []
    for split, defect, image, mask, _ in generate_category("gravel"):
        if split == "train" and len(train) < 20:
            train.append(image)
        elif split == "test" and defect != "good":
            defects.append((image, mask))
        if len(defects) == 6:
            break
    det = ReverseDistillation(resolution=128, epochs=20, seed=0).fit(train)   # efficientnet_lite0, linear ends
    prediction = det.predict([image for image, _ in defects])
    inside = np.concatenate([m[mask] for m, (_, mask) in zip(prediction.maps, defects)])
    outside = np.concatenate([m[~mask] for m, (_, mask) in zip(prediction.maps, defects)])
    assert inside.mean() > outside.mean()

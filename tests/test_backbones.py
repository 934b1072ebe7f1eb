"""Backbones (detectors/backbones.py) and feature extraction (detectors/features.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import skimage.data
import torch
import torchvision

from detectors.backbones import (BACKBONES, BackboneWeightsError, efficientnet_lite0_network,
                                 load_backbone)
from detectors.features import (IMAGENET_MEAN, IMAGENET_STD, extract_features, images_to_tensor,
                                resolve_device)

TORCHVISION = ("wide_resnet50_2", "resnet18", "vgg19_bn")


#: Every backbone; the two large torchvision ones take seconds to build, save and load.
ALL = [pytest.param(name, marks=pytest.mark.slow) if name in ("wide_resnet50_2", "vgg19_bn") else name
       for name in BACKBONES]


class _RandomWeights(dict):
    """State-dict files of randomly initialised torchvision models, written on first use (there
    are no ImageNet weights here): they exercise the local-file path and the layer geometry, not
    ImageNet quality."""

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def __missing__(self, name):
        torch.manual_seed(0)
        path = self[name] = self.folder / f"{name}.pth"
        torch.save(getattr(torchvision.models, name)(weights=None).state_dict(), path)
        return path


@pytest.fixture(scope="module")
def random_torchvision_weights(tmp_path_factory):
    return _RandomWeights(tmp_path_factory.mktemp("weights"))


def _load(name, random_torchvision_weights):
    return load_backbone(name, weights=random_torchvision_weights[name] if name in TORCHVISION else None)


def test_efficientnet_lite0_classifies_the_cat():
    net = efficientnet_lite0_network()
    with torch.inference_mode():
        logits = net(images_to_tensor([skimage.data.chelsea()], 224))
    top = int(logits.argmax())
    assert 281 <= top <= 285, f"chelsea classified as ImageNet class {top}, not a cat (281-285)"


@pytest.mark.parametrize("name", ALL)
def test_feature_shapes_channels_and_strides(name, random_torchvision_weights):
    backbone = _load(name, random_torchvision_weights)
    assert len(backbone.feature_layers) == 3
    assert set(backbone.feature_layers) <= set(backbone.channels)
    with torch.inference_mode():
        assert list(backbone(torch.randn(1, 3, 64, 96))) == list(backbone.feature_layers)
        features = backbone(torch.randn(2, 3, 64, 96), list(backbone.channels))  # every layer it declares
    previous_stride = 1
    for layer, f in features.items():
        stride = backbone.strides[layer]
        assert stride > previous_stride
        previous_stride = stride
        assert tuple(f.shape) == (2, backbone.channels[layer], 64 // stride, 96 // stride)
        assert f.dtype == torch.float32 and torch.isfinite(f).all()


@pytest.mark.parametrize("name", ALL)
def test_backbone_is_frozen_and_stays_in_eval_mode(name, random_torchvision_weights):
    backbone = _load(name, random_torchvision_weights)
    backbone.train()
    assert not backbone.training and not any(m.training for m in backbone.modules())
    assert not any(p.requires_grad for p in backbone.parameters())


def test_a_single_layer_can_be_asked_for():
    backbone = load_backbone("efficientnet_lite0")
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        only = backbone(x, ["blocks.4"])
        every = backbone(x)
    assert list(only) == ["blocks.4"]
    assert torch.equal(only["blocks.4"], every["blocks.4"])
    with pytest.raises(ValueError, match="no layer"):
        backbone(x, ["layer9"])


def test_torchvision_weights_missing_raise_one_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable (simulated)")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "urlopen", offline)
    with pytest.raises(BackboneWeightsError) as info:
        load_backbone("resnet18")
    message = str(info.value)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "weights=PATH" in message and "TORCH_HOME" in message


def test_torchvision_weights_are_read_from_the_cache(tmp_path, monkeypatch, random_torchvision_weights):
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "resnet18-f37072fd.pth").write_bytes(random_torchvision_weights["resnet18"].read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    backbone = load_backbone("resnet18")
    saved = torch.load(random_torchvision_weights["resnet18"], weights_only=True)
    assert torch.equal(backbone.state_dict()["stages.1.0.conv1.weight"], saved["layer1.0.conv1.weight"])


def test_local_weights_file_is_loaded(random_torchvision_weights):
    backbone = load_backbone("resnet18", weights=random_torchvision_weights["resnet18"])
    saved = torch.load(random_torchvision_weights["resnet18"], weights_only=True)
    reference = torchvision.models.resnet18(weights=None)
    reference.load_state_dict(saved)
    reference.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        expected = reference.layer3(reference.layer2(reference.layer1(reference.maxpool(
            reference.relu(reference.bn1(reference.conv1(x)))))))
        got = backbone(x)["layer3"]
    torch.testing.assert_close(got, expected)


def test_wrong_or_missing_weights_file_is_a_clear_error(tmp_path, random_torchvision_weights):
    with pytest.raises(BackboneWeightsError, match="does not exist"):
        load_backbone("resnet18", weights=tmp_path / "nothing.pth")
    with pytest.raises(BackboneWeightsError, match="do not fit backbone 'efficientnet_lite0'"):
        load_backbone("efficientnet_lite0", weights=random_torchvision_weights["resnet18"])
    not_a_dict = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), not_a_dict)
    with pytest.raises(BackboneWeightsError, match="not a state dict"):
        load_backbone("efficientnet_lite0", weights=not_a_dict)


def test_unknown_backbone_names_the_choices():
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        load_backbone("resnet1000")


def test_tiny_backbone_is_deterministic():
    a, b = load_backbone("tiny").state_dict(), load_backbone("tiny").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_images_to_tensor_normalises_and_resizes():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    x = images_to_tensor([image], 32)
    expected = (image / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), expected, rtol=1e-5, atol=1e-5)
    flat = np.full((50, 70, 3), 200, dtype=np.uint8)
    y = images_to_tensor([flat, image], 16)
    assert tuple(y.shape) == (2, 3, 16, 16)
    np.testing.assert_allclose(y[0, 0].numpy(), (200 / 255 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], rtol=1e-5)


def test_images_to_tensor_resizes_as_torchvision_does():
    from torchvision.transforms.v2 import functional as TF

    image = np.random.default_rng(1).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    unit = TF.to_dtype(TF.to_image(image), torch.float32, scale=True)
    expected = TF.normalize(TF.resize(unit, [24, 24], antialias=True), list(IMAGENET_MEAN), list(IMAGENET_STD))
    image.flags.writeable = False  # as memory-mapped or cached images are: no torch warning, no error
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(images_to_tensor([image], 24)[0], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32),
                                 np.zeros((8, 8, 4), np.uint8), "image.png"])
def test_bad_images_are_rejected_with_their_index(bad):
    with pytest.raises(ValueError, match=r"images\[1\] must be a uint8 H×W×3"):
        images_to_tensor([np.zeros((8, 8, 3), np.uint8), bad], 8)


def test_batched_extraction_matches_one_batch_and_reports_progress():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (40 + 3 * i, 48, 3), dtype=np.uint8) for i in range(5)]
    backbone = load_backbone("tiny")
    calls = []
    batched = extract_features(backbone, images, 32, batch_size=2, progress=lambda *a: calls.append(a))
    whole = extract_features(backbone, images, 32, batch_size=8)
    assert calls == [("features", 2, 5), ("features", 4, 5), ("features", 5, 5)]
    for layer in backbone.feature_layers:
        assert batched[layer].shape[0] == 5
        torch.testing.assert_close(batched[layer], whole[layer])


def test_device_errors_are_clear():
    with pytest.raises(ValueError, match="not supported|not a torch device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")

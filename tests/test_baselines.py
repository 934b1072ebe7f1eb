"""PatchCore, PaDiM and DFM (detectors/patchcore.py, padim.py, dfm.py) and their shared map
post-processing (detectors/common.py), on the untrained ``tiny`` backbone and small synthetic
images: noise textures for training, the same textures with a saturated red square for testing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.ndimage
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

import detectors.patchcore as patchcore_module
from detectors.common import to_image_maps
from detectors.dfm import DFM
from detectors.features import extract_features
from detectors.padim import PaDiM
from detectors.patchcore import PatchCore, greedy_coreset, nearest_neighbors
from pixeval import ParamError, get_detector
from pixeval.testing import check_detector

#: Hyperparameters that keep each detector fast and meaningful on 64-pixel inputs.
FAST = {
    PatchCore: {"backbone": "tiny", "resolution": 64},
    PaDiM: {"backbone": "tiny", "resolution": 64, "n_features": 40},
    DFM: {"backbone": "tiny", "resolution": 64, "pooling_kernel_size": 1},
}
DETECTORS = list(FAST)


def _texture(rng, height, width):
    grey = 128 + 30 * rng.standard_normal((height, width, 1))
    return np.clip(grey, 0, 255).repeat(3, axis=2).astype(np.uint8)


@pytest.fixture(scope="module")
def data():
    """12 normal training images; 8 test images of several sizes, the last 4 with a defect."""
    rng = np.random.default_rng(0)
    train = [_texture(rng, 64, 64) for _ in range(12)]
    test, masks = [], []
    for i in range(8):
        height, width = (64, 64) if i % 2 == 0 else (80, 72)
        image, mask = _texture(rng, height, width), np.zeros((height, width), bool)
        if i >= 4:
            y, x = rng.integers(8, height - 28), rng.integers(8, width - 28)
            image[y:y + 20, x:x + 20] = (250, 20, 20)
            mask[y:y + 20, x:x + 20] = True
        test.append(image)
        masks.append(mask)
    return train, test, masks


@pytest.fixture(scope="module")
def fitted(data):
    train, _, _ = data
    return {cls: cls(**FAST[cls]).fit(train) for cls in DETECTORS}


@pytest.mark.parametrize("cls", DETECTORS)
def test_registered_under_its_entry_point(cls):
    assert get_detector(cls.__name__.lower()) is cls


@pytest.mark.parametrize("cls", DETECTORS)
def test_keeps_the_detector_contract(cls):
    check_detector(cls, **FAST[cls])


@pytest.mark.parametrize("cls", DETECTORS)
def test_anomalous_images_and_pixels_rank_above_normal_ones(cls, data, fitted):
    _, test, masks = data
    prediction = fitted[cls].predict(test)
    labels = [int(m.any()) for m in masks]
    assert roc_auc_score(labels, prediction.image_scores) == 1.0
    pixel_labels = np.concatenate([m.ravel() for m in masks])
    pixel_scores = np.concatenate([m.ravel() for m in prediction.maps])
    assert roc_auc_score(pixel_labels, pixel_scores) > 0.9
    # inside each defect the map is higher than anywhere in the normal images
    normal_max = max(m.max() for m, mask in zip(prediction.maps, masks) if not mask.any())
    for score_map, mask in zip(prediction.maps, masks):
        if mask.any():
            assert score_map[mask].max() > normal_max


@pytest.mark.parametrize("cls", [PatchCore, PaDiM])
def test_the_seed_changes_the_random_choices(cls, data, fitted):
    train, _, _ = data
    other = cls(**FAST[cls], seed=1).fit(train).state_dict()
    first = fitted[cls].state_dict()
    assert any(not np.array_equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize("cls", DETECTORS)
def test_predict_before_fit_is_a_clear_error(cls, data):
    _, test, _ = data
    with pytest.raises(RuntimeError, match="not fitted"):
        cls(**FAST[cls]).predict(test)


def test_bad_hyperparameters_are_rejected():
    with pytest.raises(ParamError, match="backbone"):
        PatchCore(backbone="alexnet")
    with pytest.raises(ParamError, match="coreset_ratio"):
        PatchCore(coreset_ratio=1.5)
    with pytest.raises(ValueError, match="n_features=500 exceeds the 112 channels"):
        PaDiM(backbone="tiny", n_features=500).fit([np.zeros((32, 32, 3), np.uint8)] * 2)


# --------------------------------------------------------------------------- PatchCore pieces

def _slow_greedy_coreset(points, size, first):
    """Greedy k-center written out plainly: exact distances to every chosen point each step."""
    chosen = [first]
    while len(chosen) < size:
        distances = np.linalg.norm(points[:, None, :] - points[chosen][None], axis=2).min(axis=1)
        chosen.append(int(distances.argmax()))
    return chosen


def test_greedy_coreset_matches_the_plain_algorithm():
    points = np.random.default_rng(3).standard_normal((300, 5)).astype(np.float32)
    chosen = greedy_coreset(torch.from_numpy(points), 40, seed=7).tolist()
    assert chosen == _slow_greedy_coreset(points.astype(np.float64), 40, chosen[0])
    assert len(set(chosen)) == 40


def _clustered_points(n, d, seed):
    """Patch-feature-like rows: non-negative, 40 clusters of different spreads around a common
    offset, with a few dominant directions."""
    rng = np.random.default_rng(seed)
    centres = rng.gamma(2.0, 1.0, (40, d)) * np.linspace(3, 0.3, d)
    spread = rng.uniform(0.2, 1.5, 40)[:, None]
    labels = rng.integers(40, size=n)
    points = np.abs(centres[labels] + spread[labels] * rng.standard_normal((n, d)) + 2.0)
    return torch.from_numpy(points.astype(np.float32))


@pytest.mark.parametrize("n", [3000, 3037])  # a multiple of 64 rows, and not
def test_pruned_greedy_coreset_selects_the_rows_of_the_dense_loop(n):
    points = _clustered_points(n, 48, seed=n)
    first = 11
    dense = list(itertools.islice(patchcore_module._farthest_points_dense(points, first), 600))
    pruned = list(itertools.islice(patchcore_module._farthest_points_pruned(points, first), 600))
    assert pruned == dense
    chosen = greedy_coreset(points, 600, seed=0).tolist()
    assert chosen == list(itertools.islice(patchcore_module._farthest_points_dense(points, chosen[0]), 600))


def test_exact_dots_are_the_numbers_of_the_full_product():
    """Bitwise, for any number of rows; relies on how the BLAS kernel orders its sums."""
    n, tail = 5037, 5037 % 64
    points = _clustered_points(n, 48, seed=1)
    full = points @ points[17]
    rng = np.random.default_rng(2)
    buffer = torch.empty(patchcore_module._GATHER_ROWS + patchcore_module._ROW_BLOCK, 48)
    for count in [0, 1, 3, 64, 999, 2048, 4500]:
        rows = torch.from_numpy(np.sort(rng.choice(n - tail, count, replace=False)))
        got = patchcore_module._exact_dots(points, rows, tail, 17, buffer)
        assert torch.equal(got, torch.cat([full[rows], full[n - tail:]]))


def test_greedy_coreset_edge_sizes_and_progress():
    points = _clustered_points(200, 6, seed=5)
    calls = []
    one = greedy_coreset(points, 1, seed=3, progress=lambda *args: calls.append(args))
    assert one.tolist() == [int(torch.randint(200, (1,), generator=torch.Generator().manual_seed(3)))]
    assert calls == [("coreset", 1, 1)]
    calls.clear()
    everything = greedy_coreset(points, 200, seed=3, progress=lambda *args: calls.append(args))
    assert sorted(everything.tolist()) == list(range(200))
    assert calls[-1] == ("coreset", 200, 200) and all(c[2] == 200 for c in calls)
    with pytest.raises(ValueError, match="coreset size"):
        greedy_coreset(points, 201, seed=3)


def test_nearest_neighbours_match_scikit_learn_across_chunks(monkeypatch):
    rng = np.random.default_rng(4)
    bank, queries = rng.standard_normal((50, 8)), rng.standard_normal((333, 8))
    monkeypatch.setattr(patchcore_module, "_DISTANCE_BUDGET", 500)  # 10 queries per chunk
    distances, indices = nearest_neighbors(torch.from_numpy(queries).float(), torch.from_numpy(bank).float(), 3)
    expected_distances, expected_indices = NearestNeighbors(n_neighbors=3).fit(bank).kneighbors(queries)
    np.testing.assert_array_equal(indices.numpy(), expected_indices)
    np.testing.assert_allclose(distances.numpy(), expected_distances, rtol=1e-4, atol=1e-4)


def test_image_score_is_the_reweighted_nearest_distance():
    rng = np.random.default_rng(5)
    detector = PatchCore(num_neighbors=3)
    detector.memory_bank = torch.from_numpy(rng.standard_normal((20, 4))).float()
    patches = torch.from_numpy(rng.standard_normal((2, 6, 4))).float()
    distances, nearest = nearest_neighbors(patches.reshape(-1, 4), detector.memory_bank, 1)
    got = detector._image_scores(patches, distances.view(2, 6), nearest.view(2, 6), detector.memory_bank).numpy()

    bank, p = detector.memory_bank.numpy().astype(np.float64), patches.numpy().astype(np.float64)
    for i in range(2):
        to_bank = np.linalg.norm(p[i][:, None] - bank[None], axis=2)        # patches × bank
        worst = to_bank.min(axis=1).argmax()
        s_star, m_star = to_bank[worst].min(), to_bank[worst].argmin()
        support = np.argsort(np.linalg.norm(bank - bank[m_star], axis=1))[:3]
        e = np.exp(np.linalg.norm(p[i][worst] - bank[support], axis=1))
        assert got[i] == pytest.approx((1 - e[0] / e.sum()) * s_star, rel=1e-5)


# --------------------------------------------------------------------------- PaDiM and DFM against references

def test_padim_gaussians_match_numpy(data, fitted):
    train, _, _ = data
    detector = fitted[PaDiM]
    features = extract_features(detector.backbone, train, 64)
    embeddings = detector._embed(features).numpy().astype(np.float64)          # images × positions × d
    for position in (0, 77, embeddings.shape[1] - 1):
        x = embeddings[:, position]
        np.testing.assert_allclose(detector.mean[position].numpy(), x.mean(axis=0), rtol=1e-5, atol=1e-6)
        covariance = np.cov(x, rowvar=False) + 0.01 * np.eye(x.shape[1])
        np.testing.assert_allclose(detector.inv_covariance[position].numpy(), np.linalg.inv(covariance),
                                   rtol=1e-3, atol=1e-3 * np.abs(np.linalg.inv(covariance)).max())


def test_dfm_scores_match_scikit_learn_pca(data, fitted):
    train, test, _ = data
    detector = fitted[DFM]
    layer = detector.backbone.feature_layers[-1]
    pooled = lambda images: extract_features(detector.backbone, images, 64, [layer])[layer].flatten(1).double().numpy()
    pca = PCA(n_components=0.97, svd_solver="full").fit(pooled(train))
    assert detector.components.shape[1] == pca.n_components_
    x = pooled(test)
    expected = ((x - pca.inverse_transform(pca.transform(x))) ** 2).sum(axis=1)
    np.testing.assert_allclose(detector.predict(test).image_scores, expected, rtol=1e-6)


# --------------------------------------------------------------------------- map post-processing

def test_to_image_maps_resizes_blurs_and_keeps_identity_sizes():
    rng = np.random.default_rng(6)
    maps = torch.from_numpy(rng.random((2, 16, 16), dtype=np.float32))
    images = [np.zeros((16, 16, 3), np.uint8), np.zeros((30, 20, 3), np.uint8)]
    out = to_image_maps(maps, images, 16)
    np.testing.assert_array_equal(out[0], maps[0].numpy())      # same size: untouched
    assert out[1].shape == (30, 20) and out[1].dtype == np.float32
    blurred = to_image_maps(maps, images, 16, sigma=2.0)
    np.testing.assert_allclose(blurred[0], scipy.ndimage.gaussian_filter(maps[0].numpy(), 2.0), rtol=1e-6)
    constant = to_image_maps(torch.full((1, 4, 4), 3.0), images[1:], 32, sigma=4.0)[0]
    np.testing.assert_allclose(constant, 3.0, rtol=1e-6)

"""AUPRO against hand-computed cases and a slow MVTec-style reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from pixeval.metrics import evaluate

import _metrics_reference as reference

# single-image cases have no normal image: their image metrics are NaN by design
pytestmark = pytest.mark.filterwarnings(
    "ignore:image metrics:pixeval.metrics.DegenerateInputWarning")


def _aupro(maps, masks, limit=0.3):
    return evaluate(maps, masks, fpr_limit=limit).pixel_aupro


def test_one_region():
    # region scores .9 .2; normal .8 .5 .3 .1. Curve: (0,.5) (.25,.5) (.5,.5) (.75,.5) (.75,1) (1,1)
    # area to .3 = .3 * .5 -> AUPRO .5
    scores = np.array([[0.9, 0.2, 0.8, 0.5, 0.3, 0.1]])
    mask = np.array([[1, 1, 0, 0, 0, 0]])
    assert _aupro([scores], [mask]) == pytest.approx(0.5, abs=1e-12)


def test_limit_on_a_tie_segment():
    # region .9 .5; normal .5 .5 .1 .1. Tie group at .5 moves from (0,.5) to (.5,1):
    # PRO(.3) = .8, area = .3 * (.5 + .8) / 2 = .195 -> .65
    scores = np.array([[0.9, 0.5, 0.5, 0.5, 0.1, 0.1]])
    mask = np.array([[1, 1, 0, 0, 0, 0]])
    assert _aupro([scores], [mask]) == pytest.approx(0.65, abs=1e-12)


SEVERAL = (
    np.array([[0.9, 0.8, 0.7, 0.5, 0.6],
              [0.3, 0.2, 0.4, 0.1, 0.1],
              [0.05, 0.05, 0.05, 0.05, 0.05]]),
    np.array([[1, 1, 0, 0, 1],
              [1, 1, 0, 0, 0],
              [0, 0, 0, 0, 0]]),
)


@pytest.mark.parametrize("limit,expected", [
    # regions: A (4 px, weight 1/8 each), B (1 px, weight 1/2); 10 normal pixels.
    # vertices: (0,.125) (0,.25) (.1,.25) (.1,.75) (.2,.75) (.3,.75) (.3,.875) (.3,1) (.5,1) (1,1)
    (0.3, (0.1 * 0.25 + 0.1 * 0.75 + 0.1 * 0.75) / 0.3),  # limit on a vertex
    (0.25, (0.1 * 0.25 + 0.1 * 0.75 + 0.05 * 0.75) / 0.25),  # between two vertices
    (0.4, (0.1 * 0.25 + 0.1 * 0.75 + 0.1 * 0.75 + 0.1 * 1.0) / 0.4),
    (1.0, (0.1 * 0.25 + 0.1 * 0.75 + 0.1 * 0.75 + 0.7 * 1.0) / 1.0),
])
def test_several_regions_of_different_sizes(limit, expected):
    scores, mask = SEVERAL
    assert _aupro([scores], [mask], limit) == pytest.approx(expected, abs=1e-12)


def test_defect_free_image_adds_normal_pixels():
    # one-region case + a defect-free image with normal scores .95 0 0 0 (8 normal pixels):
    # vertices (.125,0) (.125,.5) (.25,.5) ... area to .3 = .175 * .5 -> .0875 / .3
    scores = np.array([[0.9, 0.2, 0.8, 0.5, 0.3, 0.1]])
    mask = np.array([[1, 1, 0, 0, 0, 0]])
    clean = np.array([[0.95, 0.0], [0.0, 0.0]])
    value = _aupro([scores, clean], [mask, np.zeros((2, 2), bool)])
    assert value == pytest.approx(0.0875 / 0.3, abs=1e-12)


def test_regions_are_8_connected():
    # two diagonal pixels form ONE region (8-connectivity), not two (4-connectivity)
    mask = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    scores = np.array([[0.9, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 0.0]])
    report = evaluate([scores], [mask])
    assert report.n_regions == 1


def _random_maps(seed, n_images, size, levels, density):
    rng = np.random.default_rng(seed)
    maps, masks = [], []
    for i in range(n_images):
        shape = (size + i % 3, size)
        mask = ndimage.binary_dilation(rng.random(shape) < density, iterations=int(rng.integers(0, 2)))
        if i % 2:
            mask[:] = False  # defect-free images
        raw = rng.random(shape) + 0.5 * mask
        maps.append(np.floor(raw * levels) / levels if levels else raw)
        masks.append(mask)
    if not any(m.any() for m in masks):
        masks[0][0, 0] = True
    return maps, masks


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(2, 12),
       st.sampled_from([0, 2, 4, 16]), st.sampled_from([0.02, 0.1, 0.3]),
       st.sampled_from([0.3, 0.05, 0.5, 1.0]))
def test_maps_equal_mvtec_and_sklearn_references(seed, n_images, size, levels, density, limit):
    maps, masks = _random_maps(seed, n_images, size, levels, density)
    if all(m.all() for m in masks):
        masks[0][0, 0] = False
    report = evaluate(maps, masks, fpr_limit=limit)
    assert report.pixel_aupro == pytest.approx(reference.aupro(maps, masks, limit), abs=1e-9)
    labels = np.concatenate([m.ravel() for m in masks])
    scores = np.concatenate([m.ravel() for m in maps])
    assert report.pixel_auroc == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert report.pixel_aupr == pytest.approx(average_precision_score(labels, scores), abs=1e-9)


def test_functional_aupro_matches_evaluate():
    from pixeval.metrics import aupro
    scores, mask = SEVERAL
    assert aupro([scores], [mask], 0.25) == _aupro([scores], [mask], 0.25)

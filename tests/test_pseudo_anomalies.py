"""Synthetic validation anomalies (detectors.pseudo_anomalies) and the validation split."""

import numpy as np
import pytest

from detectors.pseudo_anomalies import FAMILIES, perlin_noise, synthesize
from detectors.tuning import validation_split


def _images(n=4, size=64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(30, 220, size=(size, size + 8, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_changes_exactly_its_mask_and_is_reproducible(family):
    images = _images()
    painted, masks = synthesize(images, family, seed=3, per_image=2)
    assert len(painted) == len(masks) == 8
    for i, (after, mask) in enumerate(zip(painted, masks)):
        before = images[i // 2]
        assert after.shape == before.shape and after.dtype == np.uint8 and mask.dtype == bool
        assert 0 < mask.mean() < 0.9
        assert np.array_equal(before[~mask], after[~mask])
        assert np.all(np.any(before != after, axis=-1)[mask])  # every masked pixel changed
    again, masks2 = synthesize(images, family, seed=3, per_image=2)
    assert all(np.array_equal(a, b) for a, b in zip(painted, again))
    assert all(np.array_equal(a, b) for a, b in zip(masks, masks2))


def test_families_differ_and_bad_family_is_named():
    images = _images(2)
    masks = {f: synthesize(images, f, seed=0)[1][0] for f in ("pasted", "perlin", "scar")}
    assert not np.array_equal(masks["pasted"], masks["perlin"]) and not np.array_equal(masks["scar"], masks["perlin"])
    assert masks["scar"].sum() <= 16 * 0.25 * 64 * 1.5  # at most a 16-px wide, 25 %-long strip (rounding)
    with pytest.raises(ValueError, match="family="):
        synthesize(images, "cutout")


def test_perlin_noise_is_smooth_and_zero_on_the_lattice():
    rng = np.random.default_rng(0)
    noise = perlin_noise((64, 64), (4, 4), rng)
    assert noise.shape == (64, 64) and np.abs(noise).max() < 1
    assert np.allclose(noise[::16, ::16], 0)  # gradient noise vanishes at lattice points
    assert np.abs(np.diff(noise, axis=0)).max() < 0.2 and noise.std() > 0.05


class _Sample:
    def __init__(self, image):
        self.image, self.label, self.mask_path = image, 0, None

    def load_image(self):
        return self.image


class _Category:
    def __init__(self, images):
        self.name, self.train, self.validation = "toy", [_Sample(im) for im in images], []


def test_validation_split_holds_out_clean_and_painted_images():
    images = _images(10)
    split = validation_split(_Category(images), holdout=0.2, seed=1, family="scar", per_image=2)
    assert len(split.fit_images) == 8 and len(split.images) == 2 + 4 == len(split.masks)
    assert not split.masks[0].any() and not split.masks[1].any() and all(m.any() for m in split.masks[2:])
    held = [im for im in images if not any(im is f for f in split.fit_images)]
    assert all(np.array_equal(a, b) for a, b in zip(held, split.images[:2]))
    assert "scar" in split.source

"""Sp-CFA (detectors.sp_cfa), its tuning (detectors.tuning) and `pixeval tune`."""

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import average_precision_score

from detectors.cfa import CFA
from detectors.sp_cfa import TABLE2, SpCFA
from detectors.pseudo_anomalies import synthesize
from detectors.tuning import TuningRun, ValidationSplit
from detectors.validation import fuse, hold_out, simplex_grid
from pixeval import ParamError, get_detector, load_detector
from pixeval.cli import main
from pixeval.testing import check_detector

SMALL = dict(backbone="tiny", resolution=48, epochs=2, gamma_c=2, rs_s=8, rs_b=16, seed=3, a1=1 / 3, a2=1 / 3, a3=1 / 3)
#: Fusion weights left unset: chosen at fit on held-out images.
CHOOSING = {k: v for k, v in SMALL.items() if k not in ("a1", "a2", "a3")}


def _images(n=6, seed=0, size=40):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    out = []
    for _ in range(n):
        base = 120 + 60 * np.sin(x / 3 + rng.uniform(0, 6)) * np.cos(y / 4 + rng.uniform(0, 6))
        out.append(np.clip(base[..., None] + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def fitted():
    images = _images(6)
    return images, SpCFA(**SMALL).fit(images)


@pytest.mark.slow
def test_image_branch_is_cfa_and_branches_train_as_if_alone(fitted):
    images, sp = fitted
    assert list(sp.branches) == ["org", "rs8", "rs16"] and get_detector("sp_cfa") is SpCFA
    cfa = CFA(**{k: v for k, v in CHOOSING.items() if k not in ("rs_s", "rs_b")}).fit(images)
    for a, b in zip(cfa.head.state_dict().values(), sp.branches["org"].head.state_dict().values()):
        assert np.allclose(a.numpy(), b.numpy(), atol=1e-6)
    alone = SpCFA(**SMALL).fit_branches(images, [8], [1.0])["rs8"]
    for a, b in zip(alone.head.state_dict().values(), sp.branches["rs8"].head.state_dict().values()):
        assert np.allclose(a.numpy(), b.numpy(), atol=1e-6)


@pytest.mark.slow
def test_branch_maps_are_standardised_on_the_training_images(fitted):
    images, sp = fitted
    for name, maps in sp.branch_maps(images).items():
        pixels = np.concatenate([m.ravel() for m in maps])
        assert [m.shape for m in maps] == [(40, 40)] * 6
        assert abs(pixels.mean()) < 1e-4 and abs(pixels.std() - 1) < 1e-3, name


@pytest.mark.slow
def test_prediction_is_the_weighted_sum_of_branch_maps_at_image_size(fitted, tmp_path):
    images, sp = fitted
    test = _images(2, seed=7, size=48) + [_images(1, seed=8, size=30)[0]]
    pred = sp.predict(test)
    assert [m.shape for m in pred.maps] == [(48, 48), (48, 48), (30, 30)]
    branch = sp.branch_maps(test)
    for i in range(3):
        expected = sum(w * branch[n][i] for n, w in zip(["org", "rs8", "rs16"], [1 / 3] * 3))
        assert np.allclose(pred.maps[i], expected, atol=1e-5)
    assert np.allclose(pred.image_scores, [m.max() for m in pred.maps])
    sp.save(tmp_path / "sp")
    again = load_detector(tmp_path / "sp").predict(test)
    assert all(np.array_equal(a, b) for a, b in zip(pred.maps, again.maps))


@pytest.mark.slow
def test_keeps_the_detector_contract():
    check_detector(SpCFA, **SMALL)
    check_detector(SpCFA, **CHOOSING)  # the default: weights chosen at fit


@pytest.mark.slow
def test_unset_fusion_weights_are_chosen_on_held_out_images_by_sklearn_average_precision(tmp_path):
    images = _images(10)
    sp = SpCFA(**CHOOSING, weight_step=0.25).fit(images)
    split = hold_out(images, 0.2, seed=3)
    reference = SpCFA(**SMALL)
    reference.branches = reference.fit_branches(split.fit_images, [None, 8, 16], [1.0, 1.0, 1.0])
    maps = reference.branch_maps(split.images)
    labels = np.concatenate([m.ravel() for m in split.masks])
    flat = {n: np.concatenate([m.ravel() for m in v]) for n, v in maps.items()}
    best = max(simplex_grid(0.25), key=lambda w: average_precision_score(
        labels, fuse(flat, dict(zip(["org", "rs8", "rs16"], w)))))
    assert tuple(sp.fusion_weights().values()) == best
    sp.save(tmp_path / "sp")
    assert load_detector(tmp_path / "sp").fusion_weights() == sp.fusion_weights()
    with pytest.raises(RuntimeError, match="not fitted"):
        SpCFA(**CHOOSING).fusion_weights()


def test_table2_presets_and_parameter_checks():
    carpet = SpCFA(table2="mvtec-carpet").params
    assert (carpet.a1, carpet.a2, carpet.rs_s, carpet.rs_b) == (0.25, 0.75, 10, None)
    assert SpCFA(table2="mvtec-carpet").region_sizes() == [None, 10]
    for a1, a2, a3, rs_s, rs_b in TABLE2.values():
        assert abs(a1 + a2 + a3 - 1) < 1e-9 and (rs_b is not None or a3 == 0)
    with pytest.raises(ParamError, match="rs_b"):
        SpCFA(rs_s=10, rs_b=10)
    with pytest.raises(ParamError, match="all 0"):
        SpCFA(a1=0, a2=0, a3=0.5, rs_b=None)
    with pytest.raises(ParamError, match="weight_step"):
        SpCFA(weight_step=0.3)
    assert SpCFA(a1=1).fusion_weights() == {"org": 1, "rs40": 0.0, "rs80": 0.0}


def test_simplex_grid():
    grid = simplex_grid(0.05)
    assert len(grid) == 231 == len(set(grid)) and grid == sorted(grid)
    assert all(abs(sum(w) - 1) < 1e-9 and min(w) >= 0 for w in grid)
    assert simplex_grid(0.5, (True, False, True)) == [(0.0, 0.0, 1.0), (0.5, 0.0, 0.5), (1.0, 0.0, 0.0)]
    with pytest.raises(ValueError, match="divide 1"):
        simplex_grid(0.3)


@pytest.mark.parametrize("at", ["image", "network"])
def test_superpixel_branch_maps_follow_the_tiling_at_the_chosen_size(at):
    """With sp_sigma = 0, a superpixel branch's map is constant on no superpixel in general, but
    its untiled values come from the superpixel's own cell: check the sizes and that cutting at
    the image's size uses the image's own pixels (tilings have the image's shape)."""
    sp = SpCFA(**{**SMALL, "superpixels_at": at, "sp_sigma": 0.0, "resolution": 48})
    images = _images(2, size=64)
    mosaics, tilings = sp.tilings(images, 8)
    assert [t.shape for t in tilings] == ([(64, 64)] * 2 if at == "image" else [(48, 48)] * 2)
    assert [m.shape for m in mosaics] == [t.shape + (3,) for t in tilings]


def test_presets_set_the_superpixel_construction_and_explicit_values_win():
    assert (SpCFA(preset="paper").params.superpixels_at, SpCFA(preset="paper").params.sp_bank) == \
        ("network", "positions")
    quick = SpCFA().params
    assert quick.superpixels_at in ("image", "network") and quick.epochs == 4
    assert SpCFA(preset="paper", superpixels_at="image").params.superpixels_at == "image"
    with pytest.raises(ParamError):
        SpCFA(sp_bank="nearest")


@pytest.mark.slow
def test_patch_bank_and_no_coordconv_keep_the_contract_and_round_trip(tmp_path):
    params = {**SMALL, "sp_bank": "patches", "sp_coordconv": False, "bank_sample": 500}
    images = _images(4)
    sp = SpCFA(**params).fit(images)
    assert not sp.branches["rs8"].head.descriptor.coords and sp.branches["org"].head.descriptor.coords
    pred = sp.predict(images[:2])
    sp.save(tmp_path / "sp")
    again = load_detector(tmp_path / "sp").predict(images[:2])
    assert all(np.array_equal(a, b) for a, b in zip(pred.maps, again.maps))


@pytest.mark.slow
def test_tuning_picks_the_best_candidate_by_sklearn_average_precision():
    images = _images(8, size=48)
    val, masks = synthesize(images[:3], "pasted", seed=2)
    run = TuningRun(SMALL, ValidationSplit(images[3:], val, masks, "test"), [8], [None, 16])
    result = run.best("aupr", step=0.25)
    labels = np.concatenate([m.ravel() for m in masks])
    best = max(simplex_grid(0.25), key=lambda w: average_precision_score(
        labels, fuse(run.maps, {"org": w[0], "rs8": w[1], "rs16": w[2]})))
    ref = average_precision_score(labels, fuse(run.maps, {"org": best[0], "rs8": best[1], "rs16": best[2]}))
    assert result.value == pytest.approx(ref, abs=1e-9) and result.value >= max(r["aupr"] for r in result.candidates)
    # restricted searches never beat the full one; the detector reproduces the chosen fusion
    assert run.best("aupr", 0.25, (True, True, False)).value <= result.value + 1e-12
    detector = run.detector(result)
    assert (detector.params.a1, detector.params.a2, detector.params.a3) == (result.a1, result.a2, result.a3)
    assert detector.predict(val[:1]).maps[0].shape == (48, 48)


def test_tune_command_rejects_bad_input_with_exit_code_2():
    runner = CliRunner()
    cases = [["--data", "synthetic-textures", "--category", "gravel", "--rs-s", "ten"],
             ["--data", "synthetic-textures", "--category", "gravel", "--step", "0.3"],
             ["--data", "synthetic-textures", "--category", "gravel", "-p", "epochs=-1"],
             ["--data", "nosuchlayout:/x", "--category", "gravel"]]
    for args in cases:
        result = runner.invoke(main, ["tune", *args])
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output

"""Hyperparameters (pixeval.params), the detector contract (pixeval.detector), the registry
(pixeval.registry) and ``pixeval detectors``, in process."""

from __future__ import annotations

import importlib
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from pixeval import (BaseParams, Detector, ParamError, Prediction, RegistryError, available_detectors,
                     create_detector, get_detector, load_detector, param, register_detector, registry)
from pixeval.cli import main
from pixeval.io import resize_map
from pixeval.params import build_params, param_specs
from pixeval.testing import bad_hyperparameters, check_detector

BUILT_IN = ("cfa", "dfm", "padim", "patchcore", "sp_cfa")


@dataclass
class TinyParams(BaseParams):
    resolution: int = param(8, "Side of the square working resolution.", min=2, max=64)
    weights: tuple[float, ...] = param((1.0, 1.0, 1.0), "Weight of each colour channel.")
    distance: str = param("abs", "How a z-score becomes a score.", choices=("abs", "square"))
    floor: float | None = param(None, "Smallest standard deviation; None: no floor.", min=0.0)
    flip: bool = param(False, "Negate the projection (for testing booleans).")


class Tiny(Detector):
    """Per-pixel z-scores against the training images, projected on seeded random channel weights.

    A small numpy detector for testing the contract.
    """

    Params = TinyParams

    def fit(self, train_images, progress=None):
        r = self.params.resolution
        stack = np.stack([cv2.resize(im, (r, r)).astype(np.float64) for im in train_images])
        self.mean, self.std = stack.mean(axis=0), stack.std(axis=0) + (self.params.floor or 1e-6)
        rng = np.random.default_rng(self.params.seed)
        self.projection = rng.normal(size=3) * np.asarray(self.params.weights) * (-1 if self.params.flip else 1)
        return self

    def predict(self, images, progress=None):
        maps = []
        for im in images:
            r = self.params.resolution
            z = (cv2.resize(im, (r, r)) - self.mean) / self.std @ self.projection
            z = np.abs(z) if self.params.distance == "abs" else z ** 2
            maps.append(resize_map(z.astype(np.float32), im.shape[:2]))
        return Prediction(maps, np.array([m.max() for m in maps], dtype=np.float64))

    def state_dict(self):
        return {"mean": self.mean, "std": self.std, "projection": self.projection}

    def load_state_dict(self, state):
        self.mean, self.std, self.projection = state["mean"], state["std"], state["projection"]


def images(n: int, seed: int, shapes=((20, 30), (16, 16), (9, 41))) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*shapes[i % len(shapes)], 3), dtype=np.uint8) for i in range(n)]


@pytest.fixture
def registered(monkeypatch):
    """A private copy of the in-process registry, with Tiny registered as ``tiny_test``."""
    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))
    register_detector("tiny_test")(Tiny)
    return "tiny_test"


# ----------------------------------------------------------------------------- hyperparameters

def test_build_params_converts_command_line_strings():
    p = build_params(TinyParams, {"resolution": "16", "weights": "1,0.5,2", "distance": "square",
                                  "floor": "0.25", "flip": "yes", "seed": "3", "device": "cpu"})
    assert p == TinyParams(seed=3, resolution=16, weights=(1.0, 0.5, 2.0), distance="square", floor=0.25, flip=True)
    assert build_params(TinyParams, {"floor": "none", "flip": "off", "resolution": 4.0}) == \
        TinyParams(floor=None, flip=False, resolution=4)
    assert build_params(TinyParams, {"weights": [1, "2", 3.5]}).weights == (1.0, 2.0, 3.5)
    assert build_params(TinyParams) == TinyParams()


@pytest.mark.parametrize("values, message", [
    ({"resolutoin": 8}, r"unknown hyperparameter\(s\) resolutoin; accepted: seed, device, resolution"),
    ({"resolution": "8.5"}, r"resolution='8.5' is not a valid int"),
    ({"resolution": 8.5}, r"resolution=8.5 is not a valid int"),
    ({"resolution": True}, r"resolution=True is not a valid int"),
    ({"resolution": 1}, r"resolution=1 is below its minimum 2"),
    ({"resolution": "65"}, r"resolution=65 is above its maximum 64"),
    ({"distance": "cosine"}, r"distance='cosine' is not one of 'abs', 'square'"),
    ({"flip": "maybe"}, r"flip='maybe' is not a valid bool"),
    ({"weights": "1,x"}, r"weights='1,x' is not a valid tuple\[float, ...\]"),
    ({"floor": "-1"}, r"floor=-1.0 is below its minimum 0.0"),
])
def test_build_params_rejects_bad_values_naming_the_parameter(values, message):
    with pytest.raises(ParamError, match=message):
        build_params(TinyParams, values)


def test_nan_is_out_of_any_bounds():
    with pytest.raises(ParamError, match="floor"):
        build_params(TinyParams, {"floor": "nan"})


def test_bounds_apply_to_each_element_of_a_tuple():
    @dataclass
    class Bounded(BaseParams):
        alphas: tuple[float, ...] = param((0.5, 0.5), "Weights in [0, 1].", min=0.0, max=1.0)

    assert build_params(Bounded, {"alphas": "0,1"}).alphas == (0.0, 1.0)
    with pytest.raises(ParamError, match="alphas=1.5 is above its maximum 1.0"):
        build_params(Bounded, {"alphas": "0.2,1.5"})


def test_param_specs_in_declaration_order():
    specs = {s.name: s for s in param_specs(TinyParams)}
    assert list(specs) == ["seed", "device", "resolution", "weights", "distance", "floor", "flip"]
    assert (specs["resolution"].type, specs["resolution"].default, specs["resolution"].min,
            specs["resolution"].max) == ("int", 8, 2, 64)
    assert specs["weights"].type == "tuple[float, ...]" and specs["floor"].type == "float | None"
    assert specs["distance"].choices == ("abs", "square")
    assert specs["flip"].help == "Negate the projection (for testing booleans)."


def test_detector_construction_and_overrides():
    d = Tiny(resolution="12")
    assert d.params.resolution == 12
    e = Tiny(TinyParams(resolution=12, distance="square"), seed=5)
    assert (e.params.resolution, e.params.distance, e.params.seed) == (12, "square", 5)
    with pytest.raises(ParamError, match="Tiny expects TinyParams, got BaseParams"):
        Tiny(BaseParams())
    assert Tiny.summary() == ("Per-pixel z-scores against the training images, projected on seeded random "
                              "channel weights.")


# ----------------------------------------------------------------------------- the contract, runnable

def test_tiny_keeps_the_contract():
    check_detector(Tiny)
    check_detector(Tiny, resolution=5, weights="1,2,3", distance="square", floor=0.5, flip=True, seed=4)


def test_save_and_load_keep_the_seed_and_refuse_a_folder_without_a_detector(tmp_path):
    test = images(3, seed=1)
    detector = Tiny(seed=4).fit(images(6, seed=0))
    detector.save(tmp_path / "tiny")
    assert load_detector(tmp_path / "tiny").params.seed == 4
    other_seed = Tiny(seed=5).fit(images(6, seed=0)).predict(test)
    assert not np.array_equal(other_seed.maps[0], detector.predict(test).maps[0])
    with pytest.raises(RegistryError, match="holds no saved detector"):
        load_detector(tmp_path / "nothing")


class Float64Maps(Tiny):
    """Maps in float64."""

    def predict(self, images, progress=None):
        prediction = super().predict(images)
        return Prediction([m.astype(np.float64) for m in prediction.maps], prediction.image_scores)


class WorkingSizeMaps(Tiny):
    """Maps left at the working resolution."""

    def predict(self, images, progress=None):
        prediction = super().predict(images)
        return Prediction([cv2.resize(m, (self.params.resolution,) * 2) for m in prediction.maps],
                          prediction.image_scores)


class NaNScore(Tiny):
    """A NaN image score."""

    def predict(self, images, progress=None):
        prediction = super().predict(images)
        return Prediction(prediction.maps, np.r_[np.nan, prediction.image_scores[1:]])


class Unseeded(Tiny):
    """Random weights from an unseeded generator."""

    def fit(self, train_images, progress=None):
        super().fit(train_images)
        self.projection = np.random.default_rng().normal(size=3)
        return self


class ForgetsProjection(Tiny):
    """A state that leaves out the projection."""

    def state_dict(self):
        return {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state):
        self.mean, self.std, self.projection = state["mean"], state["std"], np.ones(3)


class IgnoresUnknownNames(Tiny):
    """Unknown hyperparameter names dropped silently."""

    def __init__(self, params=None, **overrides):
        super().__init__(params, **{k: v for k, v in overrides.items() if k in TinyParams.__dataclass_fields__})


class ChangesItsInput(Tiny):
    """Normalises its input images in place."""

    def predict(self, images, progress=None):
        for image in images:
            image //= 2
        return super().predict(images)


class ReturnsNothing(Tiny):
    """Fit returns None."""

    def fit(self, train_images, progress=None):
        super().fit(train_images)


class OvershootingProgress(Tiny):
    """Progress past the total."""

    def fit(self, train_images, progress=None):
        progress("epochs", 3, 2)
        return super().fit(train_images)


@dataclass
class UndeclaredParams(BaseParams):
    depth: int = 3


class Undeclared(Tiny):
    """A hyperparameter declared without pixeval.param."""

    Params = UndeclaredParams


class Undocumented(Tiny):
    pass


@pytest.mark.parametrize("cls, clause, detail", [
    (Float64Maps, "predict", r"map 0 \(image of 64×64\) is float64, not a float32 array"),
    (WorkingSizeMaps, "predict", r"map 0 \(image of 64×64\) has shape \(8, 8\)"),
    (NaNScore, "predict", "image_scores holds NaN or infinite values"),
    (Unseeded, "determinism", "predict different maps"),
    (ForgetsProjection, "save and load", "the loaded detector predicts other maps"),
    (IgnoresUnknownNames, "bad hyperparameters", "no_such_hyperparameter=1 is not a declared hyperparameter"),
    (ChangesItsInput, "fit and predict", "changed its input images"),
    (ReturnsNothing, "fit", "fit returned None"),
    (OvershootingProgress, "progress", r"\('epochs', 3, 2\)"),
    (Undeclared, "declaration", "depth are not declared with pixeval.param"),
    (Undocumented, "declaration", "it has no docstring"),
])
def test_check_detector_names_the_broken_clause(cls, clause, detail):
    with pytest.raises(AssertionError, match=rf"^{cls.__name__}: {clause}: .*{detail}"):
        check_detector(cls)


def test_bad_hyperparameters_cover_types_choices_and_bounds():
    bad = {(name, str(value)) for name, value, _ in bad_hyperparameters(TinyParams)}
    assert bad == {("seed", "not-a-number"), ("resolution", "not-a-number"), ("resolution", "1"),
                   ("resolution", "65"), ("weights", "not-a-number"), ("distance", "no-such-choice"),
                   ("floor", "not-a-number"), ("floor", "-1.0"), ("flip", "maybe")}


def test_load_without_state_names_the_missing_file(tmp_path):
    Tiny().fit(images(2, seed=0)).save(tmp_path / "t")
    (tmp_path / "t" / "state.pkl").unlink()
    with pytest.raises(RegistryError, match="state.pkl is missing"):
        load_detector(tmp_path / "t")


# ----------------------------------------------------------------------------- registry

def test_register_create_and_look_up(registered):
    info = available_detectors()[registered]
    assert info.cls is Tiny and info.origin == f"registered in {__name__}" and info.error is None
    detector = create_detector(registered, {"resolution": "4", "distance": "square"})
    assert isinstance(detector, Tiny) and detector.params.resolution == 4
    assert get_detector(registered) is Tiny
    with pytest.raises(RegistryError, match=r"unknown detector 'nope'; available: .*tiny_test"):
        get_detector("nope")
    with pytest.raises(TypeError, match="needs a Detector subclass"):
        register_detector("bad")(dict)


def test_builtin_detectors_come_from_entry_points():
    found = available_detectors()
    for name in BUILT_IN:
        assert found[name].origin == "built-in"
        assert (found[name].cls is None) != (found[name].error is None)  # loaded, or reported with its error


# ----------------------------------------------------------------------------- pixeval detectors

def test_cli_lists_and_describes_a_detector(registered):
    listing = CliRunner().invoke(main, ["detectors"])
    assert listing.exit_code == 0, listing.output
    row = next(line for line in listing.output.splitlines() if line.startswith(registered))
    assert re.fullmatch(rf"tiny_test\s+registered in {__name__}\s+Per-pixel z-scores .*", row)
    for name in BUILT_IN:
        assert re.search(rf"^{name}\s+built-in\s+\S", listing.output, re.M)
    details = CliRunner().invoke(main, ["detectors", registered])
    assert details.exit_code == 0, details.output
    text = details.output
    assert f"origin: registered in {__name__} ({__name__}:Tiny)" in text
    assert "A small numpy detector for testing the contract." in text
    for spec in param_specs(TinyParams):
        assert f"  {spec.name}: {spec.type} = {spec.default!r}" in text
        assert spec.help in text
    assert "resolution: int = 8  [2 <= value <= 64]" in text
    assert "distance: str = 'abs'  [one of 'abs', 'square']" in text
    assert "floor: float | None = None  [>= 0.0]" in text


def test_cli_unknown_detector_exits_2():
    result = CliRunner().invoke(main, ["detectors", "no_such_detector"])
    assert result.exit_code == 2
    assert "unknown detector 'no_such_detector'; available:" in result.output


@pytest.mark.slow  # a fresh interpreter imports the built-in detectors (torch): about 5 s
def test_cli_warns_when_detectors_is_not_pixevals(tmp_path):
    """An unrelated importable package called ``detectors`` shadows the built-ins: warned, not fatal."""
    (tmp_path / "detectors").mkdir()
    (tmp_path / "detectors" / "__init__.py").write_text('"""Someone else\'s detectors."""\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", "from pixeval.cli import main; main()", "detectors"],
                            capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "is not pixeval's own" in result.stderr and str(tmp_path / "detectors") in result.stderr
    for name in BUILT_IN:  # still listed (loaded or with their error): the warning is not fatal
        assert re.search(rf"^{name}\s+built-in\s+\S", result.stdout, re.M)


# ----------------------------------------------------------------------------- README guide

def test_readme_guide_runs(tmp_path, monkeypatch):
    """The code of README's "Add your own detector" works as printed: registered, and it keeps the
    contract by the check the README tells plugin authors to run."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Add your own detector", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(code) == 2 and "check_detector(" in code[1], "the README section shows the detector and its test"
    (tmp_path / "readme_guide_detector.py").write_text(code[0])
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))
    monkeypatch.delitem(sys.modules, "readme_guide_detector", raising=False)
    importlib.import_module("readme_guide_detector")  # registers the detector (a module written just above)

    (name,) = [n for n, i in registry._REGISTERED.items() if i.origin == "registered in readme_guide_detector"]
    check_detector(get_detector(name), power=1.0)
    maps = create_detector(name).fit(images(4, seed=0)).predict(images(2, seed=1)).maps
    assert not any(math.isclose(float(m.std()), 0.0) for m in maps)
    sys.modules.pop("readme_guide_detector", None)

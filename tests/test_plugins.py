"""Third-party detectors and commands through the ``pixeval.detectors`` and ``pixeval.commands``
entry-point groups, for real.

A tiny plugin distribution is written to a temporary folder and pip-installed (``--target``) into
another temporary folder; subprocesses that have that folder on ``PYTHONPATH`` see it exactly as
they would see an installed package, through ``importlib.metadata``. Nothing is installed into
this environment: the test process itself never has the folder on its path.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # pip and fresh interpreters: about 20 s in all

DIST = "pixeval-plugin-example"
VERSION = "0.3.1"

PYPROJECT = f"""
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{DIST}"
version = "{VERSION}"

[project.entry-points."pixeval.detectors"]
plugin_mean = "pixeval_plugin_example:MeanColour"
plugin_missing = "pixeval_plugin_example.missing:Nothing"
plugin_not_a_detector = "pixeval_plugin_example:helper"

[project.entry-points."pixeval.commands"]
hello = "pixeval_plugin_example:hello"
hello_missing = "pixeval_plugin_example.missing:hello"

[tool.setuptools]
packages = ["pixeval_plugin_example"]
"""

MODULE = '''
from dataclasses import dataclass

import click
import numpy as np

from pixeval import BaseParams, Detector, Prediction, param


class MeanColour(Detector):
    """Scaled L1 distance of each pixel to the mean training colour (a test plugin)."""

    @dataclass
    class Params(BaseParams):
        scale: float = param(1.0, "Multiplies every score.", min=0.0)

    def fit(self, train_images, progress=None):
        self.mean = np.mean([im.reshape(-1, 3).mean(axis=0) for im in train_images], axis=0)
        return self

    def predict(self, images, progress=None):
        maps = [(self.params.scale * np.abs(im - self.mean).sum(axis=2)).astype(np.float32) for im in images]
        return Prediction(maps, np.array([m.max() for m in maps], dtype=np.float64))

    def state_dict(self):
        return {"mean": self.mean}

    def load_state_dict(self, state):
        self.mean = state["mean"]


def helper():
    return 42


@click.command("hello")
@click.argument("name")
def hello(name):
    """Greet NAME (a test plugin command)."""
    click.echo(f"hello {name}")
'''

FIT_PREDICT = """
import sys
import numpy as np
from pixeval import available_detectors, create_detector

print(available_detectors()["plugin_mean"].origin)
rng = np.random.default_rng(0)
train = [rng.integers(0, 256, (10, 12, 3), dtype=np.uint8) for _ in range(4)]
test = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(7, 9, 3), (12, 5, 3)]]
prediction = create_detector("plugin_mean", {"scale": "2"}).fit(train).predict(test)
np.savez(sys.argv[1], *prediction.maps, scores=prediction.image_scores)
"""


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    """A folder holding the pip-installed plugin distribution."""
    source = tmp_path_factory.mktemp("plugin_source")
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "pixeval_plugin_example").mkdir()
    (source / "pixeval_plugin_example" / "__init__.py").write_text(MODULE)
    target = tmp_path_factory.mktemp("plugin_site")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--no-cache-dir", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return target


def run_with_plugin(plugin_path: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    paths = [str(plugin_path), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def pixeval(plugin_path: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_with_plugin(plugin_path, ["-c", "from pixeval.cli import main; main()", *args], cwd)


def test_plugin_is_listed_with_its_origin_and_broken_ones_with_their_errors(plugin_path, tmp_path):
    result = pixeval(plugin_path, "detectors", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    origin = rf"package {DIST} {VERSION}"
    assert re.search(rf"^plugin_mean\s+{origin}\s+Scaled L1 distance of each pixel to the mean training colour",
                     result.stdout, re.M)
    assert re.search(rf"^plugin_missing\s+{origin}\s+FAILED TO LOAD: ModuleNotFoundError: "
                     r"No module named 'pixeval_plugin_example.missing'", result.stdout, re.M)
    assert re.search(rf"^plugin_not_a_detector\s+{origin}\s+FAILED TO LOAD: TypeError: "
                     r"pixeval_plugin_example:helper is not a pixeval.Detector subclass", result.stdout, re.M)
    assert re.search(r"^cfa\s+built-in", result.stdout, re.M)  # the built-ins are still there
    assert "2 of " in result.stdout and "failed to load" in result.stdout


def test_plugin_hyperparameters_and_broken_plugin_details(plugin_path, tmp_path):
    details = pixeval(plugin_path, "detectors", "plugin_mean", cwd=tmp_path)
    assert details.returncode == 0, details.stderr
    assert f"origin: package {DIST} {VERSION} (pixeval_plugin_example:MeanColour)" in details.stdout
    assert "scale: float = 1.0  [>= 0.0]" in details.stdout and "Multiplies every score." in details.stdout
    broken = pixeval(plugin_path, "detectors", "plugin_missing", cwd=tmp_path)
    assert broken.returncode == 1
    assert "detector 'plugin_missing'" in broken.stderr and "No module named" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_plugin_commands_run_and_broken_ones_are_reported(plugin_path, tmp_path):
    listing = pixeval(plugin_path, "--help", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    text = " ".join(listing.stdout.split())  # undo the help formatter's line wrapping
    assert "hello Greet NAME (a test plugin command)." in text
    assert f"hello_missing FAILED TO LOAD (package {DIST} {VERSION}): ModuleNotFoundError" in text
    assert "tune Tune Sp-CFA" in text  # the others still work
    hello = pixeval(plugin_path, "hello", "world", cwd=tmp_path)
    assert hello.returncode == 0 and hello.stdout == "hello world\n", hello.stderr
    broken = pixeval(plugin_path, "hello_missing", cwd=tmp_path)
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert f"command 'hello_missing' (package {DIST} {VERSION}) failed to load: ModuleNotFoundError" in broken.stderr


def test_plugin_fits_and_predicts_through_the_registry(plugin_path, tmp_path):
    out = tmp_path / "maps.npz"
    (tmp_path / "fit_predict.py").write_text(FIT_PREDICT)
    result = run_with_plugin(plugin_path, [str(tmp_path / "fit_predict.py"), str(out)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"package {DIST} {VERSION}"
    # The same images, scored here by the definition the plugin documents.
    rng = np.random.default_rng(0)
    train = [rng.integers(0, 256, (10, 12, 3), dtype=np.uint8) for _ in range(4)]
    test = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(7, 9, 3), (12, 5, 3)]]
    mean = np.concatenate([im.reshape(-1, 3) for im in train]).astype(np.float64).mean(axis=0)
    with np.load(out) as saved:
        for k, im in enumerate(test):
            got = saved[f"arr_{k}"]
            assert got.dtype == np.float32 and got.shape == im.shape[:2]
            np.testing.assert_allclose(got, 2 * np.abs(im - mean).sum(axis=2), rtol=1e-6)
        np.testing.assert_array_equal(saved["scores"], [saved[f"arr_{k}"].max() for k in range(len(test))])


def test_plugin_runs_in_bench(plugin_path, tmp_path):
    rng = np.random.default_rng(1)
    category = tmp_path / "data" / "widget"
    for split, folder, n in [("train", "good", 4), ("test", "good", 2), ("test", "dent", 2)]:
        for i in range(n):
            path = category / split / folder / f"{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
            if folder == "dent":
                mask = np.zeros((16, 16), np.uint8)
                mask[4:8, 4 + i:9 + i] = 255
                (category / "ground_truth" / "dent").mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).save(category / "ground_truth" / "dent" / f"{i:03d}_mask.png")
    result = pixeval(plugin_path, "bench", "--data", f"mvtec:{tmp_path / 'data'}", "--detectors", "plugin_mean",
                     "--out", str(tmp_path / "run"), "--no-progress", "--format", "csv", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "plugin_mean" in result.stdout


def test_nothing_leaks_into_this_environment(plugin_path):
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution(DIST)
    names = {ep.name for ep in importlib.metadata.entry_points(group="pixeval.detectors")}
    assert not names & {"plugin_mean", "plugin_missing", "plugin_not_a_detector"}
    commands = {ep.name for ep in importlib.metadata.entry_points(group="pixeval.commands")}
    assert not commands & {"hello", "hello_missing"}
    assert "pixeval_plugin_example" not in sys.modules
    assert str(plugin_path) not in sys.path


"""``pixeval datasets [SPEC]`` through click's test runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pixeval.cli import main


def run(*args: str):
    return CliRunner().invoke(main, ["datasets", *args])


def save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXEVAL_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache" / "synthetic-textures"


def test_overview_lists_builtin_state_and_layouts(empty_cache):
    result = run()
    assert result.exit_code == 0, result.output
    assert f"not generated yet; generated on first use into {empty_cache}" in result.output
    for spec in ["mvtec:PATH", "ksdd2:PATH", "folder:PATH", "manifest:PATH"]:
        assert spec in result.output
    assert "BTAD" in result.output and "KSDD2" in result.output


def test_summary_counts_match_the_files(tmp_path):
    pixels = np.zeros((6, 6, 3), np.uint8)
    defect = np.zeros((6, 6), np.uint8)
    defect[2:4, 2:4] = 255
    for cat, n_train, defects in [("a", 3, {"crack": 2}), ("b", 2, {"crack": 1, "cut": 1})]:
        for i in range(n_train):
            save(tmp_path / cat / "train" / "good" / f"{i}.png", pixels)
        save(tmp_path / cat / "test" / "good" / "0.png", pixels)
        for name, n in defects.items():
            for i in range(n):
                save(tmp_path / cat / "test" / name / f"{i}.png", pixels)
                save(tmp_path / cat / "ground_truth" / name / f"{i}_mask.png", defect)
    result = run(f"mvtec:{tmp_path}")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()[3:]}
    assert rows["a"] == ["3", "0", "3", "2", "crack"]
    assert rows["b"] == ["2", "0", "3", "2", "crack,", "cut"]
    assert rows["total"] == ["5", "0", "6", "4"]


def test_bad_spec_is_a_clear_error_with_exit_status_2(tmp_path):
    result = run(f"ksdd2:{tmp_path}")
    assert result.exit_code == 2
    assert "expected folders train/ and test/" in result.output and "Traceback" not in result.output


def test_builtin_summary_generates_it_once(empty_cache):
    result = run("synthetic-textures")
    assert result.exit_code == 0, result.output
    assert f"synthetic-textures: mvtec layout at {empty_cache}" in result.output
    assert {"brick", "grass", "gravel"} <= {line.split()[0] for line in result.output.splitlines()[3:]}
    assert f"generated at {empty_cache}" in run().output

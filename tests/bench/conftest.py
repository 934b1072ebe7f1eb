"""Fixtures for the bench and report tests: a tiny MVTec-layout dataset and the tiny detectors."""

from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import tiny_detectors  # noqa: E402,F401  (registers tiny_zscore and tiny_blur in this process)

#: Categories of the tiny dataset, and the image size (height, width); not square on purpose.
CATEGORIES = ("fabric", "tiles")
SHAPE = (40, 48)


def _write_category(root: Path, name: str, rng: np.random.Generator) -> None:
    def texture() -> np.ndarray:
        return np.clip(rng.normal(120, 12, size=(*SHAPE, 3)), 0, 255).astype(np.uint8)

    def save(path: Path, image: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), image)

    for i in range(8):
        save(root / name / "train" / "good" / f"{i:03d}.png", texture())
    for i in range(4):
        save(root / name / "test" / "good" / f"{i:03d}.png", texture())
    for i in range(6):
        image, mask = texture(), np.zeros(SHAPE, dtype=np.uint8)
        size = int(rng.integers(4, 10))
        y, x = int(rng.integers(0, SHAPE[0] - size)), int(rng.integers(0, SHAPE[1] - size))
        mask[y:y + size, x:x + size] = 255
        # a faint, noisy patch, so the two detectors differ and neither is perfect
        image[mask > 0] = np.clip(image[mask > 0].astype(int) + rng.integers(10, 50, size=(int(mask.sum() / 255), 3)),
                                  0, 255).astype(np.uint8)
        save(root / name / "test" / "spot" / f"{i:03d}.png", image)
        save(root / name / "ground_truth" / "spot" / f"{i:03d}_mask.png", mask)


def bench_split(root: Path, category: str, train: list, holdout: float = 0.1) -> tuple[list, list]:
    """The training images a bench job fits on and those it holds out for the deployment threshold
    (the images ``holdout_indices`` draws with the category's seed)."""
    from pixeval.bench.runner import holdout_indices

    held = holdout_indices(len(train), holdout, zlib.crc32(f"{root.name}/{category}".encode()))
    return [x for i, x in enumerate(train) if i not in held], [train[i] for i in held]


@pytest.fixture(scope="session")
def tiny_mvtec(tmp_path_factory) -> Path:
    """An MVTec-layout tree: categories fabric and tiles, 8 train, 4 good + 6 'spot' test images."""
    root = tmp_path_factory.mktemp("tiny_mvtec")
    rng = np.random.default_rng(7)
    for name in CATEGORIES:
        _write_category(root, name, rng)
    return root


@pytest.fixture
def plugin_env() -> dict[str, str]:
    """The environment for subprocesses and workers: this folder on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    return env

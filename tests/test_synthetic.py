"""The built-in synthetic-textures dataset: layout, masks, determinism, disjoint crops, caching."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pixeval.data import synthetic
from pixeval.data.defects import DEFECT_TYPES, STAIN_MAX_EDGE, paint_defect
from pixeval.data.synthetic import (
    GENERATOR_VERSION,
    MARKER,
    SYNTHETIC_TEXTURES,
    VERSIONS,
    default_root,
    ensure_synthetic_textures,
    generate_category,
    is_current,
)

INFO = SYNTHETIC_TEXTURES
V1 = VERSIONS[1]
SIDE = V1.image_size  # the crops of v1 and the defect painter tests


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    start = time.perf_counter()
    root = ensure_synthetic_textures(tmp_path_factory.mktemp("data") / "synthetic-textures")
    print(f"\nsynthetic-textures generated in {time.perf_counter() - start:.2f} s")
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _photo_grey(category: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, category)()


# --- layout --------------------------------------------------------------------------------------

def test_layout_counts_and_masks_follow_mvtec_ad(dataset):
    assert sorted(p.name for p in dataset.iterdir()) == sorted([*INFO.categories, MARKER])
    for category in INFO.categories:
        base = dataset / category
        train = sorted((base / "train" / "good").iterdir())
        assert [p.name for p in train] == [f"{i:03d}.png" for i in range(INFO.n_train)]
        expected_test = {"good": INFO.n_test_good,
                         **{d: INFO.n_test_per_defect for d in DEFECT_TYPES}}
        assert sorted(p.name for p in (base / "test").iterdir()) == sorted(expected_test)
        assert sorted(p.name for p in (base / "ground_truth").iterdir()) == sorted(DEFECT_TYPES)
        assert sorted(p.name for p in base.iterdir()) == ["ground_truth", "test", "train"]
        for defect, count in expected_test.items():
            images = sorted((base / "test" / defect).iterdir())
            assert [p.name for p in images] == [f"{i:03d}.png" for i in range(count)]
            for path in images:
                image = np.asarray(Image.open(path))
                assert image.shape == (INFO.image_size, INFO.image_size, 3) and image.dtype == np.uint8
                if defect == "good":
                    continue
                mask_path = base / "ground_truth" / defect / f"{path.stem}_mask.png"
                mask = np.asarray(Image.open(mask_path))
                assert mask.shape == (INFO.image_size, INFO.image_size) and mask.dtype == np.uint8
                assert set(np.unique(mask)) == {0, 255}, f"{path}: mask must be 0/255 and non-empty"
        masks = sorted(p.name for p in (base / "ground_truth").rglob("*.png"))
        assert len(masks) == INFO.n_test_per_defect * len(DEFECT_TYPES)
    marker = json.loads((dataset / MARKER).read_text())
    assert marker["version"] == GENERATOR_VERSION
    assert marker["files"] == len(_files(dataset)) - 1


def test_files_hold_exactly_the_generated_rgb_images_and_masks(dataset):
    # Read back with Pillow (not OpenCV, which wrote them) to catch a swapped channel order.
    for category in INFO.categories:
        counters: dict[tuple[str, str], int] = {}
        for split, defect, image, mask, _ in generate_category(category):
            number = counters.get((split, defect), 0)
            counters[(split, defect)] = number + 1
            path = dataset / category / split / defect / f"{number:03d}.png"
            np.testing.assert_array_equal(np.asarray(Image.open(path)), image, err_msg=str(path))
            if mask is not None:
                written = np.asarray(Image.open(
                    dataset / category / "ground_truth" / defect / f"{number:03d}_mask.png"))
                np.testing.assert_array_equal(written == 255, mask)
                assert np.isin(written, (0, 255)).all()


def test_png_files_store_rgb_in_rgb_order():
    # Grey photographs carry colour only where a defect tinted them, so check the order directly.
    image = np.zeros((4, 5, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 200, 100, np.arange(5) * 10
    decoded = np.asarray(Image.open(io.BytesIO(synthetic._png(image))))
    np.testing.assert_array_equal(decoded, image)


def test_generating_twice_gives_byte_identical_files(dataset, tmp_path):
    start = time.perf_counter()
    again = ensure_synthetic_textures(tmp_path / "again")
    print(f"\nsecond generation {time.perf_counter() - start:.2f} s")
    first, second = _files(dataset), _files(again)
    assert list(first) == list(second)
    different = [name for name in first if first[name] != second[name]]
    assert not different, f"files differ between two generations: {different[:5]}"


def test_summary_names_the_counts_and_licence():
    text = INFO.summary()
    assert "gravel, grass, brick" in text and "CC0" in text
    assert f"{INFO.n_train} train" in text and f"{INFO.n_test} test" in text
    assert INFO.n_test == INFO.n_test_good + INFO.n_test_per_defect * len(DEFECT_TYPES)


# --- crops ---------------------------------------------------------------------------------------

def _locate(crop: np.ndarray, photo: np.ndarray, windows: dict[bytes, list[tuple[int, int]]]):
    """Every (row, column, k, flipped) where the un-turned/un-flipped crop equals a photo window.

    Tries the 8 symmetries of the square: the crop equals rot90(window or its mirror, k).
    """
    found = []
    for k in range(4):
        for flipped in (False, True):
            window = np.rot90(crop, -k)
            if flipped:
                window = window[:, ::-1]
            for y, x in windows.get(window[0].tobytes(), []):
                if np.array_equal(photo[y:y + SIDE, x:x + SIDE], window):
                    found.append((y, x, k, flipped))
    return found


@pytest.mark.parametrize("category", V1.categories)
def test_v1_train_and_test_crops_come_from_disjoint_rows_of_the_photograph(category):
    photo = _photo_grey(category)
    split_row = round(0.6 * photo.shape[0])
    windows: dict[bytes, list[tuple[int, int]]] = {}
    for y in range(photo.shape[0] - SIDE + 1):
        for x in range(photo.shape[1] - SIDE + 1):
            windows.setdefault(photo[y, x:x + SIDE].tobytes(), []).append((y, x))
    turns = set()
    for split, _, _, _, clean in generate_category(category, version=1):
        grey = clean[..., 0]
        assert (clean == grey[..., None]).all(), "clean crops are grey photographs in RGB"
        places = _locate(grey, photo, windows)
        assert places, f"{category} {split} crop not found in the photograph"
        for y, _, k, flipped in places:
            if split == "train":
                assert y + SIDE <= split_row
            else:
                assert y >= split_row
            # A vertical flip is a half turn of the mirror image, so "turned" means odd k.
            turns.add(k % 2)
    # Gravel and grass are turned by quarter turns; brick keeps its vertical courses.
    assert turns == ({0, 1} if category in ("gravel", "grass") else {0})


def _blocks_by_half(photo: np.ndarray, side: int) -> dict[bytes, set[str]]:
    """Every ``side × side`` window of the photograph's left and right halves -> halves it is in."""
    half = photo.shape[1] // 2
    found: dict[bytes, set[str]] = {}
    for name, part in (("left", photo[:, :half]), ("right", photo[:, half:])):
        windows = np.lib.stride_tricks.sliding_window_view(part, (side, side))
        for row in windows:
            for window in row:
                found.setdefault(window.tobytes(), set()).add(name)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("category", INFO.categories)
def test_v2_train_images_come_from_the_left_half_and_test_images_from_the_right(category):
    """Quilted images are made of blocks copied from one half of the photograph (turned and
    flipped as a whole): 8×8 blocks of a train image are found in the left half and never in the
    right one, and the reverse for test images (blocks across a seam are found nowhere)."""
    photo = _photo_grey(category)
    lookup = _blocks_by_half(photo, 8)
    images = list(generate_category(category))
    picked = [im for im in images if im[0] == "train"][:3] + [im for im in images if im[0] == "test"][:3]
    for split, _, _, _, clean in picked:
        assert clean.shape == (INFO.image_size, INFO.image_size, 3)
        grey = clean[..., 0]
        halves = {"left": 0, "right": 0}
        for k in range(4):
            for flipped in (False, True):
                view = np.rot90(grey, -k)
                view = view[:, ::-1] if flipped else view
                for y in range(0, view.shape[0] - 8, 24):
                    for x in range(0, view.shape[1] - 8, 24):
                        for half in lookup.get(np.ascontiguousarray(view[y:y + 8, x:x + 8]).tobytes(), ()):
                            halves[half] += 1
        own, other = ("left", "right") if split == "train" else ("right", "left")
        assert halves[own] > 100 and halves[other] == 0, (split, halves)


# --- defects -------------------------------------------------------------------------------------

def _clean_crops(n: int):
    """v1-sized crops (128 px, where pixel lengths of the painters are as written) with donors."""
    photos = [np.repeat(_photo_grey(c)[..., None], 3, axis=2) for c in INFO.categories]
    rng = np.random.default_rng(123)
    for i in range(n):
        photo = photos[i % 3]
        y, x = rng.integers(307, 512 - SIDE + 1), rng.integers(0, 512 - SIDE + 1)
        donors = [photo[307:]] + [p for p in photos if p is not photo]
        yield photo[y:y + SIDE, x:x + SIDE].copy(), donors


@pytest.mark.parametrize("kind", DEFECT_TYPES)
def test_mask_marks_exactly_the_painted_pixels(kind):
    for seed, (clean, donors) in enumerate(_clean_crops(30)):
        rng = np.random.default_rng(seed)
        size = seed / 29
        image, mask = paint_defect(kind, clean, rng, size, donors)
        assert image.dtype == np.uint8 and image.shape == clean.shape
        assert mask.dtype == bool and mask.shape == clean.shape[:2] and mask.any()
        change = np.abs(image.astype(int) - clean.astype(int)).max(axis=2)
        outside = (change > 0) & ~mask
        if kind == "stain":
            # Only the soft edge reaches outside: within STAIN_MAX_EDGE + 0.5 of the mask.
            distance = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2,
                                             cv2.DIST_MASK_PRECISE)
            assert (distance[outside] < STAIN_MAX_EDGE + 0.5).all()
            if outside.any():
                assert change[outside].mean() < change[mask].mean()
        else:
            assert not outside.any(), f"{kind} (seed {seed}) changed pixels outside its mask"
        # Nearly all mask pixels change, and visibly on average.
        assert (change[mask] > 0).mean() >= 0.9, f"{kind} seed {seed}"
        assert change[mask].mean() >= 20, f"{kind} seed {seed}"


@pytest.mark.parametrize("kind", DEFECT_TYPES)
def test_sizes_run_from_tiny_to_large(kind):
    n_pixels = SIDE * SIDE
    areas = {}
    for size in (0.0, 1.0):
        areas[size] = np.mean([
            paint_defect(kind, clean, np.random.default_rng(seed), size, donors)[1].sum()
            for seed, (clean, donors) in enumerate(_clean_crops(20))])
    assert areas[0.0] < 0.02 * n_pixels, "a size-0 defect covers at most a few dozen pixels"
    assert 0.02 * n_pixels < areas[1.0] < 0.25 * n_pixels, "a size-1 defect is large, not the image"
    assert areas[1.0] > 5 * areas[0.0]


def test_every_anomalous_test_image_has_a_mask_around_its_changes():
    for category in INFO.categories:
        seen = set()
        for split, defect, image, mask, clean in generate_category(category):
            if defect == "good":
                assert mask is None and image is clean
                continue
            seen.add(defect)
            assert mask.any()
            changed = (image != clean).any(axis=2)
            if defect != "stain":
                assert not (changed & ~mask).any()
            assert changed[mask].mean() >= 0.9
        assert seen == set(DEFECT_TYPES)


def test_painter_rejects_bad_input():
    clean = np.zeros((32, 32, 3), np.uint8)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown defect type 'dent'"):
        paint_defect("dent", clean, rng, 0.5, [clean])
    with pytest.raises(ValueError, match=r"size must lie in \[0, 1\]"):
        paint_defect("hole", clean, rng, 1.5, [clean])
    with pytest.raises(ValueError, match="uint8 H×W×3"):
        paint_defect("hole", clean[..., 0], rng, 0.5, [clean])
    with pytest.raises(ValueError, match="unknown synthetic-textures category 'wood'"):
        next(generate_category("wood"))


# --- caching and atomic writes -------------------------------------------------------------------

def test_default_root_follows_pixeval_data_then_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("PIXEVAL_DATA", str(tmp_path / "data"))
    assert default_root() == tmp_path / "data" / "synthetic-textures"
    monkeypatch.delenv("PIXEVAL_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / ".cache" / "pixeval" / "synthetic-textures"


def _counting_writes(monkeypatch) -> list[Path]:
    calls: list[Path] = []
    original = synthetic.write_dataset

    def counted(dest: Path, version: int) -> None:
        calls.append(dest)
        original(dest, version)

    monkeypatch.setattr(synthetic, "write_dataset", counted)
    return calls


# The caching tests generate the small v1 (1 s); the mechanism is the same for every version.
def test_cached_dataset_is_reused_and_force_or_a_new_version_regenerates(monkeypatch, tmp_path):
    monkeypatch.setenv("PIXEVAL_DATA", str(tmp_path))
    writes = _counting_writes(monkeypatch)
    root = ensure_synthetic_textures(version=1)
    assert root == tmp_path / "synthetic-textures-v1" and is_current(root, 1) and len(writes) == 1
    assert ensure_synthetic_textures(version=1) == root and len(writes) == 1
    before = _files(root)
    assert ensure_synthetic_textures(force=True, version=1) == root and len(writes) == 2
    assert _files(root) == before

    marker = root / MARKER
    older = {**json.loads(marker.read_text()), "version": 0}
    marker.write_text(json.dumps(older))
    assert not is_current(root, 1)
    ensure_synthetic_textures(version=1)
    assert len(writes) == 3 and is_current(root, 1) and _files(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic-textures-v1"], "no leftovers"
    assert default_root(GENERATOR_VERSION) == tmp_path / "synthetic-textures"


def test_failed_generation_leaves_no_dataset_and_keeps_an_old_one(monkeypatch, tmp_path):
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise RuntimeError("simulated failure mid-generation")
        return paint_defect(*args, **kwargs)

    monkeypatch.setattr(synthetic, "paint_defect", failing)
    root = tmp_path / "synthetic-textures"
    with pytest.raises(RuntimeError, match="simulated"):
        ensure_synthetic_textures(root, version=1)
    assert list(tmp_path.iterdir()) == [], "neither a partial dataset nor a staging folder"

    monkeypatch.setattr(synthetic, "paint_defect", paint_defect)
    ensure_synthetic_textures(root, version=1)
    marker = root / MARKER
    stale = {**json.loads(marker.read_text()), "version": 0}
    marker.write_text(json.dumps(stale))
    calls["n"] = 0
    monkeypatch.setattr(synthetic, "paint_defect", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        ensure_synthetic_textures(root, version=1)
    assert json.loads(marker.read_text()) == stale, "the old dataset stays in place, untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic-textures"]


def test_a_killed_generation_never_looks_complete(tmp_path):
    # The process dies abruptly (no cleanup runs) halfway through drawing defects.
    root = tmp_path / "synthetic-textures"
    script = f"""
import os
from pixeval.data import synthetic
real = synthetic.paint_defect
calls = []
def dying(*args, **kwargs):
    calls.append(1)
    if len(calls) == 40:
        os._exit(9)
    return real(*args, **kwargs)
synthetic.paint_defect = dying
synthetic.ensure_synthetic_textures({str(root)!r}, version=1)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 9, result.stderr
    assert not root.exists() and not is_current(root, 1)
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".synthetic-textures.tmp-")
    assert ensure_synthetic_textures(root, version=1) == root and is_current(root, 1)


def test_a_foreign_folder_is_never_overwritten(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="is not a synthetic-textures dataset"):
        ensure_synthetic_textures(root, force=True)
    assert [p.name for p in root.iterdir()] == ["thesis.tex"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert is_current(ensure_synthetic_textures(empty, version=1), 1)


def test_v1_stays_reachable_by_name_and_byte_identical(monkeypatch, tmp_path):
    """synthetic-textures-v1 opens the first version, whose files are those it always had (the
    marker's digest of every file, recorded when v1 was the default)."""
    from pixeval.data import open_dataset

    monkeypatch.setenv("PIXEVAL_DATA", str(tmp_path))
    dataset = open_dataset("synthetic-textures-v1")
    marker = json.loads((dataset.root / MARKER).read_text())
    assert dataset.name == "synthetic-textures-v1" and dataset.root == tmp_path / "synthetic-textures-v1"
    assert marker == {"name": "synthetic-textures-v1", "version": 1, "files": 375,
                      "sha256": "2347fadc7e1b15c1986fa581f8d890d1f2bb697f911d87aaafcf430df759a151"}
    with pytest.raises(ValueError, match="no synthetic-textures generator version 7"):
        ensure_synthetic_textures(tmp_path / "x", version=7)

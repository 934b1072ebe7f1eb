"""Dataset layouts: each test writes a small tree with Pillow, keeps its own record of what it wrote
(ids, labels, defects, mask pixels), and checks the loader returns exactly that."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixeval.data import DatasetError, open_dataset
from pixeval.data.folder import FolderDataset, split_normal
from pixeval.data.ksdd2 import KSDD2Dataset
from pixeval.data.manifest import ManifestDataset
from pixeval.data.mvtec import MVTEC_AD_CATEGORIES, MVTecDataset

SHAPE = (12, 16)


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def image(seed: int, grey: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, SHAPE if grey else (*SHAPE, 3), dtype=np.uint8)


def mask(seed: int) -> np.ndarray:
    m = np.zeros(SHAPE, bool)
    rng = np.random.default_rng(seed)
    y, x = rng.integers(0, SHAPE[0] - 3), rng.integers(0, SHAPE[1] - 3)
    m[y:y + 3, x:x + 3] = True
    return m


def check(samples, expected: dict) -> None:
    """``expected``: image id -> (label, defect, mask or None, image array)."""
    assert sorted(s.image_id for s in samples) == sorted(expected)
    for s in samples:
        label, defect, truth, pixels = expected[s.image_id]
        assert (s.label, s.defect) == (label, defect), s.image_id
        np.testing.assert_array_equal(s.load_mask(), truth if truth is not None else np.zeros(SHAPE, bool))
        loaded = s.load_image()
        np.testing.assert_array_equal(loaded, pixels if pixels.ndim == 3 else np.stack([pixels] * 3, axis=2))


def write_mvtec_category(folder: Path, defects=("crack", "hole"), normal="good", ext=".png",
                         mask_name="{stem}_mask.png", grey=False, n=2, seed=0) -> dict[str, dict]:
    """An MVTec-layout category; returns split -> expected samples."""
    expected: dict[str, dict] = {"train": {}, "test": {}}
    for i in range(n + 1):
        pixels = image(seed + i, grey)
        save(folder / "train" / normal / f"{i:03d}{ext}", pixels)
        expected["train"][f"{normal}/{i:03d}"] = (0, "good", None, pixels)
    for i in range(n):
        pixels = image(seed + 100 + i, grey)
        save(folder / "test" / normal / f"{i:03d}{ext}", pixels)
        expected["test"][f"{normal}/{i:03d}"] = (0, "good", None, pixels)
    for d, defect in enumerate(defects):
        for i in range(n):
            pixels, truth = image(seed + 200 + 10 * d + i, grey), mask(seed + 200 + 10 * d + i)
            save(folder / "test" / defect / f"{i:03d}{ext}", pixels)
            save(folder / "ground_truth" / defect / mask_name.format(stem=f"{i:03d}"), truth.astype(np.uint8) * 255)
            expected["test"][f"{defect}/{i:03d}"] = (1, defect, truth, pixels)
    return expected


# ----------------------------------------------------------------------------- MVTec, BTAD, MPDD

def test_mvtec_categories_samples_and_masks(tmp_path):
    expected = {c: write_mvtec_category(tmp_path / c, seed=k * 1000) for k, c in enumerate(["bottle", "wood"])}
    (tmp_path / "license.txt").write_text("not a category")
    dataset = open_dataset(f"mvtec:{tmp_path}")
    assert isinstance(dataset, MVTecDataset) and dataset.categories == ["bottle", "wood"]
    for name, splits in expected.items():
        data = dataset.load_category(name)
        assert data.name == name and data.validation == []
        check(data.train, splits["train"])
        check(data.test, splits["test"])
        assert all(s.mask_path is None for s in data.test if s.label == 0)


def test_all_fifteen_mvtec_categories_including_grey_ones(tmp_path):
    for k, name in enumerate(MVTEC_AD_CATEGORIES):
        grey = name in ("grid", "screw", "zipper")
        write_mvtec_category(tmp_path / name, defects=("broken",), n=1, seed=k, grey=grey)
    dataset = open_dataset(str(tmp_path))  # recognised as MVTec from its files
    assert dataset.layout == "mvtec" and dataset.categories == sorted(MVTEC_AD_CATEGORIES)
    for name in dataset.categories:
        data = dataset.load_category(name)
        assert [s.label for s in data.test] == [1, 0]
        assert data.test[1].load_image().shape == (*SHAPE, 3)


@pytest.mark.parametrize("mask_name", ["{stem}.png", "{stem}.bmp"])
def test_btad_layout_ok_ko_bmp(tmp_path, mask_name):
    """BTAD: train/ok, test/ok, test/ko, .bmp images; masks <stem>.png (01, 02) or .bmp (03)."""
    expected = write_mvtec_category(tmp_path / "03", defects=("ko",), normal="ok", ext=".bmp", mask_name=mask_name)
    data = open_dataset(f"mvtec:{tmp_path}").load_category("03")
    check(data.train, expected["train"])
    check(data.test, expected["test"])
    assert {s.image_id.split("/")[0] for s in data.test} == {"ok", "ko"}


def test_single_category_folder_and_validation_split(tmp_path):
    folder = tmp_path / "carpet"
    expected = write_mvtec_category(folder)
    val_pixels = image(77)
    save(folder / "validation" / "good" / "000.png", val_pixels)
    data = MVTecDataset(folder).load_category("carpet")
    check(data.test, expected["test"])
    check(data.validation, {"good/000": (0, "good", None, val_pixels)})


def test_masks_in_the_split_folder_win(tmp_path):
    """MVTec AD 2 keeps masks in <split>/ground_truth/<defect>/; they take precedence."""
    folder = tmp_path / "can"
    write_mvtec_category(folder, defects=("bad",), n=1)
    inner = mask(999)
    save(folder / "test" / "ground_truth" / "bad" / "000_mask.png", inner.astype(np.uint8) * 255)
    data = MVTecDataset(folder).load_category("can")
    assert [s.defect for s in data.test] == ["bad", "good"]  # ground_truth/ is not a defect type
    np.testing.assert_array_equal(data.test[0].load_mask(), inner)


def test_mvtec_errors_say_what_was_expected_and_found(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(f"mvtec:{tmp_path / 'nowhere'}")
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match=r"expected category folders holding train/good/.*found images/"):
        MVTecDataset(tmp_path)
    write_mvtec_category(tmp_path / "pill", defects=("crack",))
    (tmp_path / "pill" / "ground_truth" / "crack" / "001_mask.png").unlink()
    dataset = MVTecDataset(tmp_path)
    with pytest.raises(DatasetError, match=r"1 anomalous image\(s\) .* no mask, e.g. .*crack/001.png; expected "
                                           r".*pill/ground_truth/crack/001_mask.png"):
        dataset.load_category("pill")
    with pytest.raises(DatasetError, match="has no category 'screw'; its categories: pill"):
        dataset.load_category("screw")
    save(tmp_path / "pill" / "train" / "crack" / "000.png", image(1))
    with pytest.raises(DatasetError, match=r"train/good/ \(or train/ok/\); found crack/, good/"):
        dataset.load_category("pill")


# ----------------------------------------------------------------------------- KSDD2

def test_ksdd2_labels_from_ground_truth_and_normal_only_training(tmp_path):
    expected: dict[str, dict] = {"train": {}, "test": {}}
    for split, ids in [("train", range(10000, 10005)), ("test", range(20000, 20004))]:
        for k, i in enumerate(ids):
            pixels = image(i)
            truth = mask(i) if k % 2 else np.zeros(SHAPE, bool)
            save(tmp_path / split / f"{i}.png", pixels)
            save(tmp_path / split / f"{i}_GT.png", truth.astype(np.uint8) * 255)
            label = int(truth.any())
            if split == "test" or label == 0:
                expected[split][str(i)] = (label, "defect" if label else "good", truth, pixels)
    dataset = open_dataset(str(tmp_path))  # recognised as KSDD2 by its _GT files
    assert isinstance(dataset, KSDD2Dataset) and dataset.categories == ["ksdd2"]
    data = dataset.load_category("ksdd2")
    check(data.train, expected["train"])
    check(data.test, expected["test"])
    assert len(data.train) == 3 and sum(s.label for s in data.test) == 2 and data.validation == []


def test_ksdd2_errors(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetError, match=r"expected folders train/ and test/.*missing test/; found train/"):
        KSDD2Dataset(tmp_path)
    save(tmp_path / "test" / "1.png", image(1))
    with pytest.raises(DatasetError, match=r"train holds no images: expected <id>.png with <id>_GT.png"):
        KSDD2Dataset(tmp_path).load_category("ksdd2")
    save(tmp_path / "train" / "2.png", image(2))
    save(tmp_path / "train" / "2_GT.png", np.zeros(SHAPE, np.uint8))
    with pytest.raises(DatasetError, match=r"have no ground truth, e.g. .*1.png; expected .*1_GT.png"):
        KSDD2Dataset(tmp_path).load_category("ksdd2")


# ----------------------------------------------------------------------------- plain folder

def test_folder_split_defects_and_masks(tmp_path):
    normal = {f"n{i}": image(i) for i in range(10)}
    for name, pixels in normal.items():
        save(tmp_path / "good" / f"{name}.png", pixels)
    anomalous = {}
    for k, rel in enumerate(["scratch/a", "scratch/b", "dent/c", "loose"]):
        pixels, truth = image(500 + k), mask(500 + k)
        save(tmp_path / "abnormal" / f"{rel}.png", pixels)
        save(tmp_path / "masks" / f"{rel}_mask.png", truth.astype(np.uint8) * 255)
        defect = rel.rpartition("/")[0] or "anomalous"
        anomalous[f"abnormal/{rel}"] = (1, defect, truth, pixels)
    dataset = open_dataset(f"folder:{tmp_path}")
    assert isinstance(dataset, FolderDataset) and dataset.categories == [tmp_path.name]
    data = dataset.load_category(tmp_path.name)
    train_names = {s.image_path.stem for s in data.train}
    test_normal = {s.image_path.stem for s in data.test if s.label == 0}
    assert len(test_normal) == 2 and train_names | test_normal == set(normal) and not train_names & test_normal
    check(data.train, {f"good/{n}": (0, "good", None, normal[n]) for n in train_names})
    check(data.test, {**{f"good/{n}": (0, "good", None, normal[n]) for n in test_normal}, **anomalous})
    again = FolderDataset(tmp_path).load_category(tmp_path.name)
    assert [s.image_id for s in again.train] == [s.image_id for s in data.train]  # the split is fixed


def test_split_normal_is_a_seeded_partition():
    paths = [Path(f"{i:02d}.png") for i in range(23)]
    train, test = split_normal(paths)
    assert len(test) == round(0.2 * 23) and sorted(train + test) == paths
    assert split_normal(paths) == (train, test)
    assert test != paths[-len(test):]  # not simply the last files
    with pytest.raises(DatasetError, match="at least 2 normal images"):
        split_normal(paths[:1])


def test_folder_with_normal_test_and_several_categories(tmp_path):
    for cat in ["a", "b"]:
        for i in range(3):
            save(tmp_path / cat / "normal" / f"{i}.png", image(i))
        save(tmp_path / cat / "normal_test" / "t.png", image(9))
        save(tmp_path / cat / "ng" / "x.png", image(8))
        save(tmp_path / cat / "ground_truth" / "x.png", mask(8).astype(np.uint8) * 255)
    dataset = FolderDataset(tmp_path)
    assert dataset.categories == ["a", "b"]
    data = dataset.load_category("b")
    assert [s.image_id for s in data.train] == ["normal/0", "normal/1", "normal/2"]
    assert [(s.image_id, s.label, s.defect) for s in data.test] == [
        ("normal_test/t", 0, "good"), ("ng/x", 1, "anomalous")]


def test_folder_errors(tmp_path):
    (tmp_path / "normal").mkdir()
    with pytest.raises(DatasetError, match=r"expected normal/ and abnormal/ folders.*found normal/"):
        FolderDataset(tmp_path)
    for i in range(2):
        save(tmp_path / "normal" / f"{i}.png", image(i))
    save(tmp_path / "abnormal" / "crack" / "z.png", image(5))
    with pytest.raises(DatasetError, match=r"1 anomalous image\(s\) .* have no mask in .*masks: crack/z"):
        FolderDataset(tmp_path).load_category(tmp_path.name)


# ----------------------------------------------------------------------------- CSV manifest

def write_manifest(path: Path, rows: list[dict], columns=("image", "mask", "label", "split", "category", "defect")):
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_manifest_rows_become_samples(tmp_path):
    images = {n: save(tmp_path / "img" / f"{n}.png", image(k)) for k, n in enumerate(["t0", "t1", "v0", "g0", "a0"])}
    truth = mask(3)
    save(tmp_path / "img" / "a0_mask.png", truth.astype(np.uint8) * 255)
    outside = save(tmp_path.parent / f"{tmp_path.name}_outside.png", image(11))
    rows = [
        {"image": "img/t0.png", "mask": "", "label": "0", "split": "train", "category": "", "defect": ""},
        {"image": "img/t1.png", "mask": "", "label": "good", "split": "TRAIN", "category": "", "defect": ""},
        {"image": "img/v0.png", "mask": "", "label": "normal", "split": "val", "category": "", "defect": ""},
        {"image": "img/g0.png", "mask": "", "label": "0", "split": "test", "category": "", "defect": "good"},
        {"image": "img/a0.png", "mask": "img/a0_mask.png", "label": "anomalous", "split": "test",
         "category": "", "defect": "scuff"},
        {"image": str(outside), "mask": "", "label": "0", "split": "test", "category": "other", "defect": ""},
        {"image": "img/t0.png", "mask": "", "label": "0", "split": "train", "category": "other", "defect": ""},
    ]
    dataset = open_dataset(f"manifest:{write_manifest(tmp_path / 'list.csv', rows)}")
    assert isinstance(dataset, ManifestDataset) and dataset.name == "list"
    assert dataset.categories == ["list", "other"]
    data = dataset.load_category("list")
    assert [s.image_id for s in data.train] == ["img/t0", "img/t1"]
    assert [(s.image_id, s.label) for s in data.validation] == [("img/v0", 0)]
    assert [(s.image_id, s.label, s.defect) for s in data.test] == [("img/g0", 0, "good"), ("img/a0", 1, "scuff")]
    np.testing.assert_array_equal(data.test[1].load_mask(), truth)
    np.testing.assert_array_equal(data.test[1].load_image(), np.asarray(Image.open(images["a0"])))
    assert [s.image_id for s in dataset.load_category("other").test] == [outside.stem]


def test_manifest_reports_every_bad_row(tmp_path):
    good = save(tmp_path / "g.png", image(0))
    rows = [
        {"image": good.name, "mask": "", "label": "1", "split": "train"},
        {"image": good.name, "mask": "", "label": "maybe", "split": "test"},
        {"image": good.name, "mask": "", "label": "1", "split": "test"},
        {"image": "missing.png", "mask": "", "label": "0", "split": "test"},
        {"image": good.name, "mask": "", "label": "0", "split": "holdout"},
        {"image": good.name, "mask": "", "label": "0", "split": "test"},
        {"image": good.name, "mask": "", "label": "0", "split": "test"},
    ]
    path = write_manifest(tmp_path / "m.csv", rows, columns=("image", "mask", "label", "split"))
    with pytest.raises(DatasetError) as info:
        ManifestDataset(path)
    message = str(info.value)
    for expected in ["6 problem(s)", "line 2: an anomalous image in the train split",
                     "line 3: label 'maybe'", "line 4: anomalous image g.png has no mask",
                     "line 5: file(s) not found: ", "line 6: split 'holdout'", "line 8: image id 'g' repeats"]:
        assert expected in message
    write_manifest(tmp_path / "bad.csv", [], columns=("image", "label"))
    with pytest.raises(DatasetError, match="lacks column\\(s\\) mask, split"):
        ManifestDataset(tmp_path / "bad.csv")
    write_manifest(tmp_path / "only_test.csv", [rows[5]], columns=("image", "mask", "label", "split"))
    with pytest.raises(DatasetError, match="category 'only_test' has no train images"):
        ManifestDataset(tmp_path / "only_test.csv")


# ----------------------------------------------------------------------------- specs

def test_spec_errors(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset layout 'mvtex'.*mvtec, ksdd2, folder, manifest"):
        open_dataset(f"mvtex:{tmp_path}")
    with pytest.raises(DatasetError, match="names no path; write ksdd2:PATH"):
        open_dataset("ksdd2:")
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "nothing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="not a .csv manifest"):
        open_dataset(tmp_path / "notes.txt")
    with pytest.raises(DatasetError, match=r"in no layout pixeval knows \(found notes.txt\)"):
        open_dataset(tmp_path)
    assert issubclass(DatasetError, ValueError)


def test_synthetic_textures_is_read_with_the_mvtec_loader(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXEVAL_DATA", str(tmp_path))
    dataset = open_dataset("synthetic-textures")
    assert dataset.name == "synthetic-textures" and dataset.layout == "mvtec"
    assert dataset.root == tmp_path / "synthetic-textures"
    assert dataset.categories == ["brick", "grass", "gravel"]
    data = dataset.load_category("gravel")
    assert data.train and all(s.label == 0 for s in data.train)
    anomalous = [s for s in data.test if s.label == 1]
    assert anomalous and len(anomalous) < len(data.test)
    assert all(s.load_mask().any() for s in anomalous)
    assert all(s.mask_path is None for s in data.test if s.label == 0)

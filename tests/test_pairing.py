"""Pairing (pixeval.scoring): which map pairs with which mask, in each layout or from a pair list,
and the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixeval.errors import InputError
from pixeval.scoring import attach_image_scores, match, read_pair_list
from pixeval.scoring._pairing import list_maps

# Pairing reads no file contents, so empty files stand for images, masks and maps.


def touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


#: category -> defect -> image ids of a small MVTec-layout dataset
MVTEC = {"carpet": {"good": ["000", "001"], "color": ["000"], "hole": ["000", "001"]},
         "grid": {"good": ["000"], "bent": ["000"]}}


@pytest.fixture
def mvtec(tmp_path):
    root = tmp_path / "mvtec"
    for category, defects in MVTEC.items():
        touch(root / category / "train" / "good" / "000.png")
        for defect, ids in defects.items():
            for i in ids:
                touch(root / category / "test" / defect / f"{i}.png")
                if defect != "good":
                    touch(root / category / "ground_truth" / defect / f"{i}_mask.png")
    return root


def write_maps(preds: Path, categories=MVTEC, template="{category}/test/{defect}/{id}.tiff") -> list[Path]:
    paths = [preds / template.format(category=c, defect=d, id=i)
             for c, defects in categories.items() for d, ids in defects.items() for i in ids]
    touch(*paths)
    return paths


def test_mvtec_layout_is_detected_and_pairs_every_test_image(tmp_path, mvtec):
    write_maps(tmp_path / "preds")
    matching = match(tmp_path / "preds", mvtec)
    assert matching.layout == "mvtec" and matching.categories == ["carpet", "grid"]
    pairs = {p.name: p for p in matching.pairs}
    assert len(pairs) == 7
    hole = pairs["carpet/test/hole/001.tiff"]
    assert hole.mask_path == mvtec / "carpet/ground_truth/hole/001_mask.png"
    assert hole.image_path == mvtec / "carpet/test/hole/001.png"
    assert (hole.category, hole.defect) == ("carpet", "hole")
    good = pairs["grid/test/good/000.tiff"]
    assert good.mask_path is None and good.defect == "good"
    assert not matching.notes


@pytest.mark.parametrize("template", ["{category}/{defect}/{id}.npy", "{category}/test/{defect}/{id}.png"])
def test_mvtec_maps_may_leave_out_test_and_use_any_map_format(tmp_path, mvtec, template):
    write_maps(tmp_path / "preds", template=template)
    assert len(match(tmp_path / "preds", mvtec).pairs) == 7


def test_preds_named_after_one_category_and_partial_categories(tmp_path, mvtec):
    write_maps(tmp_path / "carpet", {"carpet": MVTEC["carpet"]}, "test/{defect}/{id}.tiff")
    matching = match(tmp_path / "carpet", mvtec)
    assert matching.categories == ["carpet"] and len(matching.pairs) == 5
    assert any("1 of the dataset's 2 categories" in note and "grid" in note for note in matching.notes)


def test_mvtec_test_image_without_map_is_an_error_unless_allowed(tmp_path, mvtec):
    paths = write_maps(tmp_path / "preds")
    paths[0].unlink()  # carpet/test/good/000
    with pytest.raises(InputError, match=r"1 test image\(s\) have no score map: .*carpet/test/good/000\.png"
                                         r".*--allow-missing"):
        match(tmp_path / "preds", mvtec)
    matching = match(tmp_path / "preds", mvtec, allow_missing=True)
    assert len(matching.pairs) == 6
    assert any(note.startswith("--allow-missing: skipped 1 test image") for note in matching.notes)


def test_mvtec_map_of_no_test_image_is_an_error(tmp_path, mvtec):
    write_maps(tmp_path / "preds")
    touch(tmp_path / "preds/carpet/test/hole/007.tiff", tmp_path / "preds/carpet/test/cut/000.tiff")
    with pytest.raises(InputError, match=r"2 score map\(s\) match no test image.*hole/007\.tiff"):
        match(tmp_path / "preds", mvtec)


def test_mvtec_map_outside_category_folders_is_an_error(tmp_path, mvtec):
    write_maps(tmp_path / "preds")
    touch(tmp_path / "preds/stray.tiff")
    with pytest.raises(InputError, match=r"1 score map\(s\) are in no category folder.*stray\.tiff"):
        match(tmp_path / "preds", mvtec)


def test_two_maps_for_one_image_is_an_error_resolved_by_map_suffix(tmp_path, mvtec):
    write_maps(tmp_path / "preds")
    touch(tmp_path / "preds/grid/test/bent/000.png")
    with pytest.raises(InputError, match=r"two or more score maps.*bent/000\.(png|tiff).*--map-suffix"):
        match(tmp_path / "preds", mvtec)
    assert len(match(tmp_path / "preds", mvtec, map_suffix=".tiff").pairs) == 7


def test_anomalous_test_image_without_mask_is_reported(tmp_path, mvtec):
    write_maps(tmp_path / "preds")
    (mvtec / "grid/ground_truth/bent/000_mask.png").unlink()
    with pytest.raises(InputError, match=r"ground truth of category 'grid'.*no mask.*bent/000\.png"):
        match(tmp_path / "preds", mvtec)


def test_ksdd2_root_is_detected(tmp_path):
    root = tmp_path / "ksdd2"
    touch(root / "train/10000.png", root / "train/10000_GT.png")
    ids = ["20000", "20001", "20002"]
    touch(*(root / "test" / f"{i}{s}.png" for i in ids for s in ("", "_GT")))
    touch(*(tmp_path / "preds" / f"{i}.tiff" for i in ids))
    # KSDD2 labels images by reading their ground truth, so these must be real images.
    import cv2
    import numpy as np
    for i, value in zip(ids, (0, 255, 0)):
        for name in (f"{i}.png", f"{i}_GT.png"):
            cv2.imwrite(str(root / "test" / name), np.full((4, 4), value, np.uint8))
    for name in ("10000.png", "10000_GT.png"):
        cv2.imwrite(str(root / "train" / name), np.zeros((4, 4), np.uint8))
    matching = match(tmp_path / "preds", root)
    assert matching.layout == "ksdd2"
    assert {p.name: p.mask_path.name for p in matching.pairs} == {f"{i}.tiff": f"{i}_GT.png" for i in ids}


def test_mask_folder_pairs_by_name_with_mask_or_gt_suffix(tmp_path):
    masks = tmp_path / "scans"
    touch(masks / "a_mask.png", masks / "b_GT.png", masks / "c.png")
    touch(*(tmp_path / "preds" / n for n in ("scratch/a.tiff", "b.npy", "c.tiff", "good/d.tiff")))
    matching = match(tmp_path / "preds", masks)
    assert matching.layout == "masks"
    pairs = {p.name: p for p in matching.pairs}
    assert {n: (p.mask_path.name if p.mask_path else None) for n, p in pairs.items()} == {
        "scratch/a.tiff": "a_mask.png", "b.npy": "b_GT.png", "c.tiff": "c.png", "good/d.tiff": None}
    assert pairs["scratch/a.tiff"].defect == "scratch" and pairs["b.npy"].defect is None
    assert pairs["good/d.tiff"].category == "scans"  # the folder's name


def test_mask_folder_mirroring_a_tree_pairs_by_the_end_of_the_path(tmp_path):
    gt = tmp_path / "carpet" / "ground_truth"
    touch(gt / "crack/000_mask.png", gt / "hole/000_mask.png")
    touch(*(tmp_path / "preds/carpet/test" / n for n in ("crack/000.tiff", "hole/000.tiff", "good/000.tiff")))
    matching = match(tmp_path / "preds", gt)
    pairs = {p.name: p for p in matching.pairs}
    assert pairs["carpet/test/crack/000.tiff"].mask_path == gt / "crack/000_mask.png"
    assert pairs["carpet/test/hole/000.tiff"].mask_path == gt / "hole/000_mask.png"
    assert pairs["carpet/test/good/000.tiff"].mask_path is None
    assert {p.category for p in matching.pairs} == {"carpet"}  # named after the parent of ground_truth/


def test_mask_folder_map_without_mask_outside_good_is_an_error_unless_allowed(tmp_path):
    touch(tmp_path / "masks/a.png", tmp_path / "preds/a.tiff", tmp_path / "preds/scratch/b.tiff")
    with pytest.raises(InputError, match=r"1 score map\(s\) have no mask.*scratch/b\.tiff.*good/.*--allow-missing"):
        match(tmp_path / "preds", tmp_path / "masks")
    matching = match(tmp_path / "preds", tmp_path / "masks", allow_missing=True)
    assert [p.name for p in matching.pairs] == ["a.tiff"]
    assert any("skipped 1 score map(s) have no mask" in note for note in matching.notes)


def test_mask_folder_mask_without_map_is_an_error_unless_allowed(tmp_path):
    touch(tmp_path / "masks/a.png", tmp_path / "masks/b_mask.png", tmp_path / "preds/a.tiff")
    with pytest.raises(InputError, match=r"1 mask\(s\) have no score map.*b_mask\.png"):
        match(tmp_path / "preds", tmp_path / "masks")
    assert len(match(tmp_path / "preds", tmp_path / "masks", allow_missing=True).pairs) == 1


def test_mask_folder_beside_its_images_pairs_with_the_suffixed_masks(tmp_path):
    split = tmp_path / "KSDD2" / "test"  # KSDD2's split folder: <id>.png images beside <id>_GT.png masks
    touch(split / "20000.png", split / "20000_GT.png", split / "20001.png", split / "20001_GT.png")
    touch(tmp_path / "preds/20000.tiff", tmp_path / "preds/20001.tiff")
    matching = match(tmp_path / "preds", split)
    assert matching.layout == "masks" and matching.categories == ["KSDD2"]
    assert sorted(p.mask_path.name for p in matching.pairs) == ["20000_GT.png", "20001_GT.png"]


def test_mask_folder_two_masks_or_two_maps_for_one_image_are_errors(tmp_path):
    touch(tmp_path / "masks/a_GT.png", tmp_path / "masks/a_mask.png", tmp_path / "preds/a.tiff")
    with pytest.raises(InputError, match=r"two or more masks.*a_(mask|GT)\.png"):
        match(tmp_path / "preds", tmp_path / "masks")
    (tmp_path / "masks/a_mask.png").unlink()
    touch(tmp_path / "masks/a.bmp", tmp_path / "masks/a.png")
    (tmp_path / "masks/a_GT.png").unlink()
    with pytest.raises(InputError, match=r"two or more masks.*a\.(bmp|png)"):
        match(tmp_path / "preds", tmp_path / "masks")
    (tmp_path / "masks/a.bmp").unlink()
    touch(tmp_path / "preds/x/a.tiff")
    with pytest.raises(InputError, match=r"two or more score maps.*a\.tiff"):
        match(tmp_path / "preds", tmp_path / "masks")


def test_empty_folder_wrong_path_and_forced_layout_are_errors(tmp_path, mvtec):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no score maps .* under .*empty"):
        match(tmp_path / "empty", mvtec)
    with pytest.raises(InputError, match=r"PREDS .*nowhere is not a folder \(it does not exist\)"):
        match(tmp_path / "nowhere", mvtec)
    write_maps(tmp_path / "preds")
    with pytest.raises(InputError, match=r"not a ksdd2 dataset"):
        match(tmp_path / "preds", mvtec, layout="ksdd2")
    assert match(tmp_path / "preds", mvtec, layout="mvtec").layout == "mvtec"
    with pytest.raises(InputError, match=r"no mask images"):
        match(tmp_path / "preds", tmp_path / "empty")


def test_list_maps_skips_hidden_and_other_files(tmp_path):
    touch(*(tmp_path / n for n in ("a.tiff", "b.TIF", ".hidden/c.tiff", "d.json", "e/f.npz")))
    assert [p.relative_to(tmp_path).as_posix() for p in list_maps(tmp_path)] == ["a.tiff", "b.TIF", "e/f.npz"]


def write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_pair_list_pairs_relative_paths_with_optional_columns(tmp_path):
    touch(*(tmp_path / "run" / n for n in ("m/a.tiff", "m/b.tiff", "gt/a.png")))
    pair_list = write_csv(tmp_path / "run/pairs.csv",
                          "Map,mask,image_score,defect\nm/a.tiff,gt/a.png,0.9,cut\nm/b.tiff,,0.1,\n")
    matching = read_pair_list(pair_list)
    a, b = matching.pairs
    assert (a.map_path, a.mask_path, a.image_score, a.category, a.defect) == (
        tmp_path / "run/m/a.tiff", tmp_path / "run/gt/a.png", 0.9, "pairs", "cut")
    assert (b.mask_path, b.image_score, b.defect) == (None, 0.1, None)
    assert matching.layout == "pairs"


@pytest.mark.parametrize("text, message", [
    ("mask\na.png\n", r"columns mask; expected map"),
    ("map,colour\na.tiff\n", r"unknown: colour"),
    ("map\n", r"lists no maps"),
    ("map,mask\na.tiff,nowhere.png\n", r"1 file\(s\) .* do not exist: .*nowhere\.png"),
    ("map,image_score\na.tiff,high\n", r"not numbers: line 2: 'high'"),
    ("map\na.tiff\na.tiff\n", r"score map\(s\) on more than one row"),
    ("map,mask\na.tiff,a.png\nb.tiff,a.png\n", r"mask\(s\) on more than one row"),
])
def test_pair_list_refusals(tmp_path, text, message):
    touch(tmp_path / "a.tiff", tmp_path / "b.tiff", tmp_path / "a.png")
    with pytest.raises(InputError, match=message):
        read_pair_list(write_csv(tmp_path / "pairs.csv", text))


def test_image_scores_attach_by_map_name_and_must_cover_every_map(tmp_path):
    touch(tmp_path / "masks/a.png", tmp_path / "preds/a.tiff", tmp_path / "preds/good/b.tiff")
    matching = match(tmp_path / "preds", tmp_path / "masks")
    scored = attach_image_scores(matching, write_csv(tmp_path / "s.csv", "map,image_score\na.tiff,2\ngood/b.tiff,-1\n"))
    assert {p.name: p.image_score for p in scored.pairs} == {"a.tiff": 2.0, "good/b.tiff": -1.0}
    with pytest.raises(InputError, match=r"no score for good/b\.tiff"):
        attach_image_scores(matching, write_csv(tmp_path / "s.csv", "map,image_score\na.tiff,2\n"))
    with pytest.raises(InputError, match=r"no map c\.tiff"):
        attach_image_scores(matching, write_csv(tmp_path / "s.csv",
                                                "map,image_score\na.tiff,2\ngood/b.tiff,1\nc.tiff,0\n"))
    with pytest.raises(InputError, match=r"expected map .* and image_score"):
        attach_image_scores(matching, write_csv(tmp_path / "s.csv", "image,score\na.tiff,2\n"))

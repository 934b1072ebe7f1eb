"""``pixeval score`` end to end: metrics against scikit-learn and a slow MVTec-style AUPRO written
here, every output format and option, and every kind of bad input (exit code 2, no traceback);
and the library under it (pixeval.scoring), which the command only wraps."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile
from click.testing import CliRunner
from scipy import ndimage
from sklearn.metrics import average_precision_score, f1_score, precision_recall_curve, roc_auc_score

from pixeval import InputError, score_folder
from pixeval.cli import main
from pixeval.metrics import aupimo, boundary_metrics

#: category -> defect -> number of test images of the set built on disk
LAYOUT = {"carpet": {"good": 3, "crack": 2, "hole": 2}, "grid": {"good": 2, "bent": 3}}
SHAPE = (24, 32)


def build_mvtec_set(root: Path, seed: int = 0, layout=LAYOUT, shape=SHAPE) -> dict:
    """An MVTec-layout dataset under ``root/data`` and float32 TIFF maps under ``root/preds``.

    Masks hold one or two rectangles (sometimes touching diagonally, to exercise 8-connectivity);
    scores are noise raised on the defects, rounded to 1/64 so that many pixels tie. Returns the
    arrays per category: {category: [(map name, defect, scores, mask), ...]}."""
    rng = np.random.default_rng(seed)
    truth = {}
    for category, defects in layout.items():
        folder = root / "data" / category
        (folder / "train" / "good").mkdir(parents=True)
        cv2.imwrite(str(folder / "train" / "good" / "000.png"), np.zeros((*shape, 3), np.uint8))
        truth[category] = []
        for defect, count in defects.items():
            for i in range(count):
                name = f"{category}/test/{defect}/{i:03d}.tiff"
                image = folder / "test" / defect / f"{i:03d}.png"
                image.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(image), np.zeros((*shape, 3), np.uint8))
                mask = np.zeros(shape, bool)
                if defect != "good":
                    for _ in range(rng.integers(1, 3)):
                        y, x = rng.integers(0, shape[0] - 6), rng.integers(0, shape[1] - 8)
                        mask[y:y + rng.integers(2, 6), x:x + rng.integers(2, 8)] = True
                    mask[0, 0] = mask[1, 1] = True  # two diagonal pixels: one region under 8-connectivity
                    gt = folder / "ground_truth" / defect / f"{i:03d}_mask.png"
                    gt.parent.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(gt), mask.astype(np.uint8) * 255)
                scores = np.round((rng.random(shape) + 0.8 * mask * rng.random(shape)) * 64) / 64
                scores = scores.astype(np.float32)
                (root / "preds" / name).parent.mkdir(parents=True, exist_ok=True)
                tifffile.imwrite(root / "preds" / name, scores)
                truth[category].append((name, defect, scores, mask))
    return truth


def slow_aupro(maps, masks, fpr_limit=0.3):
    """The MVTec AD AUPRO, written for clarity: at every distinct score t, FPR(t) is the share of
    normal pixels scoring >= t and PRO(t) the mean over all 8-connected regions of the share of the
    region's pixels scoring >= t; the curve from (0, 0) is integrated by trapezoids up to the FPR
    limit (PRO interpolated linearly there) and divided by the limit."""
    regions = []
    for score_map, mask in zip(maps, masks):
        labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
        regions += [score_map[labels == k] for k in range(1, n + 1)]
    normal = np.concatenate([s[~m] for s, m in zip(maps, masks)])
    points = [(0.0, 0.0)]
    for t in np.unique(np.concatenate([s.ravel() for s in maps]))[::-1]:
        points.append((np.mean(normal >= t), np.mean([np.mean(r >= t) for r in regions])))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 >= fpr_limit:
            break
        if x1 > fpr_limit:
            y1 = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
            x1 = fpr_limit
        area += (x1 - x0) * (y0 + y1) / 2
    return area / fpr_limit


def f1_max_reference(scores, labels):
    precision, recall, _ = precision_recall_curve(labels, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2 * precision * recall / (precision + recall)
    return np.nanmax(f1)


def reference_metrics(items, fpr_limit=0.3):
    """Every metric of the table, from scikit-learn and :func:`slow_aupro`."""
    maps, masks = [i[2] for i in items], [i[3] for i in items]
    scores = np.concatenate([m.ravel() for m in maps]).astype(np.float64)
    labels = np.concatenate([m.ravel() for m in masks])
    image_scores = np.array([m.max() for m in maps], np.float64)
    image_labels = np.array([m.any() for m in masks])
    return {"pixel_auroc": roc_auc_score(labels, scores), "pixel_aupr": average_precision_score(labels, scores),
            "pixel_f1_max": f1_max_reference(scores, labels), "pixel_aupro": slow_aupro(maps, masks, fpr_limit),
            "image_auroc": roc_auc_score(image_labels, image_scores),
            "image_aupr": average_precision_score(image_labels, image_scores),
            "image_f1_max": f1_max_reference(image_scores, image_labels),
            "n_images": len(maps), "n_anomalous_images": int(image_labels.sum()),
            "n_pixels": labels.size, "n_anomalous_pixels": int(labels.sum())}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("score")
    return root, build_mvtec_set(root)


def run(*args, ok=True):
    result = CliRunner().invoke(main, ["score", *map(str, args)])
    assert "Traceback" not in result.output, result.output
    if ok:
        assert result.exit_code == 0, result.output
    return result


def run_json(root, *args):
    return json.loads(run(root / "preds", root / "data", "--format", "json", "-q", *args).stdout)


def test_reproduces_sklearn_and_slow_aupro_per_category_and_their_mean(dataset):
    root, truth = dataset
    document = run_json(root)
    assert document["layout"] == "mvtec"
    rows = {row["category"]: row for row in document["rows"]}
    assert list(rows) == ["carpet", "grid"]
    references = {c: reference_metrics(items) for c, items in truth.items()}
    for category, expected in references.items():
        for name, value in expected.items():
            assert rows[category][name] == pytest.approx(value, abs=1e-9), (category, name)
    mean = document["table"][-1]
    assert mean["category"] == "mean"
    assert mean["P-AUPR"] == pytest.approx(np.mean([r["pixel_aupr"] for r in references.values()]), abs=1e-12)
    assert mean["P-AUPRO@0.3"] == pytest.approx(np.mean([r["pixel_aupro"] for r in references.values()]), abs=1e-12)
    regions = sum(ndimage.label(m, structure=np.ones((3, 3)))[1] for items in truth.values() for *_, m in items)
    assert document["summary"] == {"images": 12, "anomalous_images": 7, "regions": regions,
                                   "pixels": 12 * SHAPE[0] * SHAPE[1],
                                   "anomalous_pixels": sum(int(i[3].sum()) for v in truth.values() for i in v)}


def test_fpr_limit_and_threshold_follow_their_definitions(dataset):
    root, truth = dataset
    document = run_json(root, "--fpr-limit", "0.1", "--threshold", "0.75")
    for row in document["rows"]:
        items = truth[row["category"]]
        assert row["pixel_aupro"] == pytest.approx(slow_aupro([i[2] for i in items], [i[3] for i in items], 0.1),
                                                   abs=1e-9)
        scores = np.concatenate([i[2].ravel() for i in items])
        labels = np.concatenate([i[3].ravel() for i in items])
        predicted = scores >= 0.75
        tp = np.sum(predicted & labels)
        assert row["pixel_precision_at_threshold"] == pytest.approx(tp / predicted.sum(), abs=1e-12)
        assert row["pixel_recall_at_threshold"] == pytest.approx(tp / labels.sum(), abs=1e-12)
        assert row["pixel_f1_at_threshold"] == pytest.approx(2 * tp / (predicted.sum() + labels.sum()), abs=1e-12)
    assert "P-F1@0.75" in document["table"][0] and "P-AUPRO@0.1" in document["table"][0]


def test_by_defect_scores_each_defect_with_its_categorys_good_images(dataset):
    root, truth = dataset
    document = run_json(root, "--by", "defect")
    assert [(r["category"], r["defect"]) for r in document["rows"]] == [
        ("carpet", "crack"), ("carpet", "hole"), ("grid", "bent")]
    for row in document["rows"]:
        items = [i for i in truth[row["category"]] if i[1] in (row["defect"], "good")]
        for name, value in reference_metrics(items).items():
            assert row[name] == pytest.approx(value, abs=1e-9), (row["defect"], name)


def test_image_scores_from_csv_replace_map_maxima(dataset, tmp_path):
    root, truth = dataset
    rng = np.random.default_rng(5)
    given = {name: float(rng.random()) for items in truth.values() for name, *_ in items}
    csv = tmp_path / "scores.csv"
    pd.DataFrame({"map": list(given), "image_score": list(given.values())}).to_csv(csv, index=False)
    document = run_json(root, "--image-scores", csv)
    for row in document["rows"]:
        items = truth[row["category"]]
        labels = [i[3].any() for i in items]
        assert row["image_auroc"] == pytest.approx(roc_auc_score(labels, [given[i[0]] for i in items]), abs=1e-12)
    assert any("image scores from" in note for note in document["notes"])


def test_bootstrap_intervals_hold_the_value_and_are_reproducible(dataset):
    root, _ = dataset
    first = run_json(root, "--bootstrap", "50", "--seed", "3")
    assert first == run_json(root, "--bootstrap", "50", "--seed", "3")
    for row in first["rows"]:
        assert 0 <= row["pixel_aupr_ci_low"] <= row["pixel_aupr_ci_high"] <= 1
        assert row["pixel_aupr_ci_low"] < row["pixel_aupr_ci_high"]  # resampling images moves AP
    table = run(root / "preds", root / "data", "--bootstrap", "50", "-q").stdout
    assert "[" in table and "95% bootstrap intervals" in table


def test_formats_agree_and_output_goes_to_file(dataset, tmp_path):
    root, _ = dataset
    rows = run_json(root)["table"]
    csv = pd.read_csv(io.StringIO(run(root / "preds", root / "data", "--format", "csv", "-q").stdout))
    assert list(csv["category"]) == ["carpet", "grid", "mean"]
    np.testing.assert_array_equal(csv["P-AUPR"], [r["P-AUPR"] for r in rows])  # full precision
    markdown = run(root / "preds", root / "data", "--format", "markdown", "-q").stdout
    assert f"| {rows[0]['P-AUPR']:.4f} |" in markdown and "P-F1max: best pixel F1 over all thresholds" in markdown
    latex = run(root / "preds", root / "data", "--format", "latex", "-q").stdout
    assert r"\begin{tabular}" in latex and "carpet" in latex
    result = run(root / "preds", root / "data", "--output", tmp_path / "out" / "t.txt")
    assert result.stdout == "" and "carpet" in (tmp_path / "out" / "t.txt").read_text()
    assert "layout: mvtec" in result.stderr and "read 12 images (7 anomalous" in result.stderr


def test_per_image_csv_follows_its_definitions(dataset, tmp_path):
    root, truth = dataset
    out = tmp_path / "images.csv"
    run(root / "preds", root / "data", "--per-image", out, "--threshold", "0.9", "-q")
    table = pd.read_csv(out).set_index("map")
    assert len(table) == 12
    for name, defect, scores, mask in truth["carpet"]:
        row = table.loc[name]
        assert row["image_score"] == pytest.approx(scores.max()) and row["defect"] == defect
        assert row["false_positive_fraction"] == pytest.approx(np.mean(scores[~mask] >= 0.9), abs=1e-12)
        if mask.any():
            assert row["pixel_ap"] == pytest.approx(average_precision_score(mask.ravel(), scores.ravel()), abs=1e-9)
            assert row["pixel_f1_max"] == pytest.approx(f1_max_reference(scores.ravel(), mask.ravel()), abs=1e-9)
        else:
            assert np.isnan(row["pixel_ap"])


def test_per_image_threshold_defaults_to_the_categorys_f1_max_threshold(dataset, tmp_path):
    root, _ = dataset
    out = tmp_path / "images.csv"
    document = json.loads(run(root / "preds", root / "data", "--per-image", out, "--by", "defect",
                              "--format", "json", "-q").stdout)
    plain = {row["category"]: row["pixel_f1_threshold"] for row in run_json(root)["rows"]}
    table = pd.read_csv(out)
    assert len(table) == 12 and len(document["rows"]) == 3
    for category, threshold in plain.items():
        assert set(table.loc[table["category"] == category, "threshold"]) == {threshold}


def copy_set(root: Path, tmp_path: Path) -> Path:
    import shutil
    shutil.copytree(root, tmp_path / "set")
    return tmp_path / "set"


def test_maps_of_another_size_are_an_error_unless_resized(dataset, tmp_path):
    root, truth = dataset
    small = copy_set(root, tmp_path)
    for items in truth.values():
        for name, _, scores, _ in items:
            tifffile.imwrite(small / "preds" / name, cv2.resize(scores, (16, 12), interpolation=cv2.INTER_AREA))
    result = run(small / "preds", small / "data", ok=False)
    assert result.exit_code == 2
    assert "7 of 7 score maps cannot be scored" in result.output and "is 16×12 but its" in result.output
    assert "--resize" in result.output
    document = json.loads(run(small / "preds", small / "data", "--resize", "--format", "json", "-q").stdout)
    assert any("resized bilinearly" in note for note in document["notes"])
    items = truth["grid"]
    upsampled = [cv2.resize(cv2.resize(s, (16, 12), interpolation=cv2.INTER_AREA), SHAPE[::-1],
                            interpolation=cv2.INTER_LINEAR) for _, _, s, _ in items]
    labels = np.concatenate([i[3].ravel() for i in items])
    assert document["rows"][1]["pixel_auroc"] == pytest.approx(
        roc_auc_score(labels, np.concatenate([u.ravel() for u in upsampled])), abs=1e-9)


def test_png_maps_are_scored_and_flagged_quantised(tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    rng = np.random.default_rng(4)
    for i in range(3):
        mask = np.zeros((10, 10), np.uint8)
        mask[i:i + 3, 2:6] = 255
        cv2.imwrite(str(masks / f"{i}_GT.png"), mask)
        (tmp_path / "preds").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / "preds" / f"{i}.png"), (rng.random((10, 10)) * 100 + (mask > 0) * 100).astype(np.uint8))
    result = run(tmp_path / "preds", masks)
    assert "layout: masks" in result.stderr and "quantised" in result.stdout and "uint8" in result.stdout


def test_pair_list_run(dataset, tmp_path):
    root, truth = dataset
    rows = [{"map": str(root / "preds" / name),
             "mask": str(root / "data" / name.replace("/test/", "/ground_truth/").replace(".tiff", "_mask.png"))
             if defect != "good" else "", "category": name.split("/")[0]}
            for items in truth.values() for name, defect, *_ in items]
    pd.DataFrame(rows).to_csv(tmp_path / "pairs.csv", index=False)
    document = json.loads(run("--pairs", tmp_path / "pairs.csv", "--format", "json", "-q").stdout)
    assert document["layout"] == "pairs"
    reference = reference_metrics(truth["grid"])
    assert document["rows"][1]["pixel_aupr"] == pytest.approx(reference["pixel_aupr"], abs=1e-9)


def test_score_does_not_import_torch(dataset):
    root, _ = dataset
    code = ("import sys\nfrom pixeval.cli import main\n"
            f"try:\n    main(['score', {str(root / 'preds')!r}, {str(root / 'data')!r}, '-q'])\n"
            "except SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
            "print('torch imported:', 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "torch imported: False" in done.stdout and "carpet" in done.stdout


# ---- the library: score_folder is the command as a function ------------------------------------

def test_score_folder_is_the_command_as_a_function(dataset):
    root, truth = dataset
    result = score_folder(root / "preds", root / "data", by="defect", threshold=0.75, per_image=True)
    document = run_json(root, "--by", "defect", "--threshold", "0.75")
    assert [row.report.to_dict() for row in result.rows] == [
        {k: v for k, v in row.items() if k not in ("category", "defect")} for row in document["rows"]]
    assert json.loads(result.render("json"))["table"] == document["table"]
    table = result.table()
    assert list(table["defect"]) == ["crack", "hole", "bent", ""] and table.columns[0] == "category"
    assert len(result.per_image) == sum(len(items) for items in truth.values())
    assert result.render("csv") == run(root / "preds", root / "data", "--by", "defect", "--threshold", "0.75",
                                       "--format", "csv", "-q").stdout


def test_by_size_bins_regions_by_area_and_ranks_each_bin_against_all_normal_pixels(dataset):
    root, truth = dataset
    edges, t = (0.01, 0.03), 0.75
    document = run_json(root, "--by", "size", "--size-edges", "0.01,0.03", "--threshold", str(t))
    bins = {(b["category"], b["label"]): b for b in document["size_bins"]}
    labels = ["< 1%", "1-3%", ">= 3%"]
    for category, items in truth.items():
        normal = np.concatenate([scores[~mask] for *_, scores, mask in items])
        per_bin = {label: ([], []) for label in labels}  # anomalous scores, overlap of each region
        for *_, scores, mask in items:
            regions, n = ndimage.label(mask, structure=np.ones((3, 3)))
            for r in range(1, n + 1):
                inside = scores[regions == r]
                label = labels[int(np.searchsorted(edges, inside.size / mask.size, side="right"))]
                per_bin[label][0].append(inside)
                per_bin[label][1].append(np.mean(inside >= t))
        for label, (anomalous, overlaps) in per_bin.items():
            row = bins[(category, label)]
            assert row["n_regions"] == len(overlaps)
            if not overlaps:
                assert row["pixel_aupr"] is None  # NaN in JSON, with a note
                continue
            positives = np.concatenate(anomalous)
            y = np.r_[np.ones(positives.size), np.zeros(normal.size)]
            assert row["pixel_aupr"] == pytest.approx(average_precision_score(y, np.r_[positives, normal]), abs=1e-12)
            assert row["region_recall"] == pytest.approx(np.mean(overlaps), abs=1e-12)
            assert row["region_detection_rate"] == pytest.approx(np.mean(np.array(overlaps) >= 0.5), abs=1e-12)
    table = document["table"]
    assert [(r["category"], r["size"]) for r in table] == [(c, b) for c in ("carpet", "grid", "mean") for b in labels]
    assert table[-1]["regions"] == sum(bins[(c, labels[-1])]["n_regions"] for c in truth)


def test_extended_adds_aupimo_and_boundary_columns_and_image_f1_at_the_threshold(dataset):
    root, truth = dataset
    document = run_json(root, "--extended", "--threshold", "0.75")
    assert {"AUPIMO", "B-F1", "B-IoU", "B-F1@0.75", "B-IoU@0.75", "I-F1@0.75"} <= set(document["table"][0])
    assert "AUPIMO" not in run_json(root)["table"][0]
    for row in document["rows"]:
        items = truth[row["category"]]
        maps, masks = [i[2] for i in items], [i[3] for i in items]
        assert row["pixel_aupimo"] is None  # 5 small normal images cannot reach FPR 1e-5
        at_f1_max = boundary_metrics(maps, masks, row["pixel_f1_threshold"])
        assert row["boundary_f1"] == pytest.approx(at_f1_max.boundary_f1, abs=1e-12)
        assert row["boundary_iou_at_threshold"] == pytest.approx(boundary_metrics(maps, masks, 0.75).boundary_iou,
                                                                 abs=1e-12)
        image_labels = [m.any() for m in masks]
        assert row["image_f1_at_threshold"] == pytest.approx(
            f1_score(image_labels, [m.max() >= 0.75 for m in maps]), abs=1e-12)
    assert any("AUPIMO" in note and "1e-05" in note for note in document["notes"]), document["notes"]


def test_extended_per_image_csv_holds_each_images_aupimo_and_json_its_spread(tmp_path):
    rng = np.random.default_rng(4)
    shape, maps, masks = (120, 100), {}, {}  # 10 normal images: 120,000 normal pixels reach FPR 1e-5
    for i in range(14):
        mask = np.zeros(shape, bool)
        if i >= 10:
            mask[20 + i:50 + i, 30:60] = True
        scores = (rng.random(shape) + mask * rng.uniform(0.2, 1.0)).astype(np.float32)
        defect = "good" if i < 10 else "spot"
        maps[f"{defect}/{i:03d}"], masks[f"{defect}/{i:03d}"] = scores, mask
        (tmp_path / "preds" / defect).mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(tmp_path / "preds" / defect / f"{i:03d}.tiff", scores)
        if mask.any():
            (tmp_path / "masks" / defect).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(tmp_path / "masks" / defect / f"{i:03d}.png"), mask.astype(np.uint8) * 255)
    out = tmp_path / "images.csv"
    document = json.loads(run(tmp_path / "preds", tmp_path / "masks", "--layout", "masks", "--extended",
                              "--per-image", out, "--format", "json", "-q").stdout)
    expected = aupimo(list(maps.values()), list(masks.values()))
    per_image = pd.read_csv(out).set_index("map")["aupimo"]
    names = [f"{name}.tiff" for name in maps]
    assert np.allclose(per_image[names].to_numpy(), expected.per_image, equal_nan=True, atol=1e-12)
    assert per_image[names[:10]].isna().all() and per_image[names[10:]].between(0, 1).all()
    row = document["rows"][0]
    assert row["pixel_aupimo"] == pytest.approx(expected.mean, abs=1e-12)
    assert row["pixel_aupimo_median"] == pytest.approx(expected.median, abs=1e-12)
    assert row["pixel_aupimo_std"] == pytest.approx(np.std(expected.per_image[10:], ddof=1), abs=1e-12)


@pytest.mark.parametrize("option, value", [("by", "image"), ("fpr_limit", 0.0), ("size_edges", (0.2, 0.1)), ("threshold", float("nan")),
                                           ("bootstrap", -1), ("bootstrap", 2.5), ("confidence", 1.0),
                                           ("jobs", 0)])
def test_options_are_checked_before_any_file_is_read(tmp_path, option, value):
    with pytest.raises(InputError, match=rf"^{option}="):
        score_folder(tmp_path / "no_preds", tmp_path / "no_masks", **{option: value})


# ---- bad input: one clear message naming the files and the fix, exit code 2, no traceback ----------

def bad(tmp_path, *args):
    result = run(*args, ok=False)
    assert result.exit_code == 2, result.output
    assert sum(line.startswith("Error:") for line in result.output.splitlines()) == 1
    return result.output


def test_missing_mask_for_a_map_outside_good(tmp_path):
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), np.zeros((4, 4), np.uint8))
    for name in ("a", "scratch/b"):
        (tmp_path / "preds" / name).parent.mkdir(parents=True, exist_ok=True)
        np.save(tmp_path / "preds" / f"{name}.npy", np.zeros((4, 4), np.float32))
    message = bad(tmp_path, tmp_path / "preds", tmp_path / "masks")
    assert "scratch/b.npy" in message and "have no mask" in message and "--allow-missing" in message


def test_test_image_without_map(dataset, tmp_path):
    root, _ = dataset
    copy = copy_set(root, tmp_path)
    (copy / "preds/grid/test/bent/001.tiff").unlink()
    message = bad(tmp_path, copy / "preds", copy / "data")
    assert "grid/test/bent/001.png" in message and "no score map" in message
    result = run(copy / "preds", copy / "data", "--allow-missing")
    assert "skipped 1 test image" in result.stdout  # reported in the table's caption


def test_mask_without_map(tmp_path):
    (tmp_path / "masks").mkdir()
    for name in ("a", "b_GT"):
        cv2.imwrite(str(tmp_path / "masks" / f"{name}.png"), np.zeros((4, 4), np.uint8))
    (tmp_path / "preds").mkdir()
    np.save(tmp_path / "preds" / "a.npy", np.zeros((4, 4), np.float32))
    message = bad(tmp_path, tmp_path / "preds", tmp_path / "masks")
    assert "b_GT.png" in message and "no score map" in message


def test_two_maps_for_one_image(dataset, tmp_path):
    root, truth = dataset
    copy = copy_set(root, tmp_path)
    np.save(copy / "preds/carpet/test/hole/000.npy", truth["carpet"][5][2])
    message = bad(tmp_path, copy / "preds", copy / "data")
    assert "hole/000" in message and "--map-suffix" in message


@pytest.mark.parametrize("damage", ["truncated", "multi-channel", "nan", "inf"])
def test_broken_maps_are_named_first_few_then_counted(dataset, tmp_path, damage):
    root, truth = dataset
    copy = copy_set(root, tmp_path)
    names = [name for items in truth.values() for name, *_ in items][:5]
    for name in names:
        path = copy / "preds" / name
        if damage == "truncated":
            path.write_bytes(path.read_bytes()[:300])
        elif damage == "multi-channel":
            tifffile.imwrite(path, np.zeros((*SHAPE, 3), np.float32), photometric="minisblack")
        else:
            scores = tifffile.imread(path)
            scores[2, 3] = np.nan if damage == "nan" else np.inf
            tifffile.imwrite(path, scores)
    message = bad(tmp_path, copy / "preds", copy / "data")
    assert "5 of 7 score maps cannot be scored" in message  # all five are in carpet, read first
    assert sum(name in message for name in names) == 3 and "and 2 more" in message
    assert {"truncated": "truncated", "multi-channel": "not one channel", "nan": "NaN or infinite",
            "inf": "NaN or infinite"}[damage] in message


def test_truncated_mask(dataset, tmp_path):
    root, _ = dataset
    copy = copy_set(root, tmp_path)
    mask = copy / "data/grid/ground_truth/bent/002_mask.png"
    mask.write_bytes(mask.read_bytes()[:40])
    message = bad(tmp_path, copy / "preds", copy / "data")
    assert "002_mask.png" in message


def test_all_normal_set(tmp_path):
    (tmp_path / "masks").mkdir()
    (tmp_path / "preds").mkdir()
    for name in ("a", "b"):
        cv2.imwrite(str(tmp_path / "masks" / f"{name}.png"), np.zeros((4, 4), np.uint8))
        np.save(tmp_path / "preds" / f"{name}.npy", np.random.default_rng(0).random((4, 4)))
    message = bad(tmp_path, tmp_path / "preds", tmp_path / "masks")
    assert "all 2 images are normal" in message


def test_empty_folder_and_wrong_path_and_missing_arguments(dataset, tmp_path):
    root, _ = dataset
    (tmp_path / "empty").mkdir()
    assert "no score maps" in bad(tmp_path, tmp_path / "empty", root / "data")
    assert "does not exist" in bad(tmp_path, tmp_path / "nowhere", root / "data")
    assert "does not exist" in bad(tmp_path, root / "preds", tmp_path / "nowhere")
    assert "missing PREDS and MASKS" in bad(tmp_path)
    assert "does not exist" in bad(tmp_path, "--pairs", tmp_path / "none.csv")
    assert "not both" in bad(tmp_path, root / "preds", "--pairs", tmp_path / "none.csv")


def test_npz_maps_with_several_arrays_need_npz_key(tmp_path):
    (tmp_path / "masks").mkdir()
    (tmp_path / "preds").mkdir()
    mask = np.zeros((6, 6), np.uint8)
    mask[1:3, 1:3] = 255
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), mask)
    scores = np.random.default_rng(6).random((6, 6))
    np.savez(tmp_path / "preds" / "a.npz", amap=scores, features=np.zeros(3))
    message = bad(tmp_path, tmp_path / "preds", tmp_path / "masks")
    assert "a.npz holds 2 arrays (amap, features)" in message and "--npz-key" in message
    document = json.loads(run(tmp_path / "preds", tmp_path / "masks", "--npz-key", "amap", "--format", "json").stdout)
    assert document["rows"][0]["pixel_aupr"] == pytest.approx(
        average_precision_score(mask.ravel() > 0, scores.ravel()), abs=1e-12)


def write_normal_maps(folder: Path, seed: int = 7) -> list[np.ndarray]:
    """Five float32 TIFF maps of 'normal images' (two sizes) under ``folder``; returns them."""
    rng = np.random.default_rng(seed)
    maps = [(np.round(rng.random(SHAPE if i % 2 else (20, 28)) * 64) / 64).astype(np.float32) for i in range(5)]
    folder.mkdir(parents=True)
    for i, scores in enumerate(maps):
        tifffile.imwrite(folder / f"{i:03d}.tiff", scores)
    return maps


def test_threshold_from_normal_maps_is_the_lowest_meeting_the_target_fpr(dataset, tmp_path):
    root, _ = dataset
    normal = write_normal_maps(tmp_path / "normal")
    pooled = np.concatenate([m.ravel() for m in normal])
    # plain reference: the smallest distinct score whose pooled FPR is at most the target
    expected = min(v for v in np.unique(pooled) if np.mean(pooled >= v) <= 0.05)
    document = run_json(root, "--threshold-from", tmp_path / "normal", "--target-fpr", "0.05")
    given = run_json(root, "--threshold", repr(float(expected)))
    assert document["rows"] == given["rows"]
    assert document["options"]["threshold"] == float(expected)
    caption = run(root / "preds", root / "data", "--threshold-from", tmp_path / "normal", "--target-fpr", "0.05",
                  "--format", "markdown", "-q").stdout
    assert f"set on the 5 normal maps under {tmp_path / 'normal'} at pixel FPR <= 0.05" in caption


def test_threshold_from_bad_input_is_a_clear_error(dataset, tmp_path):
    root, _ = dataset
    write_normal_maps(tmp_path / "normal")
    nan = tmp_path / "nan"
    nan.mkdir()
    tifffile.imwrite(nan / "000.tiff", np.full(SHAPE, np.nan, np.float32))
    (tmp_path / "empty").mkdir()
    cases = [(["--threshold-from", tmp_path / "normal", "--threshold", "0.5"], "not both"),
             (["--target-fpr", "0.01"], "give that folder too"),
             (["--threshold-from", tmp_path / "absent"], "does not exist"),
             (["--threshold-from", tmp_path / "empty"], "no score maps"),
             (["--threshold-from", nan], "NaN or infinite")]
    for args, message in cases:
        result = run(root / "preds", root / "data", "-q", *args, ok=False)
        assert result.exit_code == 2 and message in result.output, (args, result.output)


@pytest.mark.parametrize("edges, message", [("0.01,x", "expected comma-separated numbers"),
                                            ("0.05,0.01", "expected increasing area fractions")])
def test_bad_size_edges_are_a_clear_error(dataset, tmp_path, edges, message):
    root, _ = dataset
    assert message in bad(tmp_path, root / "preds", root / "data", "--by", "size", "--size-edges", edges)

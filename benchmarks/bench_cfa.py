"""CFA vs Sp-CFA (and the Table VII ablation) on the built-in synthetic-textures dataset.

For each category and seed: hold out 20% of the training images and paste synthetic anomalies
into them (detectors.tuning; synthetic-textures has no validation split), train one Sp-CFA model
with the image branch and the small and big superpixel branches on the other 80%, choose the
fusion weights by P-AUPR on the validation images (step 0.05), then score the test set:

* ``CFA``: the image branch alone (it is CFA with the same seed: tests/test_sp_cfa.py checks
  that it gives CFA.fit's maps), predicted through the CFA detector;
* ``org+small``, ``org+big``, ``all three``: the weights chosen with the other weight fixed at 0
  (``all three`` is Sp-CFA, predicted through SpCFA.predict);
* ``diag: small alone``, ``diag: big alone``: one superpixel branch with weight 1 (diagnostics).

Prints one row per run, then mean ± std over seeds per category, plus timings (training incl.
feature extraction and tuning; test prediction), peak resident memory of the process and
inference images per second. ``--cfa-only`` fits the CFA detector alone (CFA.fit) instead.
``--preset`` picks the CFA preset (``quick``, the default; ``standard``, the setting of the study
recorded in benchmarks/README.md; ``paper``, the published settings). Example::

    python benchmarks/bench_cfa.py --categories gravel,grass,brick --seeds 0,1,2 --preset standard
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from detectors.cfa import CFA, PRESETS
from detectors.tuning import TuningRun, validation_split
from pixeval.data import open_dataset
from pixeval.metrics import evaluate
from pixeval.metrics.catalogue import metric_title
from detectors.sp_cfa import fuse
from detectors.common import to_image_maps
import torch

METRICS = {metric_title(name): name for name in ("pixel_aupr", "pixel_f1_max", "pixel_auroc", "pixel_aupro",
                                                  "image_auroc")}
VARIANTS = {"org+small": (True, True, False), "org+big": (True, False, True), "all three": (True, True, True)}
#: Diagnostics: one superpixel branch alone, untuned.
SINGLE = {"small alone": (0.0, 1.0, 0.0), "big alone": (0.0, 0.0, 1.0)}


def run_one(category, seed: int, args) -> list[dict]:
    params = dict(seed=seed, preset=args.preset, backbone=args.backbone, resolution=args.resolution)
    split = validation_split(category, holdout=0.2, seed=seed)
    test = category.test
    images = [s.load_image() for s in test]
    masks = [s.load_mask() for s in test]

    if args.cfa_only:
        start = time.perf_counter()
        cfa = CFA(**params).fit(split.fit_images)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        prediction = cfa.predict(images)
        return [_row(category.name, seed, "CFA", prediction.maps, masks, fit_s, time.perf_counter() - start,
                     len(images), {})]

    start = time.perf_counter()
    run = TuningRun(params, split, [args.rs_s], [None, args.rs_b])
    chosen = {name: run.best("aupr", args.step, free) for name, free in VARIANTS.items()}
    fit_s = time.perf_counter() - start

    rows = []
    cfa = CFA(**params)
    cfa.head = run.branches["org"].head
    start = time.perf_counter()
    prediction = cfa.predict(images)
    rows.append(_row(category.name, seed, "CFA", prediction.maps, masks, fit_s, time.perf_counter() - start,
                     len(images), {}))

    sp = run.detector(chosen["all three"])
    start = time.perf_counter()
    prediction = sp.predict(images)
    sp_predict_s = time.perf_counter() - start
    branch_maps = run.model.branch_maps(images)
    for name, result in chosen.items():
        if name == "all three":
            maps = prediction.maps
        else:
            weights = {"org": result.a1, f"rs{result.rs_s}": result.a2}
            if result.rs_b is not None:
                weights[f"rs{result.rs_b}"] = result.a3
            maps = to_image_maps(torch.from_numpy(fuse(branch_maps, weights)), images, args.resolution)
        rows.append(_row(category.name, seed, f"Sp-CFA {name}", maps, masks, fit_s,
                         sp_predict_s if name == "all three" else float("nan"), len(images),
                         {**result.params(), "val_aupr": result.value}))
    val = _alone(chosen["all three"].candidates, args.rs_s, args.rs_b)
    rows[0]["chosen"] = {"val_aupr": val["CFA"]}
    for name, (a1, a2, a3) in SINGLE.items():
        weights = {"org": a1, f"rs{args.rs_s}": a2, f"rs{args.rs_b}": a3}
        maps = to_image_maps(torch.from_numpy(fuse(branch_maps, weights)), images, args.resolution)
        rows.append(_row(category.name, seed, f"diag: {name}", maps, masks, fit_s, float("nan"), len(images),
                         {"val_aupr": val[name]}))
    return rows


def _alone(candidates: list[dict], rs_s: int, rs_b: int) -> dict[str, float]:
    """Validation AUPR of each branch alone (weight 1), read from the searched candidates."""
    names = {(1.0, 0.0, 0.0): "CFA", (0.0, 1.0, 0.0): "small alone", (0.0, 0.0, 1.0): "big alone"}
    return {names[(r["a1"], r["a2"], r["a3"])]: r["aupr"] for r in candidates
            if (r["rs_s"], r["rs_b"]) == (rs_s, rs_b) and (r["a1"], r["a2"], r["a3"]) in names}


def _row(category, seed, variant, maps, masks, fit_s, predict_s, n_images, chosen) -> dict:
    report = evaluate(maps, masks)
    row = {"category": category, "seed": seed, "variant": variant}
    row.update({k: float(getattr(report, v)) for k, v in METRICS.items()})
    row.update({"fit_s": fit_s, "predict_s": predict_s, "images_per_s": n_images / predict_s,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "chosen": chosen})
    return row


def summarise(rows: list[dict]) -> str:
    lines = ["| category | variant | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 2) + "|"]
    keys = sorted({(r["category"], r["variant"]) for r in rows}, key=lambda k: (k[0], k[1] != "CFA", k[1]))
    for category, variant in keys:
        sel = [r for r in rows if r["category"] == category and r["variant"] == variant]
        cells = []
        for m in METRICS:
            v = np.array([r[m] for r in sel])
            cells.append(f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0:.4f}")
        lines.append(f"| {category} | {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--categories", default="gravel,grass,brick")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--preset", default="quick", choices=tuple(PRESETS))
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--rs-s", type=int, default=10)
    parser.add_argument("--rs-b", type=int, default=30)
    parser.add_argument("--step", type=float, default=0.05)
    parser.add_argument("--cfa-only", action="store_true",
                        help="fit and score the CFA detector alone (CFA.fit on the same 80%% split)")
    parser.add_argument("--json", help="also write every row to this JSON file")
    parser.add_argument("--summarise", nargs="+", metavar="JSON",
                        help="only print the tables of rows saved by earlier runs (--json files)")
    args = parser.parse_args()
    if args.summarise:
        rows = [row for path in args.summarise for row in json.load(open(path))]
        print(summarise(rows))
        print()
        print(timings(rows))
        return

    dataset = open_dataset("synthetic-textures")
    rows = []
    for name in args.categories.split(","):
        category = dataset.load_category(name)
        for seed in map(int, args.seeds.split(",")):
            new = run_one(category, seed, args)
            rows += new
            for r in new:
                print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
            if args.json:
                with open(args.json, "w") as fh:
                    json.dump(rows, fh, indent=1)
    print()
    print(f"preset={args.preset} backbone={args.backbone} resolution={args.resolution} "
          f"rs_s={args.rs_s} rs_b={args.rs_b} seeds={args.seeds}")
    print(summarise(rows))
    print()
    if args.cfa_only:
        for r in rows:
            print(f"{r['category']} seed {r['seed']}: CFA fit {r['fit_s']:.1f} s, predict {r['predict_s']:.1f} s "
                  f"({r['images_per_s']:.2f} img/s), peak RSS {r['peak_rss_mb']:.0f} MB")
        return
    print(timings(rows))


def timings(rows: list[dict]) -> str:
    lines = ["| category | seed | train+tune s | CFA predict s | Sp-CFA predict s | CFA img/s | Sp-CFA img/s | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|"]
    for category, seed in sorted({(r["category"], r["seed"]) for r in rows}):
        cfa = next(r for r in rows if (r["category"], r["seed"], r["variant"]) == (category, seed, "CFA"))
        sp = next(r for r in rows if (r["category"], r["seed"], r["variant"]) == (category, seed, "Sp-CFA all three"))
        lines.append(f"| {category} | {seed} | {sp['fit_s']:.1f} | {cfa['predict_s']:.1f} | {sp['predict_s']:.1f} | "
                     f"{cfa['images_per_s']:.2f} | {sp['images_per_s']:.2f} | {sp['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

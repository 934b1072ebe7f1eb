"""CFA's presets on the built-in synthetic-textures dataset: accuracy, time and memory.

For each category and seed, CFA is fitted on the same 80 % of the training images that
``benchmarks/bench_sp_cfa.py`` fits on (the other 20 % are its validation images) and scores the
test set. ``--preset`` picks the setting (``quick``, the CPU default; ``standard``; ``paper``, the
published one); ``--param NAME=VALUE`` overrides single hyperparameters (e.g. ``epochs=2``).
Prints one row per run and mean ± std over seeds per category. Example::

    python benchmarks/bench_cfa.py --preset paper --categories gravel --seeds 0
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from detectors.cfa import CFA, PRESETS
from detectors.tuning import validation_split
from pixeval import evaluate, open_dataset
from pixeval.metrics.catalogue import metric_title

METRICS = ("pixel_aupr", "pixel_f1_max", "pixel_auroc", "pixel_aupro", "image_auroc")


def run_one(category, seed: int, args, overrides: dict) -> dict:
    params = dict(seed=seed, preset=args.preset, backbone=args.backbone, resolution=args.resolution, **overrides)
    split = validation_split(category, holdout=0.2, seed=seed)
    images = [s.load_image() for s in category.test]
    masks = [s.load_mask() for s in category.test]
    start = time.perf_counter()
    cfa = CFA(**params).fit(split.fit_images)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    prediction = cfa.predict(images)
    predict_s = time.perf_counter() - start
    report = evaluate(prediction.maps, masks)
    return {"category": category.name, "seed": seed, **{m: float(getattr(report, m)) for m in METRICS},
            "fit_s": fit_s, "predict_s": predict_s,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic-textures")
    parser.add_argument("--categories", default="gravel,grass,brick")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--preset", default="quick", choices=tuple(PRESETS))
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="A CFA hyperparameter (integers only), repeatable.")
    args = parser.parse_args()
    overrides = {k: int(v) for k, v in (p.split("=", 1) for p in args.param)}
    dataset = open_dataset(args.data)
    rows = []
    for name in args.categories.split(","):
        category = dataset.load_category(name)
        for seed in map(int, args.seeds.split(",")):
            rows.append(run_one(category, seed, args, overrides))
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()}),
                  flush=True)
    print(f"\npreset={args.preset} {overrides} backbone={args.backbone} resolution={args.resolution}")
    print("| category | " + " | ".join(metric_title(m) for m in METRICS) + " | fit s | predict s | peak RSS MB |")
    print("|---" * (len(METRICS) + 4) + "|")
    for name in args.categories.split(","):
        sel = [r for r in rows if r["category"] == name]
        cells = [f"{np.mean([r[m] for r in sel]):.4f} ± {np.std([r[m] for r in sel]):.4f}"
                 for m in METRICS + ("fit_s", "predict_s")]
        print(f"| {name} | " + " | ".join(cells) + f" | {max(r['peak_rss_mb'] for r in sel):.0f} |")


if __name__ == "__main__":
    main()

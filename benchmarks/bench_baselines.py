"""Quality, time and memory of the PatchCore, PaDiM and DFM baselines on synthetic-textures.

For each detector and category: fit on the category's training images, predict its test images,
and score the maps with :func:`pixeval.metrics.evaluate` (P-AUROC, P-AUPR, P-F1max, P-AUPRO@0.3
and I-AUROC; the image metric uses each detector's own image score). Reports fit and predict
wall-clock seconds and the peak resident memory of this process during each step, as the
increase over the memory held when the step began (Linux: the peak counter is reset through
``/proc/self/clear_refs``).

    python benchmarks/bench_baselines.py [--backbone efficientnet_lite0] [--resolution 256]
                                         [--detectors patchcore,padim,dfm] [--categories ...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pixeval import create_detector
from pixeval.data import open_dataset
from pixeval.metrics import evaluate
from pixeval.metrics.catalogue import metric_title

METRICS = tuple((metric_title(name), name) for name in ("pixel_auroc", "pixel_aupr", "pixel_f1_max", "pixel_aupro",
                                                       "image_auroc"))


def _memory_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _measured(step):
    """Run ``step()``; return its result, wall seconds and peak RSS increase in MB."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM (the peak) to the current RSS
    before = _memory_mb("VmRSS")
    start = time.perf_counter()
    result = step()
    seconds = time.perf_counter() - start
    return result, seconds, _memory_mb("VmHWM") - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--detectors", default="patchcore,padim,dfm")
    parser.add_argument("--categories", default=None, help="comma-separated; default: all")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    dataset = open_dataset("synthetic-textures")
    categories = args.categories.split(",") if args.categories else dataset.categories
    header = ["detector", "category"] + [name for name, _ in METRICS] + ["fit s", "predict s", "fit +MB", "predict +MB"]
    print(f"backbone={args.backbone} resolution={args.resolution} seed={args.seed}")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in args.detectors.split(","):
        rows = []
        for category in categories:
            data = dataset.load_category(category)
            train = [s.load_image() for s in data.train]
            test = [s.load_image() for s in data.test]
            masks = [s.load_mask() for s in data.test]
            detector = create_detector(name, {"backbone": args.backbone, "resolution": args.resolution,
                                              "seed": args.seed})
            detector.backbone  # load the weights outside the timed steps
            _, fit_s, fit_mb = _measured(lambda: detector.fit(train))
            prediction, predict_s, predict_mb = _measured(lambda: detector.predict(test))
            report = evaluate(prediction.maps, masks, prediction.image_scores)
            row = [getattr(report, field) for _, field in METRICS] + [fit_s, predict_s, fit_mb, predict_mb]
            rows.append(row)
            print(f"| {name} | {category} | " + " | ".join(f"{v:.4f}" for v in row[:len(METRICS)])
                  + f" | {fit_s:.1f} | {predict_s:.1f} | {fit_mb:.0f} | {predict_mb:.0f} |", flush=True)
        mean = np.mean(rows, axis=0)
        print(f"| {name} | **mean** | " + " | ".join(f"{v:.4f}" for v in mean[:len(METRICS)])
              + f" | {mean[-4]:.1f} | {mean[-3]:.1f} | {mean[-2]:.0f} | {mean[-1]:.0f} |", flush=True)


if __name__ == "__main__":
    main()

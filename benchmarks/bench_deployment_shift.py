"""Does a deployment threshold set on held-out training images transfer to the normal test images?

``pixeval bench`` sets each detector's deployment threshold t on the maps of the training images
it held out of the fit: the lowest t whose pixel FPR there is at most 1 %. This script repeats
that split and fit for each detector and category of a dataset (the bench's own functions, seed
0, the detectors' defaults) and prints what the bench does not:

* ``border``: the share of the held-out pixels at or above t that lie in the outer eighth of the
  map (a band covering 44 % of its area), i.e. whether t is set by border artefacts;
* ``test FPR``: the share of the normal test images' pixels at or above t (the target was 1 %);
* ``flagged``: how many normal test images have a pixel at or above t (what I-F1@t counts);
* ``test max FPR``: the median over the normal test images of the held-out pixel FPR at each
  image's map maximum (the share of held-out pixels scoring at least that maximum): above the
  target, the image has no pixel at or above t; far below, its maximum lies beyond the held-out
  tail;
* per category, the grey-level mean and standard deviation of the training and the normal test
  images, the two sides of the dataset's split.

Example (the figures in benchmarks/README.md)::

    python benchmarks/bench_deployment_shift.py --detectors patchcore,cfa,efficient_ad
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from pixeval.bench.jobs import expand_jobs, make_config
from pixeval.bench.runner import split_holdout
from pixeval.data import open_dataset
from pixeval.metrics import DegenerateInputWarning, threshold_at_fpr
from pixeval.registry import create_detector

#: The width of the border band, as a share of the map's side.
BORDER = 1 / 8


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detectors", default="patchcore,cfa,efficient_ad", help="comma-separated detector names")
    parser.add_argument("--categories", default=None, help="comma-separated categories (default: all)")
    parser.add_argument("--data", default="synthetic-textures", help="dataset, as pixeval bench --data takes it")
    parser.add_argument("--target-fpr", type=float, default=0.01)
    return parser.parse_args()


def border_band(shape: tuple[int, int]) -> np.ndarray:
    """The pixels within ``BORDER`` of the side from the map's edge."""
    band = np.zeros(shape, bool)
    rows, cols = (max(1, round(BORDER * side)) for side in shape)
    band[:rows], band[-rows:], band[:, :cols], band[:, -cols:] = True, True, True, True
    return band


def grey_statistics(images: list[np.ndarray]) -> str:
    grey = np.stack([image.mean(axis=2) for image in images])
    return f"{grey.mean():.1f} ± {grey.std():.1f}"


def main() -> None:
    args = parse_args()
    warnings.simplefilter("ignore", DegenerateInputWarning)
    config = {"data": args.data, "detectors": args.detectors, "target_fpr": args.target_fpr}
    if args.categories:
        config["categories"] = args.categories
    jobs = expand_jobs(make_config(config))
    print("| category | detector | border | test FPR | flagged | test max FPR |")
    print("|---|---|---|---|---|---|")
    statistics = {}
    for job in jobs:
        data = open_dataset(job.dataset).load_category(job.category)
        train, held = split_holdout(job, [sample.load_image() for sample in data.train])
        normal_test = [sample.load_image() for sample in data.test if sample.label == 0]
        statistics[job.category] = (grey_statistics(train), grey_statistics(normal_test))
        detector = create_detector(job.detector, dict(job.params)).fit(train)
        held_maps = [np.asarray(m, np.float32) for m in detector.predict(held).maps]
        test_maps = [np.asarray(m, np.float32) for m in detector.predict(normal_test).maps]
        t = threshold_at_fpr(held_maps, job.target_fpr).threshold
        over = [m >= t for m in held_maps]
        border = sum(int(o[border_band(o.shape)].sum()) for o in over) / max(1, sum(int(o.sum()) for o in over))
        test_fpr = sum(int((m >= t).sum()) for m in test_maps) / sum(m.size for m in test_maps)
        flagged = sum(bool((m >= t).any()) for m in test_maps)
        held_scores = np.sort(np.concatenate([m.ravel() for m in held_maps]))
        maxima = np.array([m.max() for m in test_maps])
        max_fpr = np.median(1.0 - np.searchsorted(held_scores, maxima, side="left") / held_scores.size)
        print(f"| {job.category} | {job.detector} | {border:.2f} | {test_fpr:.4f} | {flagged} of {len(test_maps)} "
              f"| {max_fpr:.2g} |", flush=True)
    print("\n| category | training images (grey mean ± std) | normal test images |")
    print("|---|---|---|")
    for category, (train_stats, test_stats) in statistics.items():
        print(f"| {category} | {train_stats} | {test_stats} |")


if __name__ == "__main__":
    main()

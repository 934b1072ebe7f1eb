"""Speed and memory of the metric core on a large, imbalanced pixel workload.

Workload: 100 score maps of 1024×1024 float32 (105M pixels) with about 2% anomalous pixels in
random blob-shaped regions (seeded). Prints, in one run on the same arrays:

* first-call time of ``evaluate`` on a tiny input (Numba compile, or loading the compile cache);
* pixeval ``evaluate`` (pixel AUROC + AP + F1-max + AUPRO@0.3, exact, plus the image metrics);
* ``np.sort`` of all the scores (the practical floor) and the ratio pixeval / sort (target <= 1.5);
* scikit-learn ``roc_auc_score`` + ``average_precision_score`` and the ratio (target >= 30x);
* peak memory during ``evaluate`` above the inputs, relative to the input size (target <= 1x),
  measured two ways: ``tracemalloc`` (numpy reports its data allocations to it, Numba's do not
  show) and the process's peak resident set size above its size before the call (Linux:
  ``VmHWM`` reset through ``/proc/self/clear_refs``; everything counts);
* the error of the binned accumulator (``bins``) against the exact values;
* bootstrap cost: ``evaluate(..., bootstrap=1000)`` and ``paired_bootstrap`` with 1000
  resamples on 100 maps of 256×256 from the same generator;
* the metrics beyond the default set, on the same maps, each alone and (where it can share
  ``evaluate``'s pass or sort) the part it would add to ``evaluate``, as a ratio to the sort:
  AUPIMO, results by defect size, boundary F1 / Boundary IoU at the F1-max threshold, a threshold
  at 1 % FPR on the defect-free maps and the metrics at it; then ``evaluate(extended=True)`` at
  that threshold, the call ``pixeval score --extended`` and the bench make.

The load average (``os.getloadavg``) is printed at the start and the end: timings taken while
the machine is busy are not clean figures.

Usage: ``python benchmarks/bench_metrics.py [--small] [--no-sklearn] [--cold]``; ``--cold``
compiles the Numba kernels from scratch (empty cache directory) to time the real compile.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
import warnings

import numpy as np
from scipy import ndimage

if "--cold" in sys.argv:  # before pixeval is imported: an empty Numba cache
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="pixeval-numba-")

from pixeval.metrics import (DegenerateInputWarning, PixelAccumulator, aupimo,  # noqa: E402
                             boundary_metrics, evaluate, metrics_at_threshold, metrics_by_size,
                             paired_bootstrap, threshold_at_fpr)
from pixeval.metrics.aupimo import aupimo_report  # noqa: E402
from pixeval.metrics.by_size import DEFAULT_EDGES, size_report  # noqa: E402
from pixeval.metrics.pooled import collect  # noqa: E402
from pixeval.metrics.ranking import SortedScores  # noqa: E402


def make_workload(n_images: int, size: int, seed: int = 0):
    """Score maps with blob defects covering about 2% of the pixels, and their masks."""
    rng = np.random.default_rng(seed)
    maps = np.empty((n_images, size, size), dtype=np.float32)
    masks = np.zeros((n_images, size, size), dtype=bool)
    for i in range(n_images):
        if i % 5 == 4:  # every fifth image is defect-free
            maps[i] = ndimage.uniform_filter(rng.random((size, size), dtype=np.float32), 5)
            continue
        seeds = rng.random((size // 8, size // 8)) < 0.002
        blobs = ndimage.binary_dilation(seeds, iterations=2)
        masks[i] = np.kron(blobs, np.ones((8, 8), dtype=bool))[:size, :size]
        smooth = ndimage.uniform_filter(rng.random((size, size), dtype=np.float32), 5)
        maps[i] = smooth + 0.15 * masks[i] * rng.random(dtype=np.float32)
        maps[i] += rng.normal(0, 0.02, (size, size)).astype(np.float32)
    return maps, masks


def peak_rss_above_start(function) -> float | None:
    """Peak resident memory during ``function()`` minus the resident memory before, in bytes."""
    def status(field):
        with open("/proc/self/status") as lines:
            return next(int(l.split()[1]) * 1024 for l in lines if l.startswith(field + ":"))
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # reset VmHWM to the current RSS
        before = status("VmRSS")
    except OSError:
        return None
    function()
    return status("VmHWM") - before


def timed(function):
    """``(result, wall time in seconds)``."""
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="10 maps of 512x512 (quick check)")
    parser.add_argument("--no-sklearn", action="store_true", help="skip the scikit-learn timing")
    parser.add_argument("--cold", action="store_true", help="time a cold Numba compile")
    parser.add_argument("--repeat", type=int, default=3,
                        help="time pixeval and np.sort this many times each, alternating; keep the best")
    args = parser.parse_args()
    n_images, size = (10, 512) if args.small else (100, 1024)
    print("load average (1, 5, 15 min) at the start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    tiny_maps, tiny_masks = make_workload(2, 32, seed=1)
    tiny_masks[0, :4, :4] = True
    _, compile_time = timed(lambda: evaluate(tiny_maps, tiny_masks))

    maps, masks = make_workload(n_images, size)
    input_bytes = maps.nbytes + masks.nbytes
    print(f"workload: {n_images} maps of {size}x{size} float32, {maps.size:,} pixels, "
          f"{masks.mean():.2%} anomalous, inputs {input_bytes / 2**20:.0f} MiB "
          f"(scores {maps.nbytes / 2**20:.0f} MiB)")
    print(f"first call ({'compile, empty cache' if args.cold else 'compile or cache load'}): "
          f"{compile_time:.2f} s")

    pixeval_time = sort_time = np.inf
    for _ in range(args.repeat):  # alternate, so both see the same load; the best is the least disturbed
        report, seconds = timed(lambda: evaluate(maps, masks))
        pixeval_time = min(pixeval_time, seconds)
        sort_time = min(sort_time, timed(lambda: np.sort(maps, axis=None))[1])
    print(f"pixeval evaluate, exact (best of {args.repeat}): {pixeval_time:.2f} s  "
          f"(P-AUROC {report.pixel_auroc:.6f}, P-AUPR {report.pixel_aupr:.6f}, "
          f"P-F1max {report.pixel_f1_max:.6f}, P-AUPRO@0.3 {report.pixel_aupro:.6f}, "
          f"{report.n_regions} regions)")
    print(f"np.sort of all scores (best of {args.repeat}): {sort_time:.2f} s   ratio pixeval / sort: "
          f"{pixeval_time / sort_time:.2f} (target <= 1.5)")

    tracemalloc.start()
    evaluate(maps, masks)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak numpy allocation during evaluate (tracemalloc): {peak / 2**20:.0f} MiB = "
          f"{peak / input_bytes:.2f}x the inputs, {peak / maps.nbytes:.2f}x the scores "
          "(target <= 1x)")
    rss = peak_rss_above_start(lambda: evaluate(maps, masks))
    if rss is not None:
        print(f"peak RSS during evaluate above RSS before it: {rss / 2**20:.0f} MiB = "
              f"{rss / input_bytes:.2f}x the inputs, {rss / maps.nbytes:.2f}x the scores")

    if not args.no_sklearn:
        from sklearn.metrics import average_precision_score, roc_auc_score

        y, s = masks.ravel(), maps.ravel()
        (auroc, ap), sklearn_time = timed(
            lambda: (roc_auc_score(y, s), average_precision_score(y, s)))
        print(f"sklearn roc_auc_score + average_precision_score: {sklearn_time:.2f} s   "
              f"pixeval is {sklearn_time / pixeval_time:.1f}x faster (target >= 30x); "
              f"|diff| AUROC {abs(auroc - report.pixel_auroc):.1e}, "
              f"AP {abs(ap - report.pixel_aupr):.1e}")

    new_metrics(maps, masks, report, pixeval_time, sort_time, args.repeat)

    for bins in (1_000, 100_000):
        accumulator = PixelAccumulator(bins=bins, score_range=(float(maps.min()), float(maps.max())))
        start = time.perf_counter()
        for score_map, mask in zip(maps, masks):
            accumulator.update(score_map, mask)
        binned = accumulator.compute()
        binned_time = time.perf_counter() - start
        errors = ", ".join(
            f"{name} {getattr(binned, name) - getattr(report, name):+.1e}"
            for name in ("pixel_auroc", "pixel_aupr", "pixel_f1_max", "pixel_aupro"))
        print(f"binned accumulator, {bins} bins: {binned_time:.2f} s, error vs exact: {errors}")

    del maps, masks
    n_maps, size, resamples = (20, 128, 200) if args.small else (100, 256, 1000)
    maps, masks = make_workload(n_maps, size, seed=2)
    _, plain_time = timed(lambda: evaluate(maps, masks))
    report, bootstrap_time = timed(lambda: evaluate(maps, masks, bootstrap=resamples))
    low, high = report.intervals["pixel_aupr"]
    print(f"bootstrap, {n_maps} maps of {size}x{size}: evaluate {plain_time:.2f} s, with "
          f"bootstrap={resamples} {bootstrap_time:.2f} s (P-AUPR {report.pixel_aupr:.4f}, "
          f"95% CI {low:.4f} to {high:.4f})")
    noisy = maps + np.random.default_rng(3).normal(0, 0.02, maps.shape).astype(np.float32)
    comparison, paired_time = timed(
        lambda: paired_bootstrap(maps, noisy, masks, n_resamples=resamples))
    aupr = comparison["pixel_aupr"]
    print(f"paired_bootstrap, {resamples} resamples: {paired_time:.2f} s (P-AUPR difference "
          f"{aupr.difference:+.4f}, CI {aupr.ci_low:+.4f} to {aupr.ci_high:+.4f}, p {aupr.p_value:.3g})")
    print("load average (1, 5, 15 min) at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


def best_of(repeat: int, function):
    """``(result, best wall time of repeat calls)``."""
    best, result = np.inf, None
    for _ in range(repeat):
        result, seconds = timed(function)
        best = min(best, seconds)
    return result, best


def aupimo_added(maps, masks, repeat: int) -> float:
    """Best time of AUPIMO on images already validated by ``evaluate``'s pass."""
    _, images, chunks = collect(maps, masks)
    return best_of(repeat, lambda: aupimo_report(images, chunks, (1e-5, 1e-4)))[1]


def by_size_added(maps, masks, threshold: float, repeat: int) -> float:
    """Best time of the size bins on scores already sorted by ``evaluate``."""
    buffer, images, _ = collect(maps, masks)
    scores = SortedScores(buffer)
    return best_of(repeat, lambda: size_report(scores, images, DEFAULT_EDGES, threshold, 0.3, 0.5))[1]


def new_metrics(maps, masks, report, evaluate_time: float, sort_time: float, repeat: int) -> None:
    """Time the metrics outside the default set; print each alone and what it adds to evaluate.

    "Adds" is the time of the part that ``evaluate`` would run on top of its own pass (AUPIMO on
    its validated images, the bins on its sorted scores); boundary and threshold metrics share
    nothing but the threshold, so they add their whole time. Ratios are to the ``np.sort``.
    """
    threshold = report.pixel_f1_threshold
    added = {}

    def line(name, alone, adds, values):
        added[name] = adds
        print(f"  {name}: alone {alone:.2f} s ({alone / sort_time:.2f} sort); adds {adds:.2f} s "
              f"-> evaluate + it = {(evaluate_time + adds) / sort_time:.2f} sort ({values})")

    print(f"metrics beyond the default set (best of {repeat}; evaluate alone "
          f"{evaluate_time / sort_time:.2f} sort):")
    result, alone = best_of(repeat, lambda: aupimo(maps, masks))
    line("AUPIMO (1e-5, 1e-4)", alone, aupimo_added(maps, masks, repeat),
         f"mean {result.mean:.4f}, median {result.median:.4f}, {result.n_fpr_levels} FPR levels")

    with warnings.catch_warnings():  # bins without a region: NaN, and said in the line below
        warnings.simplefilter("ignore", DegenerateInputWarning)
        by_size, alone = best_of(repeat, lambda: metrics_by_size(maps, masks, threshold=threshold))
        adds = by_size_added(maps, masks, threshold, repeat)
    line("by defect size", alone, adds, ", ".join(
        f"{b.label}: {b.n_regions} regions, P-AUPR {b.pixel_aupr:.4f}" for b in by_size.bins))

    boundary, alone = best_of(repeat, lambda: boundary_metrics(maps, masks, threshold))
    line("boundary F1 + Boundary IoU at the F1-max threshold", alone, alone,
         f"F1 {boundary.boundary_f1:.4f}, IoU {boundary.boundary_iou:.4f}")

    normal = maps[~masks.any(axis=(1, 2))]
    cut, alone = best_of(repeat, lambda: threshold_at_fpr(normal, 0.01))
    line("threshold at 1 % FPR on the defect-free maps", alone, alone,
         f"threshold {cut.threshold:.4f} on {cut.n_images} maps")
    at, alone = best_of(repeat, lambda: metrics_at_threshold(maps, masks, cut.threshold))
    line("metrics at that threshold", alone, alone,
         f"P-F1 {at.pixel_f1:.4f} (F1-max {report.pixel_f1_max:.4f}), pixel FPR {at.pixel_fpr:.4f}, "
         f"I-F1 {at.image_f1:.4f}")
    total = evaluate_time + sum(added.values())
    print(f"  evaluate + all of the above: {total:.2f} s = {total / sort_time:.2f} sort "
          "(target for the default set <= 1.5)")
    extended, measured = best_of(repeat, lambda: evaluate(maps, masks, threshold=cut.threshold, extended=True))
    print(f"  evaluate(threshold=that threshold, extended=True), as pixeval score --extended and the bench "
          f"compute it (AUPIMO, boundary at the F1-max and at the given threshold): {measured:.2f} s = "
          f"{measured / sort_time:.2f} sort (AUPIMO {extended.pixel_aupimo:.4f}, B-F1 {extended.boundary_f1:.4f})")


if __name__ == "__main__":
    main()

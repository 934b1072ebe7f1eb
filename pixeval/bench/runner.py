"""Running one job: load a category, fit a detector on its normal training images, predict the
test images, and score the maps with :mod:`pixeval.metrics`.

:func:`run_job` is a plain function of a picklable :class:`~pixeval.bench.jobs.Job` returning a
picklable :class:`JobResult`, so the same code runs in this process, in a worker process or on a
Dask worker; writing the result is the store's job (:mod:`pixeval.bench.store`), done by the
process that owns the run folder.

The metrics: every metric of :func:`pixeval.metrics.evaluate`, the extended ones included; with
``threshold_holdout`` > 0 (``pixeval bench --threshold-holdout``, default 0.1) a share of the
training images is held out of the fit (:func:`split_holdout`), the detector's maps of them set
its **deployment threshold** (:func:`pixeval.metrics.threshold_at_fpr` at ``target_fpr``, stored
as ``normal_threshold`` ...), and the metrics at a threshold (``pixel_f1_at_threshold``,
``image_f1_at_threshold`` ...) use it; and per defect-size bin (``size_edges``), P-AUPR, AUPRO
and region recall at that threshold (else the F1-max one), named by :func:`size_metric_name`.

Besides the metrics a result keeps, small enough to ship back from a remote worker:

* **resamples**: every pixel and image metric on each of the job's ``bootstrap`` resamples
  (``pixeval bench --bootstrap N``, default 1000; none with 0) of the test images
  (:func:`pixeval.metrics.bootstrap_samples`, float32), drawn with a seed that depends only on
  the dataset's name and the category (:func:`resample_seed`). Every
  detector and every seed of one category is therefore scored on the same resamples, so the
  report can test differences between detectors with a paired bootstrap
  (:mod:`pixeval.report.significance`). The time grows with the test pixels and the number of
  resamples (benchmarks/README.md, "Metric core", measures it), and it holds 8 bytes per test
  pixel while it runs;
* **curves**: the pixel ROC, precision-recall and PRO curves, thinned to at most
  :data:`CURVE_POINTS` points each, for the report's plots;
* **examples**: for a few anomalous test images (evenly spread over the test set's order, so every
  detector shows the same ones), the image, mask, score map and the segmentation at the
  F1-optimal threshold (computed at full resolution), all shrunk to at most :data:`EXAMPLE_SIZE`
  pixels on the long side;
* with ``save_maps``, every test score map at full resolution, for the MVTec-layout TIFF tree.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import resource
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixeval.bench.jobs import Job, import_plugins
from pixeval.detector import ProgressCallback
from pixeval.metrics.by_size import BIN_TITLES, SizeReport
from pixeval.registry import create_detector

#: Most points kept per curve.
CURVE_POINTS = 400
#: Longest side, in pixels, of the pictures kept for the qualitative grid.
EXAMPLE_SIZE = 160
#: Distributions whose versions every result records (those installed).
VERSIONED = ("pixeval", "numpy", "numba", "scikit-learn", "torch", "torchvision", "opencv-contrib-python-headless")


class JobError(RuntimeError):
    """A job that failed: the detector raised, or returned maps that break the contract."""


@dataclass
class JobResult:
    """What one finished job produced (see the module docstring)."""

    job: Job
    metrics: dict[str, float]
    meta: dict[str, Any]
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    resamples: dict[str, np.ndarray] = field(default_factory=dict)
    examples: dict[str, np.ndarray] = field(default_factory=dict)
    maps: list[tuple[str, np.ndarray]] = field(default_factory=list)


def run_job(job: Job, progress: ProgressCallback | None = None) -> JobResult:
    """Fit, predict and score ``job``; ``progress(phase, done, total)`` hears every phase."""
    from pixeval.data import open_dataset
    from pixeval.metrics import evaluate, metrics_by_size, threshold_at_fpr

    report = progress or (lambda phase, done, total: None)
    import_plugins(job.imports)
    report("load", 0, 1)
    data = open_dataset(job.dataset).load_category(job.category)
    if not data.train or not data.test:
        raise JobError(f"{job.dataset_name}/{job.category} has {len(data.train)} training and "
                       f"{len(data.test)} test images; a job needs both")
    train, held_out = split_holdout(job, [s.load_image() for s in data.train])
    test = [s.load_image() for s in data.test]
    masks = [s.load_mask() for s in data.test]
    report("load", 1, 1)

    detector = create_detector(job.detector, dict(job.params))
    _reset_peak_memory()
    start = time.perf_counter()
    detector.fit(train, progress=progress)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    prediction = detector.predict(test, progress=progress)
    predict_seconds = time.perf_counter() - start
    normal = (threshold_at_fpr(_checked_maps(job, detector.predict(held_out).maps, held_out), job.target_fpr)
              if held_out else None)
    deployment_threshold = normal.threshold if normal else None
    peak = _peak_memory_mb()
    maps = _checked_maps(job, prediction.maps, test)
    image_scores = np.asarray(prediction.image_scores, dtype=np.float64)

    report("score", 0, 1)
    metric_report = evaluate(maps, masks, image_scores, threshold=deployment_threshold, extended=True)
    sizes = metrics_by_size(maps, masks, edges=job.size_edges, threshold=deployment_threshold)
    report_values = metric_report.to_dict()
    del report_values["threshold"]  # the deployment threshold, stored once: as normal_threshold
    metrics = {k: float(v) for k, v in {**report_values, **(normal.to_dict() if normal else {}),
                                        **size_metrics(sizes)}.items()
               if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}
    threshold = metrics.get("pixel_f1_threshold", float("nan"))
    result = JobResult(
        job=job,
        metrics=metrics,
        meta={"hyperparameters": json.loads(job.resolved),
              "backbone": getattr(detector.params, "backbone", None),
              "resolution": getattr(detector.params, "resolution", None),
              "fit_seconds": fit_seconds, "predict_seconds": predict_seconds,
              "peak_memory_mb": peak, "n_train": len(train), "n_test": len(test),
              "versions": package_versions(), "host": platform.node(), "pid": os.getpid()},
        curves=pixel_curves(maps, masks),
        resamples=resampled_metrics(job, maps, masks, image_scores),
        examples=pick_examples(data.test, test, masks, maps, threshold, job.examples),
        maps=[(_map_path(s), m) for s, m in zip(data.test, maps)] if job.save_maps else [],
    )
    report("score", 1, 1)
    return result


def split_holdout(job: Job, train: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The training images to fit on and those held out to set the deployment threshold: a
    ``job.threshold_holdout`` share (rounded, at least one) drawn with :func:`resample_seed`, so
    every detector and seed of a category holds out the same images."""
    held = set(holdout_indices(len(train), job.threshold_holdout, resample_seed(job)))
    if held and len(held) == len(train):
        raise JobError(f"{job.dataset_name}/{job.category} has {len(train)} training image(s): too few to hold "
                       "some out for the deployment threshold; run with --threshold-holdout 0")
    return ([image for i, image in enumerate(train) if i not in held],
            [image for i, image in enumerate(train) if i in held])


def holdout_indices(n_train: int, share: float, seed: int) -> list[int]:
    """The ``round(share * n_train)`` training images (at least one when ``share > 0``) held out,
    drawn without replacement by ``numpy.random.default_rng(seed)``, in increasing order."""
    if share == 0:
        return []
    n_held = min(max(1, round(share * n_train)), n_train)
    return sorted(np.random.default_rng(seed).choice(n_train, n_held, replace=False).tolist())


def size_metrics(sizes: SizeReport) -> dict[str, float]:
    """The by-size metrics as store entries named ``"<field> [size <bin>]"``
    (:func:`size_metric_name`)."""
    return {size_metric_name(field, size_bin.label): getattr(size_bin, field)
            for size_bin in sizes.bins for field in BIN_TITLES}


def size_metric_name(field: str, label: str) -> str:
    """The results-store name of a by-size metric, e.g. ``"pixel_aupr [size < 0.1%]"``."""
    return f"{field} [size {label}]"


def parse_size_metric_name(name: str) -> tuple[str, str] | None:
    """``(field, bin label)`` of a :func:`size_metric_name`; None for any other metric name."""
    match = re.fullmatch(r"(\w+) \[size (.+)\]", name)
    return (match[1], match[2]) if match else None


def resampled_metrics(job: Job, maps: list[np.ndarray], masks: list[np.ndarray],
                      image_scores: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric (float32) on each of ``job.bootstrap`` resamples of the test images, drawn
    with :func:`resample_seed`; empty when ``job.bootstrap`` is 0."""
    from pixeval.metrics import bootstrap_samples

    if not job.bootstrap:
        return {}
    samples = bootstrap_samples(maps, masks, image_scores=image_scores, n_resamples=job.bootstrap,
                                seed=resample_seed(job))
    return {name: values.astype(np.float32) for name, values in samples.items()}


def resample_seed(job: Job) -> int:
    """The bootstrap seed of ``job``'s test images: CRC-32 of ``"<dataset name>/<category>"``, the
    same for every detector and seed and in every process (unlike Python's salted ``hash``)."""
    return zlib.crc32(f"{job.dataset_name}/{job.category}".encode())


def _checked_maps(job: Job, maps: list[np.ndarray], images: list[np.ndarray]) -> list[np.ndarray]:
    """The predicted maps as float32, after checking one per image at that image's size."""
    if len(maps) != len(images):
        raise JobError(f"detector {job.detector!r} returned {len(maps)} maps for {len(images)} images")
    out = []
    for i, (m, image) in enumerate(zip(maps, images)):
        m = np.asarray(m)
        if m.shape != image.shape[:2]:
            raise JobError(f"detector {job.detector!r} returned a {m.shape} map for image {i} of size "
                           f"{image.shape[:2]}; maps must have their image's height and width")
        out.append(m.astype(np.float32, copy=False))
    return out


def _map_path(sample: Any) -> str:
    """Where a test sample's score map goes in the MVTec mirrored layout, relative to the
    category's folder: ``test/<defect>/<name>.tiff`` (an image id already holds the defect
    folder in the MVTec layout; others get the defect prefixed)."""
    image_id = sample.image_id
    if not image_id.startswith(f"{sample.defect}/"):
        image_id = f"{sample.defect}/{image_id}"
    return f"test/{image_id}.tiff"


def pixel_curves(maps: list[np.ndarray], masks: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Pixel ROC (``roc_fpr``, ``roc_tpr``), precision-recall (``pr_recall``, ``pr_precision``)
    and PRO (``pro_fpr``, ``pro_pro``) curves, thinned to :data:`CURVE_POINTS`; none when the
    masks hold one class only."""
    from pixeval.metrics import pixel_curves as curves_of

    if not any(mask.any() for mask in masks) or all(mask.all() for mask in masks):
        return {}
    curves = curves_of(maps, masks, max_points=CURVE_POINTS)
    (fpr, tpr, _), (precision, recall, _), (pro_fpr, pro, _) = curves["roc"], curves["pr"], curves["pro"]
    return {"roc_fpr": fpr, "roc_tpr": tpr, "pr_recall": recall, "pr_precision": precision,
            "pro_fpr": pro_fpr, "pro_pro": pro}


def pick_examples(samples: list[Any], images: list[np.ndarray], masks: list[np.ndarray],
                  maps: list[np.ndarray], threshold: float, count: int) -> dict[str, np.ndarray]:
    """The qualitative-grid pictures of up to ``count`` anomalous test images (see the module
    docstring), stacked per kind: ``ids``, ``image`` (uint8), ``mask`` and ``segmentation``
    (bool), ``map`` (float32), each padded to :data:`EXAMPLE_SIZE` square; ``shape`` holds each
    picture's unpadded height and width."""
    anomalous = [i for i, s in enumerate(samples) if s.label == 1]
    if count == 0 or not anomalous:
        return {}
    spread = np.unique(np.linspace(0, len(anomalous) - 1, min(count, len(anomalous))).round())
    picks = [anomalous[int(k)] for k in spread]
    out: dict[str, list[np.ndarray]] = {"image": [], "mask": [], "map": [], "segmentation": [], "shape": []}
    for i in picks:
        segmentation = maps[i] >= threshold if np.isfinite(threshold) else np.zeros_like(masks[i])
        shrunk = [_shrink(images[i]), _shrink(masks[i]), _shrink(maps[i]), _shrink(segmentation)]
        out["shape"].append(np.array(shrunk[0].shape[:2]))
        for kind, picture in zip(("image", "mask", "map", "segmentation"), shrunk):
            out[kind].append(_pad(picture))
    stacked = {kind: np.stack(values) for kind, values in out.items()}
    stacked["ids"] = np.array([samples[i].image_id for i in picks])
    stacked["threshold"] = np.array(threshold)
    return stacked


def _shrink(picture: np.ndarray) -> np.ndarray:
    """``picture`` reduced by an integer stride so its long side is at most EXAMPLE_SIZE
    (nearest-neighbour, so masks stay exact and maps keep their values)."""
    step = max(1, -(-max(picture.shape[:2]) // EXAMPLE_SIZE))
    return np.ascontiguousarray(picture[::step, ::step])


def _pad(picture: np.ndarray) -> np.ndarray:
    pad = [(0, EXAMPLE_SIZE - picture.shape[0]), (0, EXAMPLE_SIZE - picture.shape[1])]
    return np.pad(picture, pad + [(0, 0)] * (picture.ndim - 2))


def package_versions() -> dict[str, str]:
    """Python's version and those of :data:`VERSIONED` distributions that are installed."""
    versions = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _reset_peak_memory() -> None:
    """Reset the kernel's peak resident-set counter of this process (Linux ≥ 4.0); elsewhere the
    peak stays the process's high-water mark since it started."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_memory_mb() -> float:
    """Peak resident memory of this process in MiB since :func:`_reset_peak_memory`."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20

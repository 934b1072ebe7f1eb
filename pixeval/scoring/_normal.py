"""A pixel threshold set on normal score maps saved as files, as a deployment would set it.

:func:`threshold_from_folder` reads every score map under a folder of maps of normal images
(e.g. held-out normal validation images, never the test set) and returns
:func:`pixeval.metrics.threshold_at_fpr` of them: the lowest threshold whose pixel FPR over
those maps is at most the target. ``pixeval score --threshold-from`` then reports F1,
precision and recall at it beside the test-tuned F1-max.
"""

from __future__ import annotations

from pathlib import Path

from pixeval.errors import InputError
from pixeval.io import read_score_map
from pixeval.metrics.thresholds import NormalThreshold, threshold_at_fpr
from pixeval.scoring._pairing import list_maps


def threshold_from_folder(folder: str | Path, target_fpr: float = 0.01, *, map_suffix: str | None = None,
                          npz_key: str | None = None) -> NormalThreshold:
    """:func:`~pixeval.metrics.threshold_at_fpr` over every score map under ``folder``
    (recursively; only files ending in ``map_suffix`` when given). Every map must hold finite
    scores; maps may differ in size. Raises :class:`~pixeval.errors.InputError` naming the
    folder or file and the fix."""
    folder = Path(folder)
    if not 0 <= target_fpr <= 1:
        raise InputError(f"target FPR {target_fpr!r}: expected a number in [0, 1] (e.g. 0.01 for 1 %)")
    if not folder.is_dir():
        raise InputError(f"normal maps folder {folder} does not exist. Fix: pass the folder of score maps "
                         "of normal images (e.g. held-out normal validation images)")
    maps = [read_score_map(path, npz_key).values for path in list_maps(folder, map_suffix)]
    return threshold_at_fpr(maps, target_fpr)

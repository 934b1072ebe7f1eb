"""Reading paired score maps and masks, in threads (TIFF and PNG decoding release the GIL).

Every pair is read whole before any metric runs, and every failure is kept: the error raised
after all reads names the first few files that cannot be scored and counts the rest, so one
run shows every problem at once.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from pixeval.data import files
from pixeval.errors import DatasetError, InputError
from pixeval.io import read_score_map, resize_map
from pixeval.scoring._pairing import Pair

#: Failures quoted in full in the error raised after reading; the rest are counted.
SHOWN_ERRORS = 3


@dataclass
class LoadedPair:
    """One pair read from disk: scores and mask of the same shape."""

    pair: Pair
    scores: np.ndarray
    mask: np.ndarray
    quantised: str | None  # the stored integer dtype of a quantised map, else None
    resized: bool

    @property
    def defect(self) -> str:
        """The pair's defect, or ``good``/``anomalous`` from the mask when the layout gives none."""
        return self.pair.defect or ("anomalous" if self.mask.any() else "good")


def load_pair(pair: Pair, *, resize: bool = False, npz_key: str | None = None) -> LoadedPair:
    """Read ``pair``'s map and mask, checking that their sizes agree (or, with ``resize``,
    resizing the map bilinearly to the mask's size, or the test image's for a normal image).

    Raises :class:`~pixeval.errors.InputError` naming the file and the fix.
    """
    score_map = read_score_map(pair.map_path, npz_key)
    scores = score_map.values
    if pair.mask_path is not None:
        try:
            mask = files.read_mask(pair.mask_path)
        except DatasetError as exc:
            raise InputError(f"cannot read mask: {exc} (unreadable or truncated). Fix: write it again") from None
        reference, what = mask.shape, f"its mask {pair.mask_path}"
    else:
        mask = None
        reference, what = scores.shape, ""
        if pair.image_path is not None:
            try:
                reference, what = files.image_size(pair.image_path), f"its image {pair.image_path}"
            except DatasetError as exc:
                raise InputError(f"cannot read the size of test image {pair.image_path}: {exc}") from None
    resized = scores.shape != reference
    if resized:
        if not resize:
            raise InputError(f"score map {pair.map_path} is {_size(scores.shape)} but {what} is {_size(reference)} "
                             "(W×H). Fix: save maps at the image size, or pass --resize to resize maps "
                             "bilinearly to it")
        scores = resize_map(scores, reference)
    if mask is None:
        mask = np.zeros(reference, dtype=bool)
    quantised = str(score_map.stored_dtype) if score_map.quantised else None
    return LoadedPair(pair, scores, mask, quantised, resized)


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}×{shape[0]}"


def submit_reads(pairs: list[Pair], executor: ThreadPoolExecutor, *, resize: bool = False,
                 npz_key: str | None = None, on_read: Callable[[], object] | None = None) -> list[Future]:
    """Start reading ``pairs`` (:func:`load_pair`) in ``executor``'s threads; ``on_read()`` is
    called after each. Each future holds a :class:`LoadedPair` or the
    :class:`~pixeval.errors.InputError` that reading raised; :func:`wait_for_reads` waits for them."""
    def task(pair: Pair) -> LoadedPair | InputError:
        try:
            return load_pair(pair, resize=resize, npz_key=npz_key)
        except InputError as exc:
            return exc
        finally:
            if on_read is not None:
                on_read()

    return [executor.submit(task, pair) for pair in pairs]


def wait_for_reads(futures: list[Future]) -> list[LoadedPair]:
    """The pairs read by :func:`submit_reads`, in order; every failure is gathered into one
    :class:`~pixeval.errors.InputError` that quotes the first few and counts the rest."""
    results = [future.result() for future in futures]
    failures = [r for r in results if isinstance(r, InputError)]
    if failures:
        shown = "\n  ".join(str(f) for f in failures[:SHOWN_ERRORS])
        more = f"\n  ... and {len(failures) - SHOWN_ERRORS} more" if len(failures) > SHOWN_ERRORS else ""
        raise InputError(f"{len(failures)} of {len(futures)} score maps cannot be scored:\n  {shown}{more}")
    return results


def read_pairs(pairs: list[Pair], *, jobs: int = 4, resize: bool = False,
               npz_key: str | None = None) -> list[LoadedPair]:
    """Read every pair of ``pairs`` in ``jobs`` threads (:func:`load_pair`), in order."""
    with ThreadPoolExecutor(max_workers=jobs) as executor:
        return wait_for_reads(submit_reads(pairs, executor, resize=resize, npz_key=npz_key))

"""Reading and writing score-map files.

A **score map** is a single-channel 2-D array of anomaly scores, higher = more anomalous. It may be
stored as

* ``.tiff`` / ``.tif``: float32 or float16 (the MVTec AD convention), or any integer type;
* ``.npy``: one array; ``.npz``: one array, or the array named by ``npz_key``;
* ``.png``: uint8 or uint16, i.e. **quantised** scores (256 or 65 536 levels).

Singleton axes are dropped (``1×H×W`` and ``H×W×1`` are read as ``H×W``); anything else that is not
2-D (colour images, stacks of maps) is an error, as is a NaN or infinite score. Scores read from an
integer or boolean file are flagged as quantised: ties between pixels that had different scores
before quantisation change every metric. Scores come back as float32 (float64 files stay float64).

Masks are images of a dataset, read by :func:`pixeval.data.files.read_mask` (any colour channel
> 0 is anomalous).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile

from pixeval.errors import InputError

__all__ = ["SCORE_MAP_SUFFIXES", "InputError", "ScoreMap", "read_score_map", "resize_map", "write_score_map"]

#: File suffixes (lower case) read as score maps.
SCORE_MAP_SUFFIXES = (".tiff", ".tif", ".npy", ".npz", ".png")


@dataclass(frozen=True)
class ScoreMap:
    """A score map as read from ``path``: ``values`` (2-D float) and the dtype stored in the file."""

    path: Path
    values: np.ndarray
    stored_dtype: np.dtype

    @property
    def quantised(self) -> bool:
        """Whether the file stored integer (or boolean) scores rather than floating-point ones."""
        return self.stored_dtype.kind in "uib"


def read_score_map(path: str | Path, npz_key: str | None = None) -> ScoreMap:
    """Read the score map at ``path`` (format by suffix; see the module docstring).

    Raises :class:`InputError` for a file that cannot be read, is not single-channel 2-D, or holds
    NaN or infinite scores.
    """
    path = Path(path)
    raw = _read_array(path, npz_key)
    if raw.dtype.kind not in "uibf":
        raise InputError(f"score map {path} holds {raw.dtype} values; a score map holds real numbers "
                         "(float32 recommended)")
    squeezed = raw.reshape([n for n in raw.shape if n != 1]) if raw.ndim > 2 else raw
    if squeezed.ndim != 2:
        raise InputError(f"score map {path} has shape {'×'.join(map(str, raw.shape))}, not one channel: a score "
                         "map is a single H×W array of per-pixel scores. Fix: save one score per pixel "
                         "(e.g. the anomaly map before colouring it, or one map per file)")
    values = squeezed.astype(np.float64 if raw.dtype == np.float64 else np.float32, copy=False)
    if not np.isfinite(values).all():
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise InputError(f"score map {path} has {bad} NaN or infinite score(s); every pixel needs a finite "
                         "score. Fix: replace them where the maps are made (e.g. numpy.nan_to_num)")
    return ScoreMap(path, values, raw.dtype)


def _read_array(path: Path, npz_key: str | None) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix not in SCORE_MAP_SUFFIXES:
        raise InputError(f"{path} is not a score-map file: expected one of {', '.join(SCORE_MAP_SUFFIXES)}")
    try:
        if suffix in (".tiff", ".tif"):
            return tifffile.imread(path)
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            return _read_npz(path, npz_key)
        return _read_png(path)
    except InputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, tifffile.TiffFileError) as exc:
        raise InputError(f"cannot read score map {path} ({type(exc).__name__}: {exc}); the file is "
                         "unreadable or truncated. Fix: write it again") from None


def _read_npz(path: Path, npz_key: str | None) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        keys = list(archive.keys())
        if npz_key is not None:
            if npz_key not in keys:
                raise InputError(f"score map {path} has no array named {npz_key!r} (--npz-key); "
                                 f"it holds {', '.join(keys) or 'no arrays'}")
            return archive[npz_key]
        if len(keys) != 1:
            raise InputError(f"score map {path} holds {len(keys)} arrays ({', '.join(keys) or 'none'}); "
                             "name the score map with --npz-key")
        return archive[keys[0]]


def _read_png(path: Path) -> np.ndarray:
    data = np.fromfile(path, dtype=np.uint8)
    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if array is None:
        raise InputError(f"cannot read score map {path}: not a PNG file OpenCV can decode (unreadable or "
                         "truncated). Fix: write it again")
    return array


def resize_map(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``values`` resized bilinearly to ``shape`` (height, width), as OpenCV's ``INTER_LINEAR``
    (pixel centres aligned, as ``torch.nn.functional.interpolate(align_corners=False)``)."""
    if values.shape == tuple(shape):
        return values
    return cv2.resize(values, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def write_score_map(path: str | Path, values: np.ndarray) -> Path:
    """Write the 2-D score map ``values`` to ``path`` as float32: a TIFF for ``.tiff``/``.tif``,
    a NumPy file for ``.npy``. Parent folders are created. Returns ``path``."""
    path = Path(path)
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"a score map is 2-D (H×W); got shape {values.shape} for {path}")
    suffix = path.suffix.lower()
    if suffix not in (".tiff", ".tif", ".npy"):
        raise ValueError(f"score maps are written as .tiff, .tif or .npy, not {path.suffix!r} ({path})")
    path.parent.mkdir(parents=True, exist_ok=True)
    values = values.astype(np.float32, copy=False)
    if suffix == ".npy":
        np.save(path, values)
    else:
        tifffile.imwrite(path, values)
    return path

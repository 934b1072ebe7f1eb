"""Finding and reading the image and mask files of a dataset.

Images read as ``uint8`` ``H×W×3`` RGB (grey repeated over the channels, alpha dropped). Masks
read as ``bool`` ``H×W``: a pixel is anomalous when any colour channel is > 0 (an alpha channel is
ignored), the rule of the MVTec AD evaluation code.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pixeval.errors import DatasetError

#: Extensions (lower case) of the image and mask files the loaders pick up.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def is_image_file(path: Path) -> bool:
    """Whether ``path`` is a regular file with one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """The image files in ``folder`` (and its subfolders if ``recursive``), sorted by path."""
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in candidates if is_image_file(p) and not p.name.startswith("."))


def image_id(path: Path, split_root: Path) -> str:
    """The image id of ``path``: its path relative to ``split_root``, without extension."""
    return path.relative_to(split_root).with_suffix("").as_posix()


def _read(path: Path, flags: int) -> np.ndarray:
    # np.fromfile + imdecode also reads paths that are not ASCII.
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None
    array = cv2.imdecode(data, flags) if data.size else None
    if array is None:
        raise DatasetError(f"{path} is not an image file that OpenCV can decode")
    return array


def read_image(path: Path) -> np.ndarray:
    """``path`` as ``uint8`` ``H×W×3`` RGB (grey repeated over channels, alpha dropped), in the
    file's stored pixel order: an EXIF orientation tag is ignored, as it is for masks."""
    image = _read(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return np.ascontiguousarray(image[:, :, ::-1])


def read_mask(path: Path) -> np.ndarray:
    """``path`` as a ``bool`` ``H×W`` mask: ``True`` where any colour channel is > 0."""
    mask = _read(path, cv2.IMREAD_UNCHANGED)
    if mask.ndim == 3:
        channels = mask.shape[2]
        mask = mask[:, :, : 3 if channels == 4 else channels].max(axis=2)
    return mask > 0


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of the image file ``path``, read from its header where possible."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError):
        height, width = _read(path, cv2.IMREAD_UNCHANGED).shape[:2]
    return height, width


def find_folder(parent: Path, names: tuple[str, ...]) -> Path | None:
    """The subfolder of ``parent`` named like the first of ``names`` present (ignoring case)."""
    by_lower = {p.name.lower(): p for p in parent.iterdir() if p.is_dir()}
    return next((by_lower[n] for n in names if n in by_lower), None)


def mask_index(folders: list[Path], suffix: str = "_mask", recursive: bool = False) -> dict[str, Path]:
    """Mask files of ``folders`` by the image id they belong to (their path relative to their
    folder, without extension and without ``suffix``). A mask named ``<id><suffix>.<ext>`` wins
    over one named ``<id>.<ext>``; earlier folders win over later ones."""
    index: dict[str, Path] = {}
    for folder in reversed(folders):
        if not folder.is_dir():
            continue
        named = {image_id(p, folder): p for p in list_images(folder, recursive)}
        index.update({key: p for key, p in named.items() if not key.endswith(suffix)})
        index.update({key[: -len(suffix)]: p for key, p in named.items() if key.endswith(suffix)})
    return index


def preview(names: list[str], limit: int = 8) -> str:
    """``names`` joined by commas, the ones after the first ``limit`` counted, for error messages."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")

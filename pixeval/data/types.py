"""What every dataset loader yields: samples, the splits of one category, and the dataset.

Definitions shared by all layouts:

* An **image id** is the image's path relative to the folder of its split (the category folder in
  layouts without split folders), without extension and with ``/`` separators: ``"crack/003"`` in
  the MVTec layout, ``"10000"`` in KSDD2, ``"abnormal/scratch_1"`` in a plain folder. It is unique
  within a split of a category, so score maps saved under their image ids mirror the dataset.
* A **label** is 0 for a normal image and 1 for an anomalous one; the **defect** of a normal image
  is ``"good"``.
* Images load at their original size, masks at their image's size, as
  :mod:`pixeval.data.files` reads them; a sample without a mask file has an all-False mask.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pixeval.data.files import DatasetError, image_size, preview, read_image, read_mask


@dataclass(frozen=True)
class Sample:
    """One image of a dataset, with its mask file (``None`` if it has none) and labels."""

    image_id: str
    image_path: Path
    mask_path: Path | None
    label: int
    defect: str

    def load_image(self) -> np.ndarray:
        """The image as ``uint8`` ``H×W×3`` RGB at its original size."""
        return read_image(self.image_path)

    def load_mask(self) -> np.ndarray:
        """The mask as ``bool`` ``H×W`` at the image's size (all False without a mask file).

        Raises :class:`DatasetError` when the mask file's size differs from the image's.
        """
        size = image_size(self.image_path)
        if self.mask_path is None:
            return np.zeros(size, dtype=bool)
        mask = read_mask(self.mask_path)
        if mask.shape != size:
            raise DatasetError(f"mask {self.mask_path} is {mask.shape[1]}×{mask.shape[0]} (W×H) but its image "
                               f"{self.image_path} is {size[1]}×{size[0]}; a mask must have its image's size")
        return mask


@dataclass
class CategoryData:
    """The samples of one category: ``train`` (normal only), ``test``, and ``validation``
    (empty when the layout has no validation split)."""

    name: str
    train: list[Sample]
    test: list[Sample]
    validation: list[Sample] = field(default_factory=list)


class Dataset(abc.ABC):
    """A dataset on disk, read lazily one category at a time.

    Subclasses (one per layout) set :attr:`layout` and implement :attr:`categories` and
    :meth:`load_category`; constructing one checks the root and raises :class:`DatasetError`
    when it does not hold the layout.
    """

    #: Short name of the layout, as written in a dataset spec (``"mvtec:PATH"``).
    layout: str = ""
    #: One line sketching the files the layout expects, shown by ``pixeval datasets``.
    expects: str = ""

    def __init__(self, root: str | Path, name: str | None = None) -> None:
        self.root = Path(root).expanduser()
        self.name = name or self.root.name

    @property
    @abc.abstractmethod
    def categories(self) -> list[str]:
        """The category names, sorted."""

    @abc.abstractmethod
    def load_category(self, name: str) -> CategoryData:
        """The train, test and validation samples of category ``name``."""

    def _category_folders(self, is_category: Callable[[Path], bool], expected: str) -> dict[str, Path]:
        """Category name -> folder: the root itself when ``is_category(root)``, else the root's
        subfolders for which it holds. Raises :class:`DatasetError` when the root does not exist
        or holds no category, saying what was ``expected`` and what was found."""
        if not self.root.is_dir():
            raise DatasetError(f"{self.layout} dataset folder {self.root} does not exist")
        if is_category(self.root):
            return {self.root.name: self.root}
        folders = {p.name: p for p in sorted(self.root.iterdir()) if is_category(p)}
        if not folders:
            found = sorted(p.name + ("/" if p.is_dir() else "") for p in self.root.iterdir())
            raise DatasetError(f"{self.root} is not {expected}; found {preview(found) or 'an empty folder'}")
        return folders

    def _check_category(self, name: str) -> None:
        if name not in self.categories:
            raise DatasetError(f"{self.layout} dataset {self.root} has no category {name!r}; "
                               f"its categories: {', '.join(self.categories)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, name={self.name!r})"

"""The MVTec AD layout, which MPDD, BTAD and pixeval's synthetic-textures also follow.

::

    ROOT/<category>/train/good/<id>.png                 normal training images
    ROOT/<category>/test/good/<id>.png                  normal test images
    ROOT/<category>/test/<defect>/<id>.png              anomalous test images, one folder per defect
    ROOT/<category>/ground_truth/<defect>/<id>_mask.png their masks
    ROOT/<category>/validation/...                      optional, laid out like test/ (or val/)

Tolerated variants: the normal folder may be called ``ok`` (BTAD) instead of ``good``; images and
masks may be ``.png``, ``.bmp``, ``.jpg`` or ``.tif`` in any case; a mask is named
``<id>_mask.<ext>`` (MVTec, MPDD) or ``<id>.<ext>`` (BTAD); masks may also sit in
``<split>/ground_truth/<defect>/``. ``ROOT`` may also be a single category folder (one that holds
``train/`` and ``test/`` itself). Every anomalous image must have a mask.
"""

from __future__ import annotations

from pathlib import Path

from pixeval.data.files import DatasetError, find_folder, image_id, list_images, mask_index, preview
from pixeval.data.types import CategoryData, Dataset, Sample

#: The 15 categories of MVTec AD.
MVTEC_AD_CATEGORIES = ("bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
                       "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper")

#: Folder names that hold normal images (MVTec ``good``, BTAD ``ok``).
NORMAL_FOLDERS = ("good", "ok")
_VALIDATION_SPLITS = ("validation", "val")


class MVTecDataset(Dataset):
    """A dataset in the MVTec AD layout (see the module docstring)."""

    layout = "mvtec"
    expects = "PATH/<category>/train/good/, test/<defect>/, ground_truth/<defect>/<id>_mask.png (also MPDD, BTAD)"

    def __init__(self, root: str | Path, name: str | None = None) -> None:
        super().__init__(root, name)
        self._folders = self._category_folders(
            _is_category,
            f"in the MVTec AD layout: expected category folders holding train/good/ and test/<defect>/ "
            f"(e.g. {self.root}/bottle/train/good/000.png), or a single category folder holding train/ and test/")

    @property
    def categories(self) -> list[str]:
        return list(self._folders)

    def load_category(self, name: str) -> CategoryData:
        self._check_category(name)
        folder = self._folders[name]
        validation = [folder / s for s in _VALIDATION_SPLITS if (folder / s).is_dir()]
        return CategoryData(
            name=name,
            train=_train_samples(folder),
            test=_split_samples(folder, "test"),
            validation=_split_samples(folder, validation[0].name) if validation else [],
        )


def _is_category(folder: Path) -> bool:
    return folder.is_dir() and (folder / "train").is_dir() and (folder / "test").is_dir()


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _train_samples(category: Path) -> list[Sample]:
    split = category / "train"
    normal = find_folder(split, NORMAL_FOLDERS)
    others = [p.name for p in _subfolders(split) if p != normal]
    if normal is None or others:
        raise DatasetError(
            f"{split} must hold exactly one folder of normal images, train/good/ (or train/ok/); "
            f"found {preview([p.name + '/' for p in _subfolders(split)]) or 'no folders'}")
    images = list_images(normal)
    if not images:
        raise DatasetError(f"{normal} holds no images (looked for .png, .jpg, .bmp, .tif files)")
    return [Sample(image_id(p, split), p, None, 0, "good") for p in images]


def _split_samples(category: Path, split_name: str) -> list[Sample]:
    """The samples of ``category/split_name``: one folder per defect type plus the normal folder."""
    split = category / split_name
    normal = find_folder(split, NORMAL_FOLDERS)
    samples, missing = [], []
    for folder in _subfolders(split):
        if folder.name == "ground_truth":
            continue
        images = list_images(folder)
        if folder == normal:
            samples += [Sample(image_id(p, split), p, None, 0, "good") for p in images]
            continue
        masks = mask_index([split / "ground_truth" / folder.name, category / "ground_truth" / folder.name])
        for path in images:
            mask = masks.get(path.stem)
            if mask is None:
                missing.append(path)
            samples.append(Sample(image_id(path, split), path, mask, 1, folder.name))
    if missing:
        first = missing[0]
        raise DatasetError(
            f"{len(missing)} anomalous image(s) in {split} have no mask, e.g. {first}; expected "
            f"{category}/ground_truth/{first.parent.name}/{first.stem}_mask.png "
            f"(or {first.stem}.png, .bmp)")
    if not samples:
        raise DatasetError(f"{split} holds no images: expected folders good/ and <defect>/ with images")
    return samples

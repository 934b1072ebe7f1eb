"""A plain folder of normal images, anomalous images and masks.

::

    ROOT/normal/<name>.png                  normal images (also accepted: good/, ok/)
    ROOT/abnormal/<name>.png                anomalous images (also: anomalous/, defect/, bad/, ng/, ko/),
    ROOT/abnormal/<defect>/<name>.png       directly or in one folder per defect type
    ROOT/masks/<name>.png                   their masks, mirroring abnormal/ (also: mask/, ground_truth/),
    ROOT/masks/<defect>/<name>_mask.png     named like the image, optionally with suffix _mask
    ROOT/normal_test/<name>.png             optional: normal test images (also: test_normal/)

Without ``normal_test/``, the normal images are split into train and test by a fixed rule: a
seeded random permutation (seed 0) of the sorted file names puts :data:`TEST_FRACTION` of them
(at least one) in test and the rest in train, the same on every run. Anomalous images directly
in ``abnormal/`` have defect ``"anomalous"``; in a subfolder, the subfolder's name. ``ROOT`` may
also hold several such folders, one per category. There is no validation split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixeval.data.files import DatasetError, find_folder, image_id, list_images, mask_index, preview
from pixeval.data.types import CategoryData, Dataset, Sample

NORMAL_NAMES = ("normal", "good", "ok")
ABNORMAL_NAMES = ("abnormal", "anomalous", "defect", "bad", "ng", "ko")
MASK_NAMES = ("masks", "mask", "ground_truth")
NORMAL_TEST_NAMES = ("normal_test", "test_normal")
#: Share of the normal images that go to the test set when there is no ``normal_test/`` folder.
TEST_FRACTION = 0.2
#: Defect label of anomalous images placed directly in ``abnormal/``.
DEFAULT_DEFECT = "anomalous"


class FolderDataset(Dataset):
    """A plain folder of normal images, anomalous images and masks (see the module docstring)."""

    layout = "folder"
    expects = "PATH/normal/, PATH/abnormal/[<defect>/], PATH/masks/[<defect>/] (optional PATH/normal_test/)"

    def __init__(self, root: str | Path, name: str | None = None) -> None:
        super().__init__(root, name)
        self._folders = self._category_folders(
            _is_category,
            "a plain image folder: expected normal/ and abnormal/ folders (with masks/ for the anomalous "
            "images' masks), either in it or in one subfolder per category")

    @property
    def categories(self) -> list[str]:
        return list(self._folders)

    def load_category(self, name: str) -> CategoryData:
        self._check_category(name)
        folder = self._folders[name]
        normal = find_folder(folder, NORMAL_NAMES)
        normal_images = list_images(normal)
        if not normal_images:
            raise DatasetError(f"{normal} holds no images; the training set needs normal images")
        normal_test = find_folder(folder, NORMAL_TEST_NAMES)
        if normal_test is not None:
            train_images, test_normal = normal_images, list_images(normal_test)
        else:
            train_images, test_normal = split_normal(normal_images)
        train = [Sample(image_id(p, folder), p, None, 0, "good") for p in train_images]
        test = [Sample(image_id(p, folder), p, None, 0, "good") for p in test_normal]
        return CategoryData(name=name, train=train, test=test + _anomalous(folder))


def split_normal(images: list[Path]) -> tuple[list[Path], list[Path]]:
    """Split sorted normal ``images`` into (train, test) by the seeded rule in the module docstring."""
    if len(images) < 2:
        raise DatasetError(f"need at least 2 normal images to split them into train and test, found "
                           f"{len(images)}; add images or a normal_test/ folder")
    n_test = max(1, int(round(TEST_FRACTION * len(images))))
    order = np.random.default_rng(0).permutation(len(images))
    test = set(order[:n_test].tolist())
    return ([p for i, p in enumerate(images) if i not in test], [p for i, p in enumerate(images) if i in test])


def _anomalous(folder: Path) -> list[Sample]:
    abnormal = find_folder(folder, ABNORMAL_NAMES)
    masks_folder = find_folder(folder, MASK_NAMES)
    masks = mask_index([masks_folder], recursive=True) if masks_folder is not None else {}
    samples, missing = [], []
    for path in list_images(abnormal, recursive=True):
        key = image_id(path, abnormal)
        if key not in masks:
            missing.append(key)
        defect = path.parent.relative_to(abnormal).as_posix() if path.parent != abnormal else DEFAULT_DEFECT
        samples.append(Sample(image_id(path, folder), path, masks.get(key), 1, defect))
    if missing:
        where = masks_folder or folder / "masks"
        raise DatasetError(f"{len(missing)} anomalous image(s) in {abnormal} have no mask in {where}: "
                           f"{preview(missing)}; name a mask like its image (optionally with suffix "
                           f"_mask), at the same relative path")
    return samples


def _is_category(folder: Path) -> bool:
    return (folder.is_dir() and find_folder(folder, NORMAL_NAMES) is not None
            and find_folder(folder, ABNORMAL_NAMES) is not None)

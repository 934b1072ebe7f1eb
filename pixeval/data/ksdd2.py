"""The Kolektor Surface-Defect Dataset 2 (KSDD2) layout: one category, two flat folders.

::

    ROOT/train/<id>.png  with  ROOT/train/<id>_GT.png
    ROOT/test/<id>.png   with  ROOT/test/<id>_GT.png

Every image has a ground-truth file; an image is anomalous (defect ``"defect"``) when its
ground truth has any positive pixel, normal otherwise (the rule of the KSDD2 authors' code). The
anomalous images of ``train/`` are left out of the training set (pixeval detectors learn from
normal images only), and KSDD2 has no validation split.
"""

from __future__ import annotations

from pathlib import Path

from pixeval.data.files import DatasetError, image_id, list_images, read_mask
from pixeval.data.types import CategoryData, Dataset, Sample

_GT_SUFFIX = "_GT"
#: The defect label of KSDD2's anomalous images (the dataset has no defect types).
DEFECT = "defect"


class KSDD2Dataset(Dataset):
    """KSDD2 (see the module docstring); its single category is called ``ksdd2``."""

    layout = "ksdd2"
    expects = "PATH/train/ and PATH/test/ holding <id>.png with <id>_GT.png"

    def __init__(self, root: str | Path, name: str | None = None) -> None:
        super().__init__(root, name)
        missing = [s for s in ("train", "test") if not (self.root / s).is_dir()]
        if not self.root.is_dir() or missing:
            found = sorted(p.name + "/" for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []
            raise DatasetError(
                f"{self.root} is not in the KSDD2 layout: expected folders train/ and test/ holding "
                f"<id>.png with <id>_GT.png; "
                + (f"missing {', '.join(m + '/' for m in missing)}; found {', '.join(found) or 'no folders'}"
                   if self.root.is_dir() else "the folder does not exist"))

    @property
    def categories(self) -> list[str]:
        return ["ksdd2"]

    def load_category(self, name: str) -> CategoryData:
        self._check_category(name)
        train = [s for s in self._split("train") if s.label == 0]
        return CategoryData(name=name, train=train, test=self._split("test"))

    def _split(self, split_name: str) -> list[Sample]:
        split = self.root / split_name
        files = list_images(split)
        masks = {p.stem[: -len(_GT_SUFFIX)]: p for p in files if p.stem.endswith(_GT_SUFFIX)}
        images = [p for p in files if not p.stem.endswith(_GT_SUFFIX)]
        if not images:
            raise DatasetError(f"{split} holds no images: expected <id>.png with <id>_GT.png")
        missing = [p for p in images if p.stem not in masks]
        if missing:
            raise DatasetError(f"{len(missing)} image(s) in {split} have no ground truth, e.g. {missing[0]}; "
                               f"expected {missing[0].with_name(missing[0].stem + _GT_SUFFIX + '.png')}")
        samples = []
        for path in images:
            mask = masks[path.stem]
            label = int(read_mask(mask).any())
            samples.append(Sample(image_id(path, split), path, mask, label, DEFECT if label else "good"))
        return samples

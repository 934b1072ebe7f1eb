"""A CSV manifest that lists every image with its mask, label and split.

Columns (header names ignore case; the order is free):

=========  ========  ==============================================================================
column     required  meaning
=========  ========  ==============================================================================
image      yes       image file, absolute or relative to the manifest's folder
mask       yes       mask file (same rule); may be empty for normal images
label      yes       ``0``/``normal``/``good``/``ok`` or ``1``/``anomalous``/``abnormal``/``bad``/``ng``/``ko``
split      yes       ``train`` (normal images only), ``test``, or ``validation``/``val``
category   no        category name; default: the manifest's file name without extension
defect     no        defect type; default ``good`` for normal images, ``anomalous`` otherwise
id         no        image id; default: the image's path relative to the manifest's folder, without
                     extension (the file name without extension for images outside that folder)
=========  ========  ==============================================================================

Every anomalous image needs a mask; image ids must be unique within a split of a category.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from pixeval.data.files import DatasetError, preview
from pixeval.data.types import CategoryData, Dataset, Sample

REQUIRED_COLUMNS = ("image", "mask", "label", "split")
OPTIONAL_COLUMNS = ("category", "defect", "id")
_LABELS = {"0": 0, "normal": 0, "good": 0, "ok": 0,
           "1": 1, "anomalous": 1, "abnormal": 1, "anomaly": 1, "bad": 1, "ng": 1, "ko": 1}
_SPLITS = {"train": "train", "test": "test", "validation": "validation", "val": "validation"}


class ManifestDataset(Dataset):
    """A dataset listed in a CSV manifest (see the module docstring)."""

    layout = "manifest"
    expects = "a CSV file with columns image, mask, label, split (optional: category, defect, id)"

    def __init__(self, root: str | Path, name: str | None = None) -> None:
        super().__init__(root, name or Path(root).stem)
        self._splits = _read_manifest(self.root)

    @property
    def categories(self) -> list[str]:
        return sorted(self._splits)

    def load_category(self, name: str) -> CategoryData:
        self._check_category(name)
        splits = self._splits[name]
        return CategoryData(name=name, train=splits["train"], test=splits["test"],
                            validation=splits["validation"])


def _read_manifest(path: Path) -> dict[str, dict[str, list[Sample]]]:
    """Category -> split -> samples, after checking every row (all problems reported at once)."""
    if not path.is_file():
        raise DatasetError(f"manifest {path} does not exist; expected a CSV file with columns "
                           f"{', '.join(REQUIRED_COLUMNS)}")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [c.strip().lower() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DatasetError(f"manifest {path} lacks column(s) {', '.join(missing)}; expected a header with "
                               f"{', '.join(REQUIRED_COLUMNS)} (optional: {', '.join(OPTIONAL_COLUMNS)}); "
                               f"found {', '.join(header) or 'no header'}")
        rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
                for row in reader]
    if not rows:
        raise DatasetError(f"manifest {path} lists no images")
    splits: dict[str, dict[str, list[Sample]]] = defaultdict(lambda: {s: [] for s in ("train", "test", "validation")})
    problems: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for line, row in enumerate(rows, start=2):
        try:
            category, split, sample = _row_sample(row, path)
        except DatasetError as exc:
            problems.append(f"line {line}: {exc}")
            continue
        if (category, split, sample.image_id) in seen:
            problems.append(f"line {line}: image id {sample.image_id!r} repeats in split {split} of category "
                            f"{category!r}; give each row a unique value in an 'id' column")
        seen.add((category, split, sample.image_id))
        splits[category][split].append(sample)
    if problems:
        raise DatasetError(f"manifest {path} has {len(problems)} problem(s):\n  " + "\n  ".join(problems[:10])
                           + (f"\n  and {len(problems) - 10} more" if len(problems) > 10 else ""))
    for category, by_split in splits.items():
        if not by_split["train"] or not by_split["test"]:
            empty = [s for s in ("train", "test") if not by_split[s]]
            raise DatasetError(f"manifest {path}: category {category!r} has no {' and no '.join(empty)} images; "
                               f"every category needs normal train images and test images")
    return dict(splits)


def _row_sample(row: dict[str, str], manifest: Path) -> tuple[str, str, Sample]:
    label = _LABELS.get(row["label"].lower())
    if label is None:
        raise DatasetError(f"label {row['label']!r} is not one of {preview(list(_LABELS), 20)}")
    split = _SPLITS.get(row["split"].lower())
    if split is None:
        raise DatasetError(f"split {row['split']!r} is not one of {', '.join(_SPLITS)}")
    if split == "train" and label == 1:
        raise DatasetError("an anomalous image in the train split; train images must be normal")
    if not row["image"]:
        raise DatasetError("the image column is empty")
    image = _resolve(row["image"], manifest)
    mask = _resolve(row["mask"], manifest) if row["mask"] else None
    if label == 1 and mask is None:
        raise DatasetError(f"anomalous image {row['image']} has no mask; give its mask file in the mask column")
    absent = [str(p) for p in (image, mask) if p is not None and not p.is_file()]
    if absent:
        raise DatasetError(f"file(s) not found: {', '.join(absent)}")
    defect = row.get("defect") or ("anomalous" if label else "good")
    if label == 0 and defect != "good":
        raise DatasetError(f"normal image {row['image']} has defect {defect!r}; a normal image's defect is 'good'")
    category = row.get("category") or manifest.stem
    return category, split, Sample(row.get("id") or _default_id(image, manifest), image, mask, label, defect)


def _resolve(value: str, manifest: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else manifest.parent / path


def _default_id(image: Path, manifest: Path) -> str:
    try:
        return image.relative_to(manifest.parent).with_suffix("").as_posix()
    except ValueError:
        return image.stem

"""Dataset loaders: files on disk -> :class:`Sample` lists per category and split.

A dataset is named by a **spec**:

* ``synthetic-textures``: the built-in dataset, generated deterministically on first use and
  cached (:mod:`pixeval.data.synthetic`), read with the MVTec loader; ``synthetic-textures-v1``
  its first version (128-px crops);
* ``LAYOUT:PATH`` with ``LAYOUT`` one of :data:`LAYOUTS` (``mvtec``, ``ksdd2``, ``folder``,
  ``manifest``), e.g. ``mvtec:/data/mvtec_ad`` or ``manifest:lists/run1.csv``;
* a bare ``PATH``, whose layout is recognised from its files (a ``.csv`` file is a manifest; a
  folder is tried as KSDD2, then MVTec, then a plain folder).

Each layout's module docstring states the files it expects; a path that does not hold them raises
:class:`DatasetError` (a ``ValueError``) saying what was expected and what was found.
"""

from __future__ import annotations

from pathlib import Path

from pixeval.data.files import DatasetError, preview
from pixeval.data.folder import FolderDataset
from pixeval.data.ksdd2 import KSDD2Dataset
from pixeval.data.manifest import ManifestDataset
from pixeval.data.mvtec import MVTecDataset
from pixeval.data.types import CategoryData, Dataset, Sample

__all__ = ["LAYOUTS", "SYNTHETIC_TEXTURES", "CategoryData", "Dataset", "DatasetError", "Sample", "open_dataset"]

#: Layout name (as in ``LAYOUT:PATH``) -> loader class.
LAYOUTS: dict[str, type[Dataset]] = {cls.layout: cls for cls in
                                     (MVTecDataset, KSDD2Dataset, FolderDataset, ManifestDataset)}

#: The spec of the built-in dataset (:mod:`pixeval.data.synthetic`).
SYNTHETIC_TEXTURES = "synthetic-textures"
#: Specs of the built-in dataset's generator versions.
SYNTHETIC_VERSIONS = {SYNTHETIC_TEXTURES: 2, "synthetic-textures-v1": 1}


def open_dataset(spec: str | Path) -> Dataset:
    """The dataset named by ``spec`` (see the module docstring)."""
    text = str(spec)
    if text in SYNTHETIC_VERSIONS:
        from pixeval.data.synthetic import ensure_synthetic_textures

        try:
            root = ensure_synthetic_textures(version=SYNTHETIC_VERSIONS[text])
        except FileExistsError as exc:  # the cache folder holds something else
            raise DatasetError(str(exc)) from None
        return MVTecDataset(root, name=text)
    layout, sep, path = text.partition(":")
    if sep and layout in LAYOUTS:
        if not path:
            raise DatasetError(f"dataset spec {text!r} names no path; write {layout}:PATH")
        return LAYOUTS[layout](path)
    if sep and len(layout) > 1 and not Path(text).exists():  # "C:..." is a Windows drive, not a layout
        raise DatasetError(f"unknown dataset layout {layout!r} in {text!r}; {_spec_syntax()}")
    return _recognise(Path(text).expanduser())


def _recognise(path: Path) -> Dataset:
    """The dataset at ``path``, its layout recognised from its files."""
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return ManifestDataset(path)
        raise DatasetError(f"{path} is a file but not a .csv manifest; {_spec_syntax()}")
    if not path.is_dir():
        raise DatasetError(f"no dataset at {path}: it does not exist; {_spec_syntax()}")
    if (path / "train").is_dir() and any(p.stem.endswith("_GT") for p in (path / "test").glob("*_GT.*")):
        return KSDD2Dataset(path)
    for cls in (MVTecDataset, FolderDataset):
        try:
            return cls(path)
        except DatasetError:
            continue
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    raise DatasetError(f"{path} is in no layout pixeval knows (found {preview(found) or 'an empty folder'}); "
                       f"{_spec_syntax()}")


def _spec_syntax() -> str:
    return (f"expected {' or '.join(SYNTHETIC_VERSIONS)} or LAYOUT:PATH with LAYOUT one of {', '.join(LAYOUTS)} "
            "(`pixeval datasets` shows the files each layout expects)")

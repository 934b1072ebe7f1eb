"""The built-in ``synthetic-textures`` dataset: real texture photographs with drawn-in defects.

Source: the three texture photographs shipped with scikit-image (``skimage.data.gravel()``,
``grass()`` and ``brick()``; 512×512 grey, CC0), one category each, turned into 3-channel RGB.
Each photograph is split by rows: crops for ``train`` come from the top 60% (rows 0-306), crops
for ``test`` from the bottom 40% (rows 307-511), so no test pixel was seen in training. Crops are
128×128 at the photograph's own scale, flipped at random, and for the isotropic textures (gravel,
grass) also turned by a random multiple of 90 degrees (brick keeps its vertical courses).

Per category: 60 ``train/good`` crops; 40 test crops, of which 15 ``test/good`` and 5 of each
defect type in :data:`~pixeval.data.defects.DEFECT_TYPES` (``scratch``, ``stain``, ``patch``,
``colour``, ``hole``). Defect sizes are stratified: image ``NNN`` of ``n`` draws its size from the
``NNN``-th of ``n`` equal slices of ``[0, 1]``, so the numbers run from tiny defects (a few dozen
pixels, 0.2-1% of the image) to large ones (about 3-15%); about 2% of all test pixels are
anomalous. Masks are ``ground_truth/<defect>/NNN_mask.png``, 0/255, exactly the painted pixels
(see :mod:`pixeval.data.defects`). Everything is drawn from seeded numpy Generators, so the
files are byte-identical run to run on the same library versions.

The dataset is generated on first use into ``$PIXEVAL_DATA/synthetic-textures`` (or
``~/.cache/pixeval/synthetic-textures``) in a temporary folder that is renamed into place only
when complete; a marker file records the generator version, and a dataset with another version
is regenerated.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pixeval.data.defects import DEFECT_TYPES, paint_defect

#: Bump whenever the generated files change; cached datasets of another version are regenerated.
GENERATOR_VERSION = 1

#: Name of the marker file written last into a complete dataset.
MARKER = ".pixeval-synthetic-textures.json"

_SEED = 20240630
_CATEGORIES = ("gravel", "grass", "brick")
_ISOTROPIC = ("gravel", "grass")
_TRAIN_FRACTION = 0.6


@dataclass(frozen=True)
class SyntheticTexturesInfo:
    """What the built-in ``synthetic-textures`` dataset contains (shown by ``pixeval datasets``)."""

    name: str
    version: int
    categories: tuple[str, ...]
    defect_types: tuple[str, ...]
    image_size: int
    n_train: int
    n_test_good: int
    n_test_per_defect: int
    source: str
    licence: str

    @property
    def n_test(self) -> int:
        """Test images per category, normal and anomalous."""
        return self.n_test_good + self.n_test_per_defect * len(self.defect_types)

    def summary(self) -> str:
        """A few lines for people: categories, counts, defect types, source and licence."""
        return (
            f"{self.name} (built-in, generator v{self.version}): {', '.join(self.categories)}; "
            f"{self.image_size}×{self.image_size} RGB crops; per category {self.n_train} train, "
            f"{self.n_test} test ({self.n_test_good} good + {self.n_test_per_defect} each of "
            f"{', '.join(self.defect_types)}).\n"
            f"Source: {self.source}. Licence: {self.licence}."
        )


SYNTHETIC_TEXTURES = SyntheticTexturesInfo(
    name="synthetic-textures",
    version=GENERATOR_VERSION,
    categories=_CATEGORIES,
    defect_types=DEFECT_TYPES,
    image_size=128,
    n_train=60,
    n_test_good=15,
    n_test_per_defect=5,
    source=("scikit-image texture photographs skimage.data.gravel/grass/brick; train crops from "
            "the top 60% of each photograph, test crops from the bottom 40%; defects drawn in "
            "with exact masks"),
    licence="CC0 1.0 (the photographs, from CC0Textures and DeviantArt user linolafett)",
)


def default_root() -> Path:
    """``$PIXEVAL_DATA/synthetic-textures`` if ``PIXEVAL_DATA`` is set, else the user cache."""
    base = os.environ.get("PIXEVAL_DATA")
    parent = Path(base).expanduser() if base else Path.home() / ".cache" / "pixeval"
    return parent / SYNTHETIC_TEXTURES.name


def is_current(root: Path) -> bool:
    """Whether ``root`` holds a complete dataset written by this generator version."""
    marker = _read_marker(Path(root))
    return marker is not None and marker.get("version") == GENERATOR_VERSION


def ensure_synthetic_textures(root: Path | str | None = None, force: bool = False) -> Path:
    """Return the root of the ``synthetic-textures`` dataset, generating it first if needed.

    ``root`` defaults to :func:`default_root`. The dataset is (re)generated when ``root`` holds
    no complete dataset of the current generator version, or when ``force`` is true. It is
    written into a temporary sibling folder and renamed into place when complete, so a killed
    generation never leaves a dataset that looks complete. A non-empty ``root`` that is not a
    synthetic-textures dataset is never overwritten.
    """
    root = Path(root).expanduser() if root is not None else default_root()
    if not force and is_current(root):
        return root
    if root.exists() and not _replaceable(root):
        raise FileExistsError(
            f"{root} exists and is not a synthetic-textures dataset (no {MARKER} inside); "
            "give an empty or new folder for it, or set PIXEVAL_DATA to another place")
    root.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging = root.parent / f".{root.name}.tmp-{tag}"
    try:
        staging.mkdir()
        write_dataset(staging)
        if root.exists():
            retired = root.parent / f".{root.name}.old-{tag}"
            root.rename(retired)
            shutil.rmtree(retired)
        try:
            staging.rename(root)
        except OSError:
            # Another process put a dataset in place meanwhile; keep it if it is complete.
            if not is_current(root):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return root


def write_dataset(dest: Path) -> None:
    """Write every image and mask into the empty folder ``dest``, then the marker file."""
    digest = hashlib.sha256()
    n_files = 0
    for relative, data in _encoded_files():
        path = dest / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        digest.update(relative.encode() + b"\0" + hashlib.sha256(data).digest())
        n_files += 1
    marker = {"name": SYNTHETIC_TEXTURES.name, "version": GENERATOR_VERSION,
              "files": n_files, "sha256": digest.hexdigest()}
    (dest / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def generate_category(category: str) -> Iterator[tuple[str, str, np.ndarray, np.ndarray | None,
                                                       np.ndarray]]:
    """Yield ``(split, defect, image, mask, clean)`` for every image of ``category`` in order.

    ``split`` is ``"train"`` or ``"test"``, ``defect`` is ``"good"`` or a defect type, ``image``
    is ``uint8`` ``H×W×3`` RGB, ``mask`` is a ``bool`` ``H×W`` array (``None`` for good images)
    and ``clean`` is the crop before any defect was painted (``image`` itself for good ones).
    """
    if category not in _CATEGORIES:
        raise ValueError(f"unknown synthetic-textures category {category!r}; "
                         f"expected one of {', '.join(_CATEGORIES)}")
    info = SYNTHETIC_TEXTURES
    cat_index = _CATEGORIES.index(category)
    photo = _photograph(category)
    split_row = round(_TRAIN_FRACTION * photo.shape[0])
    train_part, test_part = photo[:split_row], photo[split_row:]
    turn = category in _ISOTROPIC
    donors = [test_part] + [_photograph(other) for other in _CATEGORIES if other != category]

    for i in range(info.n_train):
        rng = np.random.default_rng([_SEED, cat_index, 0, i])
        crop = _crop(train_part, rng, info.image_size, turn)
        yield "train", "good", crop, None, crop
    for i in range(info.n_test_good):
        rng = np.random.default_rng([_SEED, cat_index, 1, i])
        crop = _crop(test_part, rng, info.image_size, turn)
        yield "test", "good", crop, None, crop
    for d, defect in enumerate(info.defect_types):
        for i in range(info.n_test_per_defect):
            rng = np.random.default_rng([_SEED, cat_index, 2 + d, i])
            clean = _crop(test_part, rng, info.image_size, turn)
            # Stratified sizes: image i gets a size in the i-th of n equal slices of [0, 1].
            size = (i + rng.random()) / info.n_test_per_defect
            image, mask = paint_defect(defect, clean, rng, size, donors)
            yield "test", defect, image, mask, clean


def _encoded_files() -> Iterator[tuple[str, bytes]]:
    """``(relative path, PNG bytes)`` for every file of the dataset in MVTec AD layout."""
    for category in _CATEGORIES:
        counters: dict[tuple[str, str], int] = {}
        for split, defect, image, mask, _ in generate_category(category):
            number = counters.get((split, defect), 0)
            counters[(split, defect)] = number + 1
            yield f"{category}/{split}/{defect}/{number:03d}.png", _png(image)
            if mask is not None:
                yield (f"{category}/ground_truth/{defect}/{number:03d}_mask.png",
                       _png(mask.astype(np.uint8) * 255))


def _photograph(category: str) -> np.ndarray:
    """The scikit-image photograph of ``category`` as ``uint8`` 512×512×3 RGB."""
    import skimage.data

    grey = getattr(skimage.data, category)()
    return np.repeat(grey[..., None], 3, axis=2)


def _crop(part: np.ndarray, rng: np.random.Generator, size: int, turn: bool) -> np.ndarray:
    """A random ``size``×``size`` crop of ``part``, randomly flipped (and turned when ``turn``)."""
    h, w = part.shape[:2]
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    crop = part[y:y + size, x:x + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:
        crop = crop[::-1]
    if turn:
        crop = np.rot90(crop, int(rng.integers(4)))
    return np.ascontiguousarray(crop)


def _png(array: np.ndarray) -> bytes:
    """PNG bytes of a grey ``H×W`` or RGB ``H×W×3`` ``uint8`` array."""
    import cv2

    bgr = array[..., ::-1] if array.ndim == 3 else array  # OpenCV encodes channels as BGR
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(bgr))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {array.shape} image as PNG")
    return buffer.tobytes()


def _read_marker(root: Path) -> dict | None:
    try:
        return json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _replaceable(root: Path) -> bool:
    """An existing ``root`` may be replaced when it is an empty folder or holds our marker."""
    return root.is_dir() and ((root / MARKER).exists() or not any(root.iterdir()))

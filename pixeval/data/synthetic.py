"""The built-in ``synthetic-textures`` dataset: real texture photographs with drawn-in defects.

Source: the three texture photographs shipped with scikit-image (``skimage.data.gravel()``,
``grass()`` and ``brick()``; 512×512 grey, CC0), one category each, turned into 3-channel RGB.
Two generator versions exist; both are reachable by name.

**v2** (``synthetic-textures``, the default): in the regime of MVTec AD as the detectors see it,
images larger than the network input (MVTec's 1024-px photographs are shrunk 4x to 256; here
512-px images are shrunk 2x). Each photograph is split by columns: the left half (512×256) is
the source of the training texture, the right half of the test texture, so no test pixel was
ever seen in training. From each half, image quilting (:mod:`pixeval.data.quilting`, Efros &
Freeman 2001; 64-px blocks, 16-px overlap, tolerance 0.1) synthesises a larger texture
(1536×1536 for train, 1024×1024 for test) at the photograph's own scale; images are 512×512
crops of it, flipped at random, and for the isotropic textures (gravel, grass) turned by a
random multiple of 90 degrees. ``patch`` defects cut their material from the test textures
(their own, or another category's). Defects are painted at full resolution; their lengths in
pixels scale with the image side (:func:`pixeval.data.defects.pixel_scale`). The two halves of
a photograph differ somewhat (brick's right half has less contrast: grey-level std 21.9 in the
normal test images against 30.6 in training), so thresholds set on training images transfer
imperfectly to the test images (benchmarks/README.md, "Deployment thresholds on the built-in
data").

**v1** (``synthetic-textures-v1``): 128×128 crops at the photograph's scale; crops for ``train``
from the top 60% of each photograph (rows 0-306), for ``test`` from the bottom 40%; ``patch``
material from the photographs. Its files are unchanged since it was the default.

Both versions, per category: 60 ``train/good`` images; 40 test images, of which 15 ``test/good``
and 5 of each defect type in :data:`~pixeval.data.defects.DEFECT_TYPES` (``scratch``, ``stain``,
``patch``, ``colour``, ``hole``). Defect sizes are stratified: image ``NNN`` of ``n`` draws its
size from the ``NNN``-th of ``n`` equal slices of ``[0, 1]``, so the numbers run from tiny defects
(0.2-1% of the image) to large ones (about 3-15%). Masks are ``ground_truth/<defect>/NNN_mask.png``,
0/255, exactly the painted pixels (see :mod:`pixeval.data.defects`). Everything is drawn from
seeded numpy Generators, so the files are byte-identical run to run on the same library versions.

A dataset is generated on first use into ``$PIXEVAL_DATA/<name>`` (or ``~/.cache/pixeval/<name>``)
in a temporary folder that is renamed into place only when complete; a marker file records the
generator version, and a dataset with another version is regenerated.
"""

from __future__ import annotations

import dataclasses
import functools
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
from pixeval.data.quilting import quilt

#: The default generator version; bump when the default dataset's files change (cached datasets of
#: another version are regenerated). Earlier versions stay available under their own names.
GENERATOR_VERSION = 2

#: Name of the marker file written last into a complete dataset.
MARKER = ".pixeval-synthetic-textures.json"

_SEED = 20240630
_CATEGORIES = ("gravel", "grass", "brick")
_ISOTROPIC = ("gravel", "grass")
_TRAIN_FRACTION = 0.6
#: v2's quilting: block and overlap sizes (pixels), tolerance, and the quilted texture sizes.
_BLOCK, _OVERLAP, _TOLERANCE = 64, 16, 0.1
_TRAIN_TEXTURE, _TEST_TEXTURE = 1536, 1024


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
            f"{self.image_size}×{self.image_size} RGB images; per category {self.n_train} train, "
            f"{self.n_test} test ({self.n_test_good} good + {self.n_test_per_defect} each of "
            f"{', '.join(self.defect_types)}).\n"
            f"Source: {self.source}. Licence: {self.licence}."
        )


_V1 = SyntheticTexturesInfo(
    name="synthetic-textures-v1",
    version=1,
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

SYNTHETIC_TEXTURES = dataclasses.replace(
    _V1,
    name="synthetic-textures",
    version=GENERATOR_VERSION,
    image_size=512,
    source=("scikit-image texture photographs skimage.data.gravel/grass/brick; train images quilted "
            "(Efros & Freeman 2001) from the left half of each photograph, test images from the "
            "right half; defects drawn in at full resolution with exact masks"),
)

#: Every generator version by number.
VERSIONS: dict[int, SyntheticTexturesInfo] = {1: _V1, GENERATOR_VERSION: SYNTHETIC_TEXTURES}


def cache_root() -> Path:
    """Where pixeval keeps what it generates once and reuses (the built-in dataset, distilled
    teachers): ``$PIXEVAL_DATA`` if that is set, else ``~/.cache/pixeval``."""
    base = os.environ.get("PIXEVAL_DATA")
    return Path(base).expanduser() if base else Path.home() / ".cache" / "pixeval"


def default_root(version: int = GENERATOR_VERSION) -> Path:
    """``<cache_root()>/<name>``: the folder of the built-in dataset of generator ``version``."""
    return cache_root() / _info(version).name


def is_current(root: Path, version: int = GENERATOR_VERSION) -> bool:
    """Whether ``root`` holds a complete dataset written by generator ``version``."""
    marker = _read_marker(Path(root))
    return marker is not None and marker.get("version") == version


def ensure_synthetic_textures(root: Path | str | None = None, force: bool = False,
                              version: int = GENERATOR_VERSION) -> Path:
    """Return the root of the ``synthetic-textures`` dataset, generating it first if needed.

    ``root`` defaults to :func:`default_root`. The dataset is (re)generated when ``root`` holds
    no complete dataset of generator ``version`` (default: the current one), or when ``force``
    is true. It is written into a temporary sibling folder and renamed into place when complete,
    so a killed generation never leaves a dataset that looks complete. A non-empty ``root`` that is not a
    synthetic-textures dataset is never overwritten.
    """
    _info(version)  # an unknown version fails before anything is touched
    root = Path(root).expanduser() if root is not None else default_root(version)
    if not force and is_current(root, version):
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
        write_dataset(staging, version)
        if root.exists():
            retired = root.parent / f".{root.name}.old-{tag}"
            root.rename(retired)
            shutil.rmtree(retired)
        try:
            staging.rename(root)
        except OSError:
            # Another process put a dataset in place meanwhile; keep it if it is complete.
            if not is_current(root, version):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return root


def write_dataset(dest: Path, version: int = GENERATOR_VERSION) -> None:
    """Write every image and mask of ``version`` into the empty folder ``dest``, then the marker."""
    info = _info(version)
    digest = hashlib.sha256()
    n_files = 0
    for relative, data in _encoded_files(version):
        path = dest / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        digest.update(relative.encode() + b"\0" + hashlib.sha256(data).digest())
        n_files += 1
    marker = {"name": info.name, "version": version,
              "files": n_files, "sha256": digest.hexdigest()}
    (dest / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def generate_category(category: str, version: int = GENERATOR_VERSION
                      ) -> Iterator[tuple[str, str, np.ndarray, np.ndarray | None, np.ndarray]]:
    """Yield ``(split, defect, image, mask, clean)`` for every image of ``category`` in order.

    ``split`` is ``"train"`` or ``"test"``, ``defect`` is ``"good"`` or a defect type, ``image``
    is ``uint8`` ``H×W×3`` RGB, ``mask`` is a ``bool`` ``H×W`` array (``None`` for good images)
    and ``clean`` is the crop before any defect was painted (``image`` itself for good ones).
    """
    info = _info(version)
    if category not in _CATEGORIES:
        raise ValueError(f"unknown synthetic-textures category {category!r}; "
                         f"expected one of {', '.join(_CATEGORIES)}")
    cat_index = _CATEGORIES.index(category)
    turn = category in _ISOTROPIC
    if version == 1:
        photo = _photograph(category)
        split_row = round(_TRAIN_FRACTION * photo.shape[0])
        train_part, test_part = photo[:split_row], photo[split_row:]
        donors = [test_part] + [_photograph(other) for other in _CATEGORIES if other != category]
        seed: list[int] = [_SEED, cat_index]
    else:
        train_part = _texture(category, "train", version)
        test_part = _texture(category, "test", version)
        donors = [test_part] + [_texture(other, "test", version) for other in _CATEGORIES if other != category]
        seed = [_SEED, version, cat_index]
    yield from _images(info, seed, train_part, test_part, donors, turn)


def _images(info: SyntheticTexturesInfo, cat_seed: list[int], train_part: np.ndarray, test_part: np.ndarray,
            donors: list[np.ndarray], turn: bool
            ) -> Iterator[tuple[str, str, np.ndarray, np.ndarray | None, np.ndarray]]:
    """The images of one category: crops of ``train_part`` and ``test_part``, defects painted."""

    for i in range(info.n_train):
        rng = np.random.default_rng([*cat_seed, 0, i])
        crop = _crop(train_part, rng, info.image_size, turn)
        yield "train", "good", crop, None, crop
    for i in range(info.n_test_good):
        rng = np.random.default_rng([*cat_seed, 1, i])
        crop = _crop(test_part, rng, info.image_size, turn)
        yield "test", "good", crop, None, crop
    for d, defect in enumerate(info.defect_types):
        for i in range(info.n_test_per_defect):
            rng = np.random.default_rng([*cat_seed, 2 + d, i])
            clean = _crop(test_part, rng, info.image_size, turn)
            # Stratified sizes: image i gets a size in the i-th of n equal slices of [0, 1].
            size = (i + rng.random()) / info.n_test_per_defect
            image, mask = paint_defect(defect, clean, rng, size, donors)
            yield "test", defect, image, mask, clean


def _encoded_files(version: int) -> Iterator[tuple[str, bytes]]:
    """``(relative path, PNG bytes)`` for every file of the dataset in MVTec AD layout."""
    for category in _CATEGORIES:
        counters: dict[tuple[str, str], int] = {}
        for split, defect, image, mask, _ in generate_category(category, version):
            number = counters.get((split, defect), 0)
            counters[(split, defect)] = number + 1
            yield f"{category}/{split}/{defect}/{number:03d}.png", _png(image)
            if mask is not None:
                yield (f"{category}/ground_truth/{defect}/{number:03d}_mask.png",
                       _png(mask.astype(np.uint8) * 255))


def _info(version: int) -> SyntheticTexturesInfo:
    if version not in VERSIONS:
        raise ValueError(f"no synthetic-textures generator version {version}; "
                         f"versions: {', '.join(map(str, VERSIONS))}")
    return VERSIONS[version]


@functools.lru_cache(maxsize=6)
def _texture(category: str, split: str, version: int) -> np.ndarray:
    """The quilted texture (generator ``version`` >= 2) of ``category`` for ``split``: train from
    the photograph's left half, test from its right half (read-only; cached, as ``patch`` defects
    of every category use the test textures)."""
    photo = _photograph(category)
    half = photo.shape[1] // 2
    source, size = (photo[:, :half], _TRAIN_TEXTURE) if split == "train" else (photo[:, half:], _TEST_TEXTURE)
    rng = np.random.default_rng([_SEED, version, _CATEGORIES.index(category), split == "test"])
    texture = quilt(source, (size, size), _BLOCK, _OVERLAP, rng, _TOLERANCE)
    texture.flags.writeable = False
    return texture


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

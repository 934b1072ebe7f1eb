"""Pairing score-map files with their ground truth, in one of four layouts, or from a pair list.

``PREDS`` is a folder of score maps (:data:`pixeval.io.SCORE_MAP_SUFFIXES`, searched recursively);
``MASKS`` says where the ground truth is. The **layout** says how the two are paired:

``mvtec``, ``ksdd2``, ``folder``
    ``MASKS`` is a dataset that :func:`pixeval.data.open_dataset` reads in that layout (MVTec AD and
    its relatives BTAD/MPDD, KSDD2, a plain folder). Every map is one test image of the dataset:
    the map of test image ``<id>`` of category ``<cat>`` (``<id>`` being the image's path in the
    test split without extension, e.g. ``crack/003``) is ``PREDS/<cat>/test/<id>.<ext>``; the
    ``<cat>/`` and ``test/`` levels may be left out (``PREDS/<cat>/<id>``, or ``PREDS/<id>`` when
    the dataset has one category or ``PREDS`` is named after the category). Normal test images
    (MVTec ``good``) have no mask and are all normal. Every test image of a category that has maps
    needs a map (``allow_missing`` skips those that lack one).
``masks``
    ``MASKS`` is a folder of mask images, flat or in subfolders. A mask's **key** is its path
    relative to ``MASKS`` without extension and without a final ``_mask`` (MVTec AD) or ``_GT``
    (KSDD2), and a mask so suffixed wins over a file named without it (KSDD2 keeps ``<id>.png``
    beside ``<id>_GT.png``); a map pairs with the mask whose key is the end of the map's path relative to
    ``PREDS`` without extension (the longest such key). So ``PREDS/scratch/017.tiff`` pairs with
    ``MASKS/017_mask.png``, and ``PREDS/carpet/test/crack/000.tiff`` with
    ``MASKS/crack/000_mask.png``. A map without a mask is a normal image when it sits in a folder
    named ``good``, ``ok`` or ``normal``; elsewhere it is an error (``allow_missing`` skips it).
    Every mask needs a map, and no mask two.
``pairs``
    A **pair list**, a CSV file (:func:`read_pair_list`), lists each map with its mask. (A
    dataset *manifest*, :mod:`pixeval.data.manifest`, is another thing: it lists a dataset's
    images with their labels and splits.)

The **category** of a map is its dataset category (``mvtec``, ``ksdd2``, ``folder``), the name of
``MASKS`` (of its parent when ``MASKS`` is called ``ground_truth``, ``gt``, ``masks``, ``mask`` or
``test``; ``masks`` layout), or the pair list's ``category`` column. Its **defect** is the dataset's defect
type, the folder holding the map (``masks``; ``None`` for a map directly in ``PREDS``) or the
pair list's ``defect`` column; ``None`` means "``good`` if the mask is empty, else ``anomalous``".
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from pixeval.data import DatasetError, open_dataset
from pixeval.data.files import is_image_file, preview
from pixeval.errors import InputError
from pixeval.io import SCORE_MAP_SUFFIXES

__all__ = ["DATASET_LAYOUTS", "PAIRING_LAYOUTS", "Matching", "Pair", "attach_image_scores", "list_maps", "match",
           "read_pair_list"]

#: Layouts in which ``MASKS`` is a dataset read by :func:`pixeval.data.open_dataset`.
DATASET_LAYOUTS = ("mvtec", "ksdd2", "folder")
#: Every layout :func:`match` accepts (besides ``"auto"``); ``pairs`` is :func:`read_pair_list`'s.
PAIRING_LAYOUTS = (*DATASET_LAYOUTS, "masks")
#: Folder names whose maps are normal images when they have no mask (``masks`` layout).
NORMAL_MAP_FOLDERS = ("good", "ok", "normal")
#: Mask-name endings stripped before pairing by name (``masks`` layout).
MASK_SUFFIXES = ("_mask", "_GT")
#: Names of a ground-truth folder, whose parent names the category instead (``masks`` layout).
_GROUND_TRUTH_FOLDERS = ("ground_truth", "gt", "masks", "mask", "test")
_PREVIEW = 5


@dataclass(frozen=True)
class Pair:
    """One score map with its ground truth.

    ``name`` is the map's path relative to ``PREDS`` (to the pair list's folder for a pair list),
    ``mask_path`` is ``None`` for a normal image without a mask file, ``image_path`` is the test
    image the map belongs to when the dataset has it (its size is the map's expected size).
    """

    name: str
    map_path: Path
    mask_path: Path | None
    category: str
    defect: str | None
    image_path: Path | None = None
    image_score: float | None = None


@dataclass
class Matching:
    """The pairs found, the layout used (``description`` says where), and notes for the output."""

    layout: str
    description: str
    pairs: list[Pair]
    notes: list[str] = field(default_factory=list)

    @property
    def categories(self) -> list[str]:
        """Categories in order of first appearance."""
        return list(dict.fromkeys(p.category for p in self.pairs))


def list_maps(preds: Path, suffix: str | None = None) -> list[Path]:
    """The score-map files under ``preds`` (recursively; hidden files skipped), sorted; only those
    ending in ``suffix`` (e.g. ``".tiff"``) when it is given."""
    suffixes = (suffix.lower(),) if suffix else SCORE_MAP_SUFFIXES
    maps = sorted(p for p in preds.rglob("*") if p.suffix.lower() in suffixes and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(preds).parts))
    if not maps:
        raise InputError(f"no score maps ({', '.join(suffixes)}) under {preds}. Fix: pass the folder that holds "
                         "the score-map files as PREDS")
    return maps


def match(preds: str | Path, masks: str | Path, *, layout: str = "auto", map_suffix: str | None = None,
          allow_missing: bool = False) -> Matching:
    """Pair the maps under ``preds`` with the ground truth at ``masks`` (see the module docstring).

    ``layout="auto"`` reads ``masks`` as a dataset if :func:`pixeval.data.open_dataset` recognises
    it, and as a folder of masks otherwise. Raises :class:`InputError` naming the files that do not
    pair (the first few, then a count) and how to fix them.
    """
    preds, masks = Path(preds), Path(masks)
    for role, path in (("PREDS", preds), ("MASKS", masks)):
        if not path.is_dir():
            raise InputError(f"{role} {path} is not a folder" + (" (it does not exist)" if not path.exists() else "")
                             + (". Fix: pass the CSV with --pairs" if path.suffix.lower() == ".csv"
                                else ". Fix: check the path"))
    if layout not in ("auto", *PAIRING_LAYOUTS):
        raise InputError(f"unknown layout {layout!r}; expected auto or one of {', '.join(PAIRING_LAYOUTS)}")
    maps = list_maps(preds, map_suffix)
    if layout == "masks":
        return _match_mask_folder(preds, maps, masks, allow_missing)
    try:
        dataset = open_dataset(f"{layout}:{masks}" if layout != "auto" else masks)
    except DatasetError as exc:
        if layout != "auto":
            raise InputError(f"MASKS {masks} is not a {layout} dataset: {exc}") from None
        return _match_mask_folder(preds, maps, masks, allow_missing)
    if dataset.layout not in DATASET_LAYOUTS:
        return _match_mask_folder(preds, maps, masks, allow_missing)
    return _match_dataset(preds, maps, dataset, allow_missing)


def _match_dataset(preds: Path, maps: list[Path], dataset, allow_missing: bool) -> Matching:
    categories = list(dataset.categories)
    by_category: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    unplaced = []
    for path in maps:
        parts = list(path.relative_to(preds).with_suffix("").parts)
        if len(parts) > 1 and parts[0] in categories:
            category = parts.pop(0)
        elif len(categories) == 1 or preds.name in categories:
            category = categories[0] if len(categories) == 1 else preds.name
        else:
            unplaced.append(path)
            continue
        if len(parts) > 1 and parts[0] == "test":
            parts.pop(0)
        by_category[category]["/".join(parts)].append(path)
    if unplaced:
        raise InputError(
            f"{len(unplaced)} score map(s) are in no category folder of the dataset {dataset.root}: "
            f"{_names(unplaced, preds)}. Fix: put each map at PREDS/<category>/test/<defect>/<id>.<ext>, "
            f"<category> being one of {preview(categories, _PREVIEW)}")
    _check_unique(by_category, preds)

    pairs, unmatched, missing = [], [], []
    for category, keyed in by_category.items():
        try:
            samples = dataset.load_category(category).test
        except DatasetError as exc:
            raise InputError(f"cannot read the ground truth of category {category!r}: {exc}") from None
        ids = {s.image_id for s in samples}
        unmatched += [paths[0] for key, paths in keyed.items() if key not in ids]
        for sample in samples:
            if sample.image_id not in keyed:
                missing.append(sample)
                continue
            path = keyed[sample.image_id][0]
            pairs.append(Pair(path.relative_to(preds).as_posix(), path, sample.mask_path, category,
                              sample.defect, sample.image_path))
    if unmatched:
        example = unmatched[0].relative_to(preds)
        raise InputError(
            f"{len(unmatched)} score map(s) match no test image of {dataset.root}: {_names(unmatched, preds)}. "
            f"Fix: name each map after its test image, e.g. the map of {dataset.root}/<category>/test/"
            f"{example.parent.name}/{example.stem}.png is PREDS/<category>/test/{example.parent.name}/"
            f"{example.stem}{example.suffix}")
    notes = []
    if missing:
        listed = preview([str(s.image_path) for s in missing], _PREVIEW)
        if not allow_missing:
            raise InputError(f"{len(missing)} test image(s) have no score map: {listed}. Fix: write their maps, "
                             "or pass --allow-missing to score only the images that have one")
        notes.append(f"--allow-missing: skipped {len(missing)} test image(s) without a score map: {listed}")
    unused = [c for c in categories if c not in by_category]
    if unused:
        notes.append(f"scored {len(by_category)} of the dataset's {len(categories)} categories "
                     f"(no maps for {preview(unused, _PREVIEW)})")
    description = f"{dataset.layout} dataset {dataset.root}"
    return Matching(dataset.layout, description, pairs, notes)


def _match_mask_folder(preds: Path, maps: list[Path], masks: Path, allow_missing: bool) -> Matching:
    mask_files = sorted(p for p in masks.rglob("*") if is_image_file(p)
                        and not any(part.startswith(".") for part in p.relative_to(masks).parts))
    if not mask_files:
        raise InputError(f"MASKS {masks} holds no mask images and is no dataset pixeval knows. Fix: pass the "
                         "dataset root (MVTec AD, KSDD2 or a plain folder) or a folder of mask images")
    by_key: dict[tuple[str, ...], list[Path]] = defaultdict(list)
    for path in mask_files:
        parts = path.relative_to(masks).parts
        by_key[(*parts[:-1], _strip_mask_suffix(path.stem))].append(path)
    for key, paths in by_key.items():  # <id>_GT.png beside <id>.png: the image and its mask (KSDD2)
        suffixed = [p for p in paths if _strip_mask_suffix(p.stem) != p.stem]
        if len(suffixed) == 1:
            by_key[key] = suffixed
    twice = [paths for paths in by_key.values() if len(paths) > 1]
    if twice:
        raise InputError(f"{len(twice)} image(s) have two or more masks in {masks}, e.g. "
                         f"{', '.join(map(str, twice[0]))}. Fix: keep one mask per image, or list the pairs in "
                         "a --pairs list")
    depth = max(len(key) for key in by_key)
    maps_by_mask: dict[tuple[str, ...], list[Path]] = defaultdict(list)
    orphans = []
    for path in maps:
        parts = path.relative_to(preds).with_suffix("").parts
        key = next((parts[-n:] for n in range(min(depth, len(parts)), 0, -1) if parts[-n:] in by_key), None)
        if key is not None:
            maps_by_mask[key].append(path)
        elif any(folder.lower() in NORMAL_MAP_FOLDERS for folder in parts[:-1]):
            maps_by_mask[("", *parts)].append(path)  # a normal image: its own key, no mask
        else:
            orphans.append(path)
    _check_unique({"": maps_by_mask}, preds)

    category = masks.parent.name if masks.name.lower() in _GROUND_TRUTH_FOLDERS else masks.name
    pairs = []
    for key, (path,) in maps_by_mask.items():
        folders = path.relative_to(preds).parts[:-1]
        mask = by_key[key][0] if key in by_key else None
        pairs.append(Pair(path.relative_to(preds).as_posix(), path, mask, category,
                          folders[-1] if folders else None))
    notes = []
    if orphans:
        message = f"{len(orphans)} score map(s) have no mask in {masks}: {_names(orphans, preds)}"
        if not allow_missing:
            raise InputError(f"{message}. Fix: add their masks (<name>.png, <name>_mask.png or <name>_GT.png), "
                             f"move the maps of normal images into a folder named good/, or pass --allow-missing "
                             "to skip them")
        notes.append(f"--allow-missing: skipped {message}")
    lonely = [paths[0] for key, paths in by_key.items() if key not in maps_by_mask]
    if lonely:
        message = f"{len(lonely)} mask(s) have no score map under {preds}: {preview(list(map(str, lonely)), _PREVIEW)}"
        if not allow_missing:
            raise InputError(f"{message}. Fix: write their maps (named like the mask without _mask/_GT), or pass "
                             "--allow-missing to skip them")
        notes.append(f"--allow-missing: skipped {message}")
    pairs.sort(key=lambda p: p.name)
    return Matching("masks", f"folder of masks {masks}, paired by path", pairs, notes)


def _strip_mask_suffix(stem: str) -> str:
    for suffix in MASK_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _check_unique(keyed_by_category: dict[str, dict[str, list[Path]]], preds: Path) -> None:
    twice = [paths for keyed in keyed_by_category.values() for paths in keyed.values() if len(paths) > 1]
    if twice:
        raise InputError(
            f"{len(twice)} image(s) have two or more score maps, e.g. {_names(twice[0], preds)}. Fix: keep one map "
            "per image: pick one format with --map-suffix (e.g. --map-suffix .tiff) when the maps differ in format "
            "only, or pass as PREDS the folder that mirrors MASKS (e.g. PREDS/<category>)")


def _names(paths: list[Path], root: Path) -> str:
    return preview([str(root / p.relative_to(root)) for p in paths], _PREVIEW)


#: Columns of a pair list (:func:`read_pair_list`): the required one, then the optional ones.
PAIR_LIST_COLUMNS = ("map", "mask", "image_score", "category", "defect")


def read_pair_list(path: str | Path) -> Matching:
    """The pairs listed in the CSV pair list at ``path``.

    Columns (names ignore case; order free): ``map`` (required; the score-map file, absolute or
    relative to the pair list's folder), ``mask`` (the mask file, same rule; empty for a normal image
    without a mask), ``image_score`` (a number for every row, or the column left out: then image
    scores are the maps' maxima), ``category`` (default: the pair list's file name without
    extension), ``defect`` (default: ``good`` for an empty mask, ``anomalous`` otherwise).
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = {name.strip().lower(): name for name in reader.fieldnames or []}
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read pair list {path}: {exc}") from None
    unknown = sorted(set(header) - set(PAIR_LIST_COLUMNS))
    if "map" not in header or unknown:
        raise InputError(f"pair list {path} has columns {', '.join(header) or 'none'}; expected map (required) and "
                         f"optionally {', '.join(PAIR_LIST_COLUMNS[1:])}"
                         + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    if not rows:
        raise InputError(f"pair list {path} lists no maps. Fix: add one row per score map")
    base = path.parent

    def cell(row: dict, column: str) -> str:
        return (row.get(header[column]) or "").strip() if column in header else ""

    pairs, absent, bad_scores = [], [], []
    for line, row in enumerate(rows, start=2):
        map_path = base / cell(row, "map")
        mask_text = cell(row, "mask")
        mask_path = base / mask_text if mask_text else None
        absent += [p for p in (map_path, mask_path) if p is not None and not p.is_file()]
        score = None
        if "image_score" in header:
            try:
                score = float(cell(row, "image_score"))
            except ValueError:
                bad_scores.append(f"line {line}: {cell(row, 'image_score')!r}")
        pairs.append(Pair(cell(row, "map"), map_path, mask_path, cell(row, "category") or path.stem,
                          cell(row, "defect") or None, image_score=score))
    if absent:
        raise InputError(f"{len(absent)} file(s) listed in pair list {path} do not exist: "
                         f"{preview(list(map(str, absent)), _PREVIEW)}. Fix: paths are absolute or relative to "
                         f"{base}")
    if bad_scores:
        raise InputError(f"pair list {path} has {len(bad_scores)} image_score(s) that are not numbers: "
                         f"{preview(bad_scores, _PREVIEW)}. Fix: give every row a number, or drop the column")
    for column, what in (("map", "score map"), ("mask", "mask")):
        counts = Counter(str(getattr(p, f"{column}_path").resolve()) for p in pairs
                         if getattr(p, f"{column}_path") is not None)
        repeated = [name for name, n in counts.items() if n > 1]
        if repeated:
            raise InputError(f"pair list {path} lists {len(repeated)} {what}(s) on more than one row: "
                             f"{preview(repeated, _PREVIEW)}. Fix: one row per image")
    return Matching("pairs", f"pair list {path}", pairs)


def attach_image_scores(matching: Matching, csv_path: str | Path) -> Matching:
    """``matching`` with image scores read from the CSV ``csv_path``, whose columns are ``map`` (the
    map's name: its path relative to ``PREDS``, as in ``--per-image`` output) and ``image_score``.
    Every map needs exactly one row and every row a map."""
    csv_path = Path(csv_path)
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = {name.strip().lower(): name for name in reader.fieldnames or []}
            if not {"map", "image_score"} <= set(header):
                raise InputError(f"image-score file {csv_path} has columns {', '.join(header) or 'none'}; expected "
                                 "map (the map's path relative to PREDS) and image_score")
            rows = [(r[header["map"]].strip(), r[header["image_score"]].strip()) for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read image-score file {csv_path}: {exc}") from None
    scores: dict[str, float] = {}
    problems = []
    for line, (name, text) in enumerate(rows, start=2):
        try:
            value = float(text)
        except ValueError:
            problems.append(f"line {line}: score {text!r} is not a number")
            continue
        if name in scores:
            problems.append(f"line {line}: {name} listed twice")
        scores[name] = value
    names = {p.name for p in matching.pairs}
    problems += [f"no map {n}" for n in scores if n not in names]
    problems += [f"no score for {n}" for n in sorted(names - set(scores))]
    if problems:
        raise InputError(f"image-score file {csv_path} does not match the maps: {preview(problems, _PREVIEW)} "
                         f"({len(problems)} problem(s)). Fix: one row per map, named by its path relative to PREDS")
    pairs = [replace(p, image_score=scores[p.name]) for p in matching.pairs]
    notes = [*matching.notes, f"image scores from {csv_path}"]
    return Matching(matching.layout, matching.description, pairs, notes)

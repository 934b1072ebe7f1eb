"""``pixeval score``: score anomaly maps saved as files against ground-truth masks.

The work is four steps, each in its own module: pair the map files with the ground truth
(:mod:`pixeval.matching`), read them in parallel threads (:mod:`pixeval.io`; TIFF and PNG decoding
release the GIL), compute the metrics one category at a time (:func:`pixeval.metrics.evaluate`, so
memory holds two categories' maps: the one scored and the next, read meanwhile), and render the table (:mod:`pixeval.tables`). The table goes
to standard output (or ``--output``); the layout used, a summary of what was read, notes and the
progress bar go to standard error, so ``--format csv > table.csv`` stays clean.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click
import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from pixeval.data.files import DatasetError, image_size
from pixeval.io import InputError, read_mask, read_score_map, resize_map
from pixeval.matching import LAYOUTS, Matching, Pair, attach_image_scores, match, read_manifest
from pixeval.metrics import MetricReport, average_precision, evaluate, f1_max
from pixeval.tables import FORMATS, format_table, table_records

#: Report field -> table column, in table order (the AUPRO column is named after the FPR limit).
METRIC_COLUMNS = {"pixel_auroc": "P-AUROC", "pixel_aupr": "P-AUPR", "pixel_f1_max": "P-F1",
                  "pixel_f1_threshold": "P-F1 thr", "pixel_aupro": "P-AUPRO@{fpr_limit:g}",
                  "image_auroc": "I-AUROC", "image_aupr": "I-AUPR", "image_f1_max": "I-F1"}
#: The same for the metrics at a given ``--threshold``.
THRESHOLD_COLUMNS = {"pixel_f1_at_threshold": "P-F1@{threshold:g}",
                     "pixel_precision_at_threshold": "P-Prec@{threshold:g}",
                     "pixel_recall_at_threshold": "P-Rec@{threshold:g}"}
#: Columns whose mean over rows means nothing (left empty in the mean row).
NO_MEAN = ("pixel_f1_threshold",)
_SHOWN_ERRORS = 3


@dataclass
class Options:
    """What to compute, as given on the command line."""

    by: str = "category"
    fpr_limit: float = 0.3
    threshold: float | None = None
    bootstrap: int = 0
    confidence: float = 0.95
    seed: int = 0
    resize: bool = False
    npz_key: str | None = None
    jobs: int = 4


@dataclass
class Loaded:
    """One pair read from disk: scores and mask of the same shape."""

    pair: Pair
    scores: np.ndarray
    mask: np.ndarray
    quantised: str | None  # the stored integer dtype of a quantised map, else None
    resized: bool

    @property
    def defect(self) -> str:
        """The pair's defect, or ``good``/``anomalous`` from the mask when the layout gives none."""
        return self.pair.defect or ("anomalous" if self.mask.any() else "good")


@dataclass
class Row:
    """One table row: its category, defect (``None`` when rows are categories) and report."""

    category: str
    defect: str | None
    report: MetricReport


@dataclass
class Result:
    """Everything ``pixeval score`` computed: rows, per-image rows, counts, notes and timings."""

    rows: list[Row]
    per_image: list[dict]
    counts: dict[str, int]
    notes: list[str]
    read_seconds: float  # waiting for the reading threads (reading overlaps the previous category's metrics)
    metric_seconds: float


def load_pair(pair: Pair, options: Options) -> Loaded:
    """Read ``pair``'s map and mask, checking that their sizes agree (or resizing with ``resize``)."""
    score_map = read_score_map(pair.map_path, options.npz_key)
    scores = score_map.values
    if pair.mask_path is not None:
        mask = read_mask(pair.mask_path)
        reference, what = mask.shape, f"its mask {pair.mask_path}"
    else:
        mask = None
        reference, what = scores.shape, ""
        if pair.image_path is not None:
            try:
                reference, what = image_size(pair.image_path), f"its image {pair.image_path}"
            except DatasetError as exc:
                raise InputError(f"cannot read the size of test image {pair.image_path}: {exc}") from None
    resized = scores.shape != reference
    if resized:
        if not options.resize:
            raise InputError(f"score map {pair.map_path} is {_size(scores.shape)} but {what} is {_size(reference)} "
                             "(W×H). Fix: save maps at the image size, or pass --resize to resize maps "
                             "bilinearly to it")
        scores = resize_map(scores, reference)
    if mask is None:
        mask = np.zeros(reference, dtype=bool)
    quantised = str(score_map.stored_dtype) if score_map.quantised else None
    return Loaded(pair, scores, mask, quantised, resized)


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}×{shape[0]}"


def submit_reads(pairs: list[Pair], options: Options, executor: ThreadPoolExecutor, progress: tqdm) -> list[Future]:
    """Start reading ``pairs`` in ``executor``'s threads; each future holds a :class:`Loaded` or
    the :class:`InputError` that reading raised. :func:`collect` waits for them."""
    def task(pair: Pair) -> Loaded | InputError:
        try:
            return load_pair(pair, options)
        except InputError as exc:
            return exc
        finally:
            progress.update()

    return [executor.submit(task, pair) for pair in pairs]


def collect(futures: list[Future]) -> list[Loaded]:
    """The pairs read by :func:`submit_reads`, in order; every failure is collected into one
    :class:`InputError` that quotes the first few and counts the rest."""
    results = [future.result() for future in futures]
    failures = [r for r in results if isinstance(r, InputError)]
    if failures:
        shown = "\n  ".join(str(f) for f in failures[:_SHOWN_ERRORS])
        more = f"\n  ... and {len(failures) - _SHOWN_ERRORS} more" if len(failures) > _SHOWN_ERRORS else ""
        raise InputError(f"{len(failures)} of {len(futures)} score maps cannot be scored:\n  {shown}{more}")
    return results


def groups_of(loaded: list[Loaded], by: str) -> list[tuple[str | None, list[Loaded]]]:
    """The image sets of one category's rows: the whole category (``by="category"``), or one set
    per defect type other than ``good``, each together with the category's good images, so every
    row has normal images for its image metrics and normal pixels from normal images."""
    if by == "category":
        return [(None, loaded)]
    good = [item for item in loaded if item.defect == "good"]
    defects = dict.fromkeys(item.defect for item in loaded if item.defect != "good")
    return [(defect, [item for item in loaded if item.defect == defect] + good) for defect in defects]


def evaluate_set(items: list[Loaded], options: Options, where: str, notes: list[str]) -> MetricReport:
    """:func:`pixeval.metrics.evaluate` on ``items``; its warnings become ``notes`` naming ``where``."""
    given = [item.pair.image_score for item in items]
    image_scores = np.array(given, dtype=np.float64) if None not in given else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            report = evaluate([item.scores for item in items], [item.mask for item in items], image_scores,
                              fpr_limit=options.fpr_limit, threshold=options.threshold,
                              bootstrap=options.bootstrap, confidence=options.confidence, seed=options.seed)
        except ValueError as exc:
            raise InputError(f"cannot score {where}: {exc}") from None
    notes += [f"{where}: {message}" for message in dict.fromkeys(str(w.message) for w in caught)]
    return report


def per_image_rows(items: list[Loaded], threshold: float) -> list[dict]:
    """Each image's own metrics (see ``pixeval score --help``, option ``--per-image``)."""
    rows = []
    for item in items:
        scores, labels = item.scores.ravel(), item.mask.ravel()
        n_anomalous = int(np.count_nonzero(labels))
        n_normal = labels.size - n_anomalous
        ap = average_precision(scores, labels) if n_anomalous and n_normal else np.nan
        f1 = f1_max(scores, labels)[0] if n_anomalous and n_normal else np.nan
        false_positives = np.count_nonzero(scores[~labels] >= threshold) if n_normal else 0
        rows.append({"map": item.pair.name, "category": item.pair.category, "defect": item.defect,
                     "image_score": item.pair.image_score if item.pair.image_score is not None
                     else float(item.scores.max()),
                     "pixels": labels.size, "anomalous_pixels": n_anomalous, "pixel_ap": ap, "pixel_f1_max": f1,
                     "threshold": threshold,
                     "false_positive_fraction": false_positives / n_normal if n_normal else np.nan})
    return rows


def score(matching: Matching, options: Options, *, per_image: bool = False, progress: bool = True) -> Result:
    """Read every pair of ``matching`` and compute the table's rows, one category at a time (memory
    holds two categories' maps: the next one is read while the metrics of the current one run)."""
    notes = list(matching.notes)
    rows, image_rows = [], []
    counts = dict.fromkeys(("images", "anomalous_images", "regions", "pixels", "anomalous_pixels"), 0)
    quantised, resized = set(), 0
    read_seconds = metric_seconds = 0.0
    bar = tqdm(total=len(matching.pairs), desc="reading", unit="map", file=sys.stderr,
               disable=None if progress else True)
    categories = matching.categories
    with bar, ThreadPoolExecutor(max_workers=options.jobs) as executor:
        def submit(index: int) -> list[Future]:
            pairs = [p for p in matching.pairs if p.category == categories[index]] if index < len(categories) else []
            return submit_reads(pairs, options, executor, bar)

        pending = submit(0)
        for index, category in enumerate(categories):
            start = time.perf_counter()
            loaded = collect(pending)
            pending = submit(index + 1)  # read the next category while this one's metrics run
            middle = time.perf_counter()
            quantised |= {item.quantised for item in loaded if item.quantised}
            resized += sum(item.resized for item in loaded)
            category_rows = [Row(category, defect, evaluate_set(items, options, _where(category, defect), notes))
                             for defect, items in groups_of(loaded, options.by)]
            rows += category_rows
            counts["images"] += len(loaded)
            counts["anomalous_images"] += sum(bool(item.mask.any()) for item in loaded)
            counts["pixels"] += sum(item.mask.size for item in loaded)
            counts["anomalous_pixels"] += sum(int(np.count_nonzero(item.mask)) for item in loaded)
            counts["regions"] += sum(row.report.n_regions for row in category_rows)  # good images have none
            if per_image:
                threshold = options.threshold
                if threshold is None:
                    whole = category_rows[0].report if options.by == "category" else \
                        evaluate_set(loaded, options, _where(category, None), [])
                    threshold = whole.pixel_f1_threshold
                image_rows += per_image_rows(loaded, threshold)
            metric_seconds += time.perf_counter() - middle
            read_seconds += middle - start
    if counts["anomalous_pixels"] == 0:
        raise InputError(f"all {counts['images']} images are normal: no mask has an anomalous pixel, so no pixel "
                         f"metric is defined ({matching.description}). Fix: check that MASKS holds the ground "
                         "truth of these maps (masks with values > 0 on the defects)")
    if quantised:
        notes.append(f"score maps stored as {', '.join(sorted(quantised))} are quantised: pixels with different "
                     "scores before quantisation tie, which changes every metric; save float32 TIFF maps")
    if resized:
        notes.append(f"--resize: {resized} score map(s) resized bilinearly to their mask's (or image's) size")
    return Result(rows, image_rows, counts, notes, read_seconds, metric_seconds)


def _where(category: str, defect: str | None) -> str:
    return category if defect is None else f"{category}/{defect}"


def table(result: Result, options: Options) -> tuple[pd.DataFrame, dict[str, tuple[str, str]]]:
    """The results table (rows, then their mean when there are several) and its interval columns."""
    columns = {field: name.format(fpr_limit=options.fpr_limit, threshold=options.threshold)
               for field, name in (METRIC_COLUMNS | (THRESHOLD_COLUMNS if options.threshold is not None else {})).items()}
    records, intervals = [], {}
    for row in result.rows:
        record = {"category": row.category} | ({"defect": row.defect} if options.by == "defect" else {})
        record["images"] = row.report.n_images
        for field, name in columns.items():
            record[name] = getattr(row.report, field)
        for field, (low, high) in row.report.intervals.items():
            if field in columns:
                record[f"{columns[field]} low"], record[f"{columns[field]} high"] = low, high
                intervals[columns[field]] = (f"{columns[field]} low", f"{columns[field]} high")
        records.append(record)
    df = pd.DataFrame(records).astype({"images": "Int64"})
    if len(df) > 1:
        mean = {"category": "mean"} | ({"defect": ""} if options.by == "defect" else {})
        means = df.drop(columns=[columns[f] for f in NO_MEAN] + list(mean) + ["images"]
                        + [c for bounds in intervals.values() for c in bounds]).mean(skipna=False)
        df = pd.concat([df, pd.DataFrame([mean | means.to_dict()])], ignore_index=True)
    return df, intervals


def caption(matching: Matching, options: Options, notes: list[str]) -> str:
    """What the table shows and how it was made, one sentence per line."""
    lines = [f"Ground truth: {matching.description} ({matching.layout} layout)."]
    lines.append("P-F1 is F1-max: the best F1 over all thresholds, chosen on this test set (P-F1 thr); "
                 "image metrics use " + ("the given image scores." if any(p.image_score is not None
                                                                        for p in matching.pairs)
                                         else "each map's maximum as image score."))
    if options.by == "defect":
        lines.append("Each defect row scores that defect's images together with the category's good images.")
    if options.threshold is not None:
        lines.append(f"@{options.threshold:g}: pixels scoring >= {options.threshold:g} are predicted anomalous.")
    if options.bootstrap:
        lines.append(f"[low, high]: {options.confidence:.0%} bootstrap intervals over images "
                     f"({options.bootstrap} resamples, seed {options.seed}); none for the mean.")
    return "\n".join(lines + notes)


def render(result: Result, matching: Matching, options: Options, fmt: str) -> str:
    """The output document in ``fmt``; JSON carries every report field at full precision."""
    df, intervals = table(result, options)
    if fmt != "json":
        return format_table(df, fmt, caption=caption(matching, options, result.notes), intervals=intervals)
    document = {
        "layout": matching.layout, "source": matching.description, "notes": result.notes,
        "options": {"by": options.by, "fpr_limit": options.fpr_limit, "threshold": options.threshold,
                    "bootstrap": options.bootstrap, "confidence": options.confidence, "seed": options.seed,
                    "resize": options.resize},
        "summary": result.counts,
        "rows": [{"category": row.category, "defect": row.defect} | row.report.to_dict() for row in result.rows],
        "table": table_records(df),
    }
    return json.dumps(_json_ready(document), indent=2, allow_nan=False) + "\n"


def _json_ready(value):
    """``value`` with NumPy scalars made Python ones and NaN made ``None`` (JSON ``null``)."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and np.isnan(value) else value


def summary_line(result: Result) -> str:
    """What was read and how long it took, for standard error."""
    c = result.counts
    share = c["anomalous_pixels"] / c["pixels"] if c["pixels"] else 0.0
    return (f"read {c['images']} images ({c['anomalous_images']} anomalous, {c['regions']} regions, "
            f"{c['pixels']:,} pixels of which {c['anomalous_pixels']:,} = {share:.3%} anomalous) "
            f"in {result.read_seconds:.1f} s (waiting for the reading threads); metrics in "
            f"{result.metric_seconds:.1f} s")


class BadInput(click.ClickException):
    """Input that cannot be scored: printed as ``Error: ...`` with exit code 2, no traceback."""

    exit_code = 2


HELP = """Score anomaly maps saved as files against ground-truth masks.

\b
PREDS holds one score map per test image (float32/float16 .tiff or .tif, .npy, .npz, or
uint8/uint16 .png, flagged as quantised). MASKS is the ground truth, paired by layout:
  mvtec    MASKS is an MVTec AD-style dataset root: the map of test image
           MASKS/<cat>/test/<defect>/<id>.png is PREDS/<cat>/test/<defect>/<id>.tiff
           (the <cat>/ and test/ levels may be left out); good images have no mask.
  ksdd2    MASKS is a KSDD2 root (test/<id>.png with <id>_GT.png); maps PREDS/<id>.tiff.
  folder   MASKS is a plain dataset folder (normal/, abnormal/, masks/).
  masks    MASKS is a folder of masks; a map pairs with the mask whose path (without
           extension and _mask/_GT) ends the map's path; maps in good/ need no mask.
  --manifest FILE.csv lists the pairs instead (columns map, mask, image_score,
  category, defect; only map is required).
The layout is detected from MASKS and printed; --layout forces one.

\b
The table has one row per category (or per defect type with --by defect), then
their mean: P-AUROC, P-AUPR (step-wise average precision), P-F1 (F1-max, with its
threshold), P-AUPRO up to --fpr-limit, I-AUROC, I-AUPR, I-F1. Image scores are
the maps' maxima unless --image-scores or the manifest gives them.

\b
Examples:
  pixeval score preds/ mvtec_ad/
  pixeval score preds/ mvtec_ad/ --by defect --format markdown -o table.md
  pixeval score preds/ ksdd2/ --threshold 0.5 --bootstrap 1000
  pixeval score --manifest pairs.csv --format json
  pixeval score preds/ masks/ --resize --per-image images.csv
"""


@click.command("score", help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("preds", required=False, type=click.Path(path_type=Path))
@click.argument("masks", required=False, type=click.Path(path_type=Path))
@click.option("--manifest", type=click.Path(path_type=Path, dir_okay=False),
              help="CSV listing each map with its mask (instead of PREDS MASKS); paths relative to it.")
@click.option("--layout", type=click.Choice(["auto", *LAYOUTS]), default="auto", show_default=True,
              help="How maps pair with masks (see above).")
@click.option("--map-suffix", metavar="EXT", help="Read only maps ending in EXT (e.g. .tiff) when PREDS holds others.")
@click.option("--npz-key", metavar="KEY", help="Array to read from .npz maps that hold several.")
@click.option("--by", type=click.Choice(["category", "defect"]), default="category", show_default=True,
              help="Rows per category, or per defect type (each with its category's good images).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="Output format; csv and json keep full precision.")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the table to this file instead of standard output.")
@click.option("--fpr-limit", type=click.FloatRange(0, 1, min_open=True), default=0.3, show_default=True,
              help="FPR integration limit of AUPRO.")
@click.option("--threshold", type=float,
              help="Also report pixel F1, precision and recall at score >= THRESHOLD (e.g. chosen on validation data).")
@click.option("--bootstrap", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Bootstrap confidence intervals from N resamples of the images.")
@click.option("--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
              show_default=True, help="Level of the bootstrap intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--image-scores", type=click.Path(path_type=Path, dir_okay=False),
              help="CSV with columns map (path relative to PREDS) and image_score, instead of map maxima.")
@click.option("--per-image", type=click.Path(path_type=Path, dir_okay=False),
              help="Write each image's metrics to this CSV: image score, pixel AP and F1-max (images with "
                   "anomalous and normal pixels), and false_positive_fraction = share of the image's normal "
                   "pixels scoring >= threshold, the threshold being --threshold or else the category's "
                   "P-F1 threshold.")
@click.option("--resize", is_flag=True,
              help="Resize maps bilinearly to their mask's (image's) size instead of stopping with an error.")
@click.option("--allow-missing", is_flag=True,
              help="Skip test images without a map and maps without a mask (reported) instead of stopping.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=4, show_default=True,
              help="Threads reading files.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, layout line or summary on standard error.")
def command(preds, masks, manifest, layout, map_suffix, npz_key, by, fmt, output, fpr_limit, threshold, bootstrap,
            confidence, seed, image_scores, per_image, resize, allow_missing, jobs, quiet) -> None:
    options = Options(by=by, fpr_limit=fpr_limit, threshold=threshold, bootstrap=bootstrap, confidence=confidence,
                      seed=seed, resize=resize, npz_key=npz_key, jobs=jobs)
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # our messages name bad files
    try:
        matching = _matching(preds, masks, manifest, layout, map_suffix, allow_missing)
        if image_scores is not None:
            matching = attach_image_scores(matching, image_scores)
        if not quiet:
            click.echo(f"layout: {matching.layout} ({matching.description}); {len(matching.pairs)} maps", err=True)
        result = score(matching, options, per_image=per_image is not None, progress=not quiet)
        text = render(result, matching, options, fmt)
        if per_image is not None:
            _write(per_image, pd.DataFrame(result.per_image).to_csv(index=False, lineterminator="\n"))
        if output is not None:
            _write(output, text)
    except InputError as exc:
        raise BadInput(str(exc)) from None
    if not quiet:
        click.echo(summary_line(result), err=True)
        if fmt == "csv" or output is not None:  # otherwise the notes are in what goes to the terminal
            for note in result.notes:
                click.echo(f"note: {note}", err=True)
    if output is None:
        click.echo(text, nl=False)
    elif not quiet:
        click.echo(f"wrote {output}", err=True)


def _matching(preds, masks, manifest, layout, map_suffix, allow_missing) -> Matching:
    if manifest is not None:
        if preds is not None or masks is not None:
            raise InputError("give either PREDS MASKS or --manifest, not both")
        if not manifest.is_file():
            raise InputError(f"manifest {manifest} does not exist")
        return read_manifest(manifest)
    if preds is None or masks is None:
        raise InputError("missing PREDS and MASKS: give the folder of score maps and the ground truth "
                         "(e.g. pixeval score preds/ mvtec_ad/), or --manifest FILE.csv")
    return match(preds, masks, layout=layout, map_suffix=map_suffix, allow_missing=allow_missing)


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None

"""``pixeval score``: score anomaly maps saved as files against ground-truth masks.

A thin click layer over :mod:`pixeval.scoring` (pair, read, compute, render): the table goes to
standard output (or ``--output``); the layout used, a summary of what was read, notes and the
progress bar go to standard error, so ``--format csv > table.csv`` stays clean.
"""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import click
import cv2
import pandas as pd

from pixeval.errors import InputError
from pixeval.metrics.by_size import DEFAULT_EDGES
from pixeval.metrics.catalogue import CATALOGUE, metric_definition, metric_title
from pixeval.scoring import (PAIRING_LAYOUTS, ROW_GROUPINGS, Matching, ScoreOptions, attach_image_scores, match,
                             read_pair_list, score_matching, threshold_from_folder)
from pixeval.tables import FORMATS

HELP_TEMPLATE = """Score anomaly maps saved as files against ground-truth masks.

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
  --pairs FILE.csv lists the pairs instead (columns map, mask, image_score,
  category, defect; only map is required).
The layout is detected from MASKS and printed; --layout forces one.

\b
The table has one row per category (or per defect type with --by defect), then
their mean; its columns (@0.3 is --fpr-limit, @t is --threshold or the one
set by --threshold-from; AUPIMO and B- only with --extended):
{metrics}
Image scores are the maps' maxima unless --image-scores or the pair list gives them.
With --by size the table has one row per category and defect-size bin instead:
the bin's regions, P-AUPR and P-AUPRO of its anomalous pixels against all normal
pixels, the mean overlap of its regions at t and the share detected (overlap >=
0.5), t being --threshold (or --threshold-from's) or else the category's P-F1max
threshold.

\b
Examples:
  pixeval score preds/ mvtec_ad/
  pixeval score preds/ mvtec_ad/ --by defect --format markdown -o table.md
  pixeval score preds/ ksdd2/ --threshold 0.5 --bootstrap 1000
  pixeval score preds/ mvtec_ad/ --threshold-from val_good_preds/ --target-fpr 0.01
  pixeval score preds/ mvtec_ad/ --by size --size-edges 0.001,0.01
  pixeval score preds/ mvtec_ad/ --extended
  pixeval score --pairs pairs.csv --format json
  pixeval score preds/ masks/ --resize --per-image images.csv
"""


def _metric_lines(width: int = 78) -> str:
    """The metric catalogue as help text: each title, then its definition wrapped beside it."""
    titles = {info.name: metric_title(info.name) for info in CATALOGUE}
    indent = 4 + max(map(len, titles.values()))
    return "\n".join(textwrap.fill(metric_definition(name), width, initial_indent=f"  {title:<{indent - 2}}",
                                    subsequent_indent=" " * indent, break_on_hyphens=False)
                     for name, title in titles.items())


HELP = HELP_TEMPLATE.format(metrics=_metric_lines())


@click.command("score", help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("preds", required=False, type=click.Path(path_type=Path))
@click.argument("masks", required=False, type=click.Path(path_type=Path))
@click.option("--pairs", type=click.Path(path_type=Path, dir_okay=False),
              help="CSV listing each map with its mask (instead of PREDS MASKS); paths relative to it.")
@click.option("--layout", type=click.Choice(["auto", *PAIRING_LAYOUTS]), default="auto", show_default=True,
              help="How maps pair with masks (see above).")
@click.option("--map-suffix", metavar="EXT", help="Read only maps ending in EXT (e.g. .tiff) when PREDS holds others.")
@click.option("--npz-key", metavar="KEY", help="Array to read from .npz maps that hold several.")
@click.option("--by", type=click.Choice(ROW_GROUPINGS), default="category", show_default=True,
              help="Rows per category, per defect type (each with its category's good images), or per category "
                   "and defect size bin (see --size-edges).")
@click.option("--size-edges", metavar="F1,F2,...", default=",".join(f"{e:g}" for e in DEFAULT_EDGES),
              show_default=True, help="With --by size: the bin edges, as shares of the image's pixels (0.001 = 0.1 %).")
@click.option("--extended", is_flag=True,
              help="Also AUPIMO and boundary F1 / Boundary IoU (at P-F1max's threshold and at @t); they cost more.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="Output format; csv and json keep full precision.")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the table to this file instead of standard output.")
@click.option("--fpr-limit", type=click.FloatRange(0, 1, min_open=True), default=0.3, show_default=True,
              help="FPR integration limit of AUPRO.")
@click.option("--threshold", type=float,
              help="Also report pixel F1, precision and recall at score >= THRESHOLD (e.g. chosen on validation data).")
@click.option("--threshold-from", type=click.Path(path_type=Path), metavar="NORMAL_PREDS",
              help="Instead of --threshold, set the threshold on the score maps of normal images under "
                   "NORMAL_PREDS (e.g. held-out normal validation images, never the test set), as a deployment "
                   "would: the lowest threshold whose pixel FPR over them is at most --target-fpr.")
@click.option("--target-fpr", type=click.FloatRange(0, 1), metavar="FPR",
              help="Pixel FPR allowed on the normal maps of --threshold-from  [default: 0.01]")
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
                   "P-F1 threshold; with --extended also its AUPIMO (empty for normal images).")
@click.option("--resize", is_flag=True,
              help="Resize maps bilinearly to their mask's (image's) size instead of stopping with an error.")
@click.option("--allow-missing", is_flag=True,
              help="Skip test images without a map and maps without a mask (reported) instead of stopping.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=4, show_default=True,
              help="Threads reading files.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, layout line or summary on standard error.")
def command(preds, masks, pairs, layout, map_suffix, npz_key, by, size_edges, extended, fmt, output, fpr_limit,
            threshold, threshold_from, target_fpr, bootstrap, confidence, seed, image_scores, per_image, resize,
            allow_missing, jobs, quiet) -> None:
    if threshold_from is not None and threshold is not None:
        raise InputError("give either --threshold or --threshold-from, not both")
    if target_fpr is not None and threshold_from is None:
        raise InputError("--target-fpr sets the threshold on the normal maps of --threshold-from; give that folder too")
    options = ScoreOptions(by=by, size_edges=size_edges, extended=extended, fpr_limit=fpr_limit,
                           threshold=threshold, bootstrap=bootstrap, confidence=confidence, seed=seed, resize=resize,
                           npz_key=npz_key, jobs=jobs, per_image=per_image is not None)
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # our messages name bad files
    if threshold_from is not None:
        target = 0.01 if target_fpr is None else target_fpr
        normal = threshold_from_folder(threshold_from, target, map_suffix=map_suffix, npz_key=npz_key)
        options = dataclasses.replace(
            options, threshold=normal.threshold,
            threshold_source=(f"set on the {normal.n_images} normal maps under {threshold_from} at pixel FPR <= "
                              f"{target:g} (their FPR at it: {normal.fpr:.4g})"))
    matching = _matching(preds, masks, pairs, layout, map_suffix, allow_missing)
    if image_scores is not None:
        matching = attach_image_scores(matching, image_scores)
    if not quiet:
        click.echo(f"layout: {matching.layout} ({matching.description}); {len(matching.pairs)} maps", err=True)
    result = score_matching(matching, options, progress=not quiet)
    text = result.render(fmt)
    if per_image is not None:
        _write(per_image, pd.DataFrame(result.per_image).to_csv(index=False, lineterminator="\n"))
    if output is not None:
        _write(output, text)
    if not quiet:
        click.echo(result.summary_line(), err=True)
        if fmt == "csv" or output is not None:  # otherwise the notes are in what goes to the terminal
            for note in result.notes:
                click.echo(f"note: {note}", err=True)
    if output is None:
        click.echo(text, nl=False)
    elif not quiet:
        click.echo(f"wrote {output}", err=True)


def _matching(preds, masks, pairs, layout, map_suffix, allow_missing) -> Matching:
    if pairs is not None:
        if preds is not None or masks is not None:
            raise InputError("give either PREDS MASKS or --pairs, not both")
        if not pairs.is_file():
            raise InputError(f"pair list {pairs} does not exist")
        return read_pair_list(pairs)
    if preds is None or masks is None:
        raise InputError("missing PREDS and MASKS: give the folder of score maps and the ground truth "
                         "(e.g. pixeval score preds/ mvtec_ad/), or --pairs FILE.csv")
    return match(preds, masks, layout=layout, map_suffix=map_suffix, allow_missing=allow_missing)


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None

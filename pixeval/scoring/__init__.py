"""Scoring score maps saved as files against ground-truth masks: the library under ``pixeval score``.

One call does it all::

    from pixeval import score_folder

    result = score_folder("preds/", "mvtec_ad/", by="defect", bootstrap=1000)
    result.rows[0].report.pixel_aupr     # a MetricReport per row: a category, or a category's defect
    result.table()                       # pandas DataFrame: the rows, then their mean
    print(result.render("markdown"))     # what `pixeval score --format markdown` prints

The work is four steps, each usable alone:

1. **pair** each map with its ground truth: :func:`match` (``preds`` and ``masks`` folders, in one
   of the layouts ``mvtec``, ``ksdd2``, ``folder``, ``masks``; the module docstring of
   ``pixeval.scoring._pairing`` states the rules) or :func:`read_pair_list` (a CSV listing the
   pairs), giving a :class:`Matching`; :func:`attach_image_scores` adds image scores from a CSV;
2. **read** the files in threads (TIFF and PNG decoding release the GIL): :func:`read_pairs`;
3. **compute** the metrics with :func:`pixeval.metrics.evaluate`, one category at a time while the
   next one is read: :func:`score_matching`, with :class:`ScoreOptions`, giving a
   :class:`ScoreResult`;
4. **render** it: :meth:`ScoreResult.table`, :meth:`ScoreResult.render`.

:func:`threshold_from_folder` sets a threshold on maps of normal images alone (a target pixel
FPR), for :class:`ScoreOptions` ``threshold``.

Everything that cannot be scored raises :class:`~pixeval.errors.InputError` naming the files and
the fix; options are checked before any file is read.
"""

from pixeval.scoring._compute import ROW_GROUPINGS, ScoredRow, ScoreOptions, ScoreResult, score_folder, score_matching
from pixeval.scoring._normal import threshold_from_folder
from pixeval.scoring._pairing import PAIRING_LAYOUTS, Matching, Pair, attach_image_scores, match, read_pair_list
from pixeval.scoring._reading import LoadedPair, read_pairs

__all__ = ["PAIRING_LAYOUTS", "ROW_GROUPINGS", "LoadedPair", "Matching", "Pair", "ScoreOptions", "ScoreResult",
           "ScoredRow",
           "attach_image_scores", "match", "read_pair_list", "read_pairs", "score_folder", "score_matching",
           "threshold_from_folder"]

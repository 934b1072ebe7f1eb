"""Slow, obviously-correct reference implementations for the metric tests.

Written from the definitions (MVTec AD's ``compute_pro`` + ``trapezoid`` algorithm as described in
docs/design.md, "Metric conventions"), independent of pixeval's code: its own 8-connected labelling by
flood fill, an argsort over all pixels, explicit loops.
"""

from __future__ import annotations

from bisect import bisect

import numpy as np


def label_8_connected(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Flood-fill labelling of the True pixels; neighbours include diagonals."""
    labels = np.zeros(mask.shape, dtype=np.int64)
    count = 0
    height, width = mask.shape
    for r in range(height):
        for c in range(width):
            if mask[r, c] and labels[r, c] == 0:
                count += 1
                stack = [(r, c)]
                labels[r, c] = count
                while stack:
                    y, x = stack.pop()
                    for dy in (-1, 0, 1):
                        for dx in (-1, 0, 1):
                            ny, nx = y + dy, x + dx
                            if (0 <= ny < height and 0 <= nx < width and mask[ny, nx]
                                    and labels[ny, nx] == 0):
                                labels[ny, nx] = count
                                stack.append((ny, nx))
    return labels, count


def pro_curve(maps, masks):
    """MVTec AD PRO curve: (fprs, pros), with (0, 0) prepended and (1, 1) appended."""
    scores, fp_changes, pro_changes = [], [], []
    total_regions = 0
    for score_map, mask in zip(maps, masks):
        labels, n = label_8_connected(np.asarray(mask) > 0)
        total_regions += n
        weights = np.zeros(labels.shape)
        for region in range(1, n + 1):
            weights[labels == region] = 1.0 / np.count_nonzero(labels == region)
        scores.append(np.asarray(score_map, dtype=np.float64).ravel())
        fp_changes.append((labels == 0).ravel().astype(np.int64))
        pro_changes.append(weights.ravel())
    scores = np.concatenate(scores)
    fp_changes = np.concatenate(fp_changes)
    pro_changes = np.concatenate(pro_changes) / total_regions
    order = np.argsort(scores, kind="stable")[::-1]
    scores, fp_changes, pro_changes = scores[order], fp_changes[order], pro_changes[order]
    fprs = np.cumsum(fp_changes) / fp_changes.sum()
    pros = np.cumsum(pro_changes)
    keep = np.append(np.diff(scores) != 0, True)
    fprs = np.minimum(fprs[keep], 1.0)
    pros = np.minimum(pros[keep], 1.0)
    return np.concatenate([[0.0], fprs, [1.0]]), np.concatenate([[0.0], pros, [1.0]])


def trapezoid(x, y, x_max):
    """MVTec ``generic_util.trapezoid``: area under (x, y) up to x_max, interpolating at x_max."""
    x = np.asarray(x)
    y = np.asarray(y)
    correction = 0.0
    if x_max not in x:
        ins = bisect(list(x), x_max)
        assert 0 < ins < len(x)
        y_interp = y[ins - 1] + (y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1])
        correction = 0.5 * (y_interp + y[ins - 1]) * (x_max - x[ins - 1])
    keep = x <= x_max
    x, y = x[keep], y[keep]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction)


def aupro(maps, masks, fpr_limit=0.3):
    """Normalised AUPRO: area up to ``fpr_limit`` divided by the limit."""
    fprs, pros = pro_curve(maps, masks)
    return trapezoid(fprs, pros, fpr_limit) / fpr_limit


def f1_max_brute_force(scores, labels):
    """Max F1 over every distinct score as threshold (score >= t), and the highest argmax."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    best, best_t = -1.0, None
    for t in np.unique(scores)[::-1]:
        predicted = scores >= t
        tp = np.count_nonzero(predicted & labels)
        fp = np.count_nonzero(predicted & ~labels)
        fn = np.count_nonzero(~predicted & labels)
        f1 = 2 * tp / (2 * tp + fp + fn)
        if f1 > best + 1e-15:
            best, best_t = f1, t
    return best, best_t

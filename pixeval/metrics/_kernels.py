"""Numba kernels of the metric core.

Kernels take plain arrays and scalars only and do no validation: the callers in
:mod:`pixeval.metrics.ranking` and :mod:`pixeval.metrics.bootstrap` check their inputs first.
Every kernel is compiled with ``cache=True``, so the compile cost is paid once per machine.
:func:`resampled_summaries` spreads its resamples over Numba's threads (every core by default,
``NUMBA_NUM_THREADS`` to change it); each resample is computed alone, so the result does not
depend on the thread count.

The *values* are the distinct scores of the anomalous pixels, ascending: the only thresholds at
which any curve changes direction. Counts are ``int64`` throughout.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _first_index(sorted_scores, value, start, strict):
    """First index ``i >= start`` with ``sorted_scores[i] >= value`` (``> value`` if strict).

    Galloping search from ``start``: O(log d) where d is the distance to the answer, so a sweep
    over increasing values costs O(K log(N / K)) in total instead of O(K log N).
    """
    n = sorted_scores.size
    lo = start
    step = 1
    hi = start
    while hi < n and (sorted_scores[hi] <= value if strict else sorted_scores[hi] < value):
        lo = hi + 1
        hi += step
        step *= 2
    if hi > n:
        hi = n
    while lo < hi:
        mid = (lo + hi) // 2
        if sorted_scores[mid] <= value if strict else sorted_scores[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def add_counts_below(sorted_scores, values, below, at_or_below):
    """For ascending ``values``: add how many scores are ``< v`` to ``below`` and how many are
    ``<= v`` to ``at_or_below`` (``int64``, in place, so several sorted chunks can be summed).

    ``sorted_scores`` is sorted ascending and has the same dtype as ``values`` (so equality is
    exact).
    """
    position = 0
    for k in range(values.size):
        position = _first_index(sorted_scores, values[k], position, False)
        below[k] += position
        position = _first_index(sorted_scores, values[k], position, True)
        at_or_below[k] += position


@njit(cache=True)
def summarise(per_value, weight_per_value, below, at_or_below, n, n_regions, fpr_limit):
    """AUROC, AP, F1-max (and the index of its value) and AUPRO from the per-value counts.

    Inputs are in ascending order of the values: anomalous pixels at each value, their summed
    region weights (read only when ``n_regions > 0``), and counts of all pixels ``< v`` and
    ``<= v`` out of ``n``. The sweep goes down from the highest value, deriving
    ``tp`` (anomalous >= v), ``fp`` (normal >= v), ``fp_above`` (normal > v) and PRO(v).

    The ROC curve visits, for each value in descending order, the point
    ``(fp_above, tp of the previous value)`` (horizontal move: only normal pixels lie strictly
    between two values) and then ``(fp, tp)`` (the tie group at the value, moved together); it
    ends at ``(n_neg, n_pos)``. Its trapezoid area is accumulated exactly in integers (twice the
    area, so the halves of diagonal segments stay integral).

    AP is ``sum (R_k - R_{k-1}) P_k`` with ``P_k = tp / (tp + fp)``. F1 at a value is
    ``2 tp / (tp + fp + n_pos)``; the maximum over all thresholds is attained at a value because,
    for a fixed set of detected anomalous pixels, the highest threshold keeping them has the
    fewest false positives. Ties in F1 keep the highest threshold.

    The PRO curve starts at (0, 0) and visits ``(fp_above / n_neg, PRO of the previous value)``
    and ``(fp / n_neg, PRO)`` for each value, then (1, last PRO) and (1, 1): exactly the
    vertices of the MVTec AD curve (the points left out lie on horizontal segments). The area up
    to ``fpr_limit`` is the trapezoid over the points with FPR <= limit plus the piece up to the
    limit with PRO linearly interpolated there, divided by the limit.
    """
    k_total = per_value.size
    n_pos = np.int64(0)
    for k in range(k_total):
        n_pos += per_value[k]
    n_neg = n - n_pos
    area2 = np.int64(0)
    ap = 0.0
    best_f1 = -1.0
    best_k = -1
    prev_tp = np.int64(0)
    prev_fp = np.int64(0)
    weight_sum = 0.0
    prev_pro = 0.0
    # PRO trapezoid state: last vertex kept, area so far, whether the limit was passed
    last_x, last_y, pro_area, done = 0.0, 0.0, 0.0, False
    for k in range(k_total - 1, -1, -1):
        tp = prev_tp + per_value[k]
        fp = (n - below[k]) - tp
        fp_above = (n - at_or_below[k]) - prev_tp
        area2 += 2 * (fp_above - prev_fp) * prev_tp
        area2 += (fp - fp_above) * (prev_tp + tp)
        if per_value[k] > 0:
            ap += per_value[k] * (tp / (tp + fp))
        f1 = 2.0 * tp / (tp + fp + n_pos)
        if f1 > best_f1:
            best_f1 = f1
            best_k = k
        pro = 0.0
        if n_regions > 0:
            weight_sum += weight_per_value[k]
            pro = min(weight_sum / n_regions, 1.0)
        if not done:
            last_x, last_y, pro_area, done = _trapezoid_step(
                last_x, last_y, pro_area, fp_above / n_neg, prev_pro, fpr_limit
            )
        if not done:
            last_x, last_y, pro_area, done = _trapezoid_step(
                last_x, last_y, pro_area, fp / n_neg, pro, fpr_limit
            )
        prev_tp = tp
        prev_fp = fp
        prev_pro = pro
    if not done:
        last_x, last_y, pro_area, done = _trapezoid_step(
            last_x, last_y, pro_area, 1.0, prev_pro, fpr_limit
        )
    if not done:
        last_x, last_y, pro_area, done = _trapezoid_step(
            last_x, last_y, pro_area, 1.0, 1.0, fpr_limit
        )
    area2 += 2 * (n_neg - prev_fp) * prev_tp
    auroc = area2 / (2.0 * n_pos * n_neg)
    return auroc, ap / n_pos, best_f1, best_k, pro_area / fpr_limit


@njit(cache=True)
def _trapezoid_step(last_x, last_y, area, x, y, limit):
    """Add the vertex (x, y) to a trapezoid integral that stops at ``x = limit``.

    A vertex with ``x <= limit`` adds its trapezoid; the first vertex beyond the limit adds the
    piece up to the limit, with y linearly interpolated there, and ends the integral
    (``done``). Returns ``(last_x, last_y, area, done)``.
    """
    if x <= limit:
        return x, y, area + 0.5 * (x - last_x) * (y + last_y), False
    y_limit = last_y + (y - last_y) * (limit - last_x) / (x - last_x)
    return limit, y_limit, area + 0.5 * (limit - last_x) * (y_limit + last_y), True


@njit(cache=True, parallel=True)
def resampled_summaries(multiplicities, neg_ptr, neg_cell, neg_count, pos_ptr, pos_value,
                        pos_weight, regions, n_values, fpr_limit, n_chunks):
    """AUROC, AP, F1-max and AUPRO of each resample of the units (images).

    A resample takes unit ``j`` ``multiplicities[b, j]`` times. The values are the K distinct
    anomalous scores of the whole set, ascending. Each unit's normal pixels are summarised by
    their *cells*: cell ``2k + 1`` holds scores equal to value k, cell ``2k`` scores strictly
    between values k-1 and k (cell ``2K`` above the highest). Unit j's normal cells are
    ``neg_cell[neg_ptr[j]:neg_ptr[j+1]]`` with pixel counts ``neg_count``; its anomalous pixels
    are ``pos_value`` (value index) and ``pos_weight`` (``1 / region size``) in
    ``pos_ptr[j]:pos_ptr[j+1]``; ``regions[j]`` is its region count.

    Counts of a resample are multiplicity-weighted sums, and its curves are evaluated at all K
    values: values the resample lacks add only vertices lying on its exact curves, so the
    metrics equal those of the resample evaluated on its own. Returns ``(B, 4)`` float64,
    NaN rows for resamples without anomalous or without normal pixels (AUPRO NaN without
    regions). The resamples are split into ``n_chunks`` runs of consecutive rows, computed in
    parallel.
    """
    n_resamples = multiplicities.shape[0]
    out = np.full((n_resamples, 4), np.nan)
    n_chunks = max(1, min(n_resamples, n_chunks))
    for c in prange(n_chunks):
        _resample_range(c * n_resamples // n_chunks, (c + 1) * n_resamples // n_chunks, out, multiplicities,
                        neg_ptr, neg_cell, neg_count, pos_ptr, pos_value, pos_weight, regions, n_values, fpr_limit)
    return out


@njit(cache=True)
def _resample_range(start, stop, out, multiplicities, neg_ptr, neg_cell, neg_count, pos_ptr, pos_value,
                    pos_weight, regions, n_values, fpr_limit):
    """Rows ``start:stop`` of :func:`resampled_summaries`' result, written into ``out``, with
    work arrays of their own."""
    n_units = multiplicities.shape[1]
    cells = np.zeros(2 * n_values + 1, np.int64)
    pos_count = np.zeros(n_values, np.int64)
    pos_sum = np.zeros(n_values)
    below = np.empty(n_values, np.int64)
    at_or_below = np.empty(n_values, np.int64)
    for b in range(start, stop):
        cells[:] = 0
        pos_count[:] = 0
        pos_sum[:] = 0.0
        n_pos = np.int64(0)
        n_neg = np.int64(0)
        n_regions = np.int64(0)
        for j in range(n_units):
            m = multiplicities[b, j]
            if m == 0:
                continue
            for e in range(neg_ptr[j], neg_ptr[j + 1]):
                cells[neg_cell[e]] += m * neg_count[e]
                n_neg += m * neg_count[e]
            for e in range(pos_ptr[j], pos_ptr[j + 1]):
                pos_count[pos_value[e]] += m
                pos_sum[pos_value[e]] += m * pos_weight[e]
            n_pos += m * (pos_ptr[j + 1] - pos_ptr[j])
            n_regions += m * regions[j]
        if n_pos == 0 or n_neg == 0:
            continue
        running = np.int64(0)  # all pixels below the current cell
        for k in range(n_values):
            running += cells[2 * k]
            below[k] = running
            running += cells[2 * k + 1] + pos_count[k]
            at_or_below[k] = running
        auroc, ap, f1, _, aupro = summarise(pos_count, pos_sum, below, at_or_below,
                                            n_pos + n_neg, n_regions, fpr_limit)
        out[b, 0] = auroc
        out[b, 1] = ap
        out[b, 2] = f1
        out[b, 3] = aupro if n_regions > 0 else np.nan


_SIGN32 = np.uint32(0x80000000)
_ALL32 = np.uint32(0xFFFFFFFF)
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)


@njit(cache=True, inline="always")
def _encode(score, bits):
    """Order-preserving ``uint32`` key of a float32 ``score`` with raw ``bits``: negative floats
    inverted, others with the sign bit set, so keys compare like the scores (-0.0 as 0.0)."""
    if score == 0:
        return _SIGN32
    if bits >= _SIGN32:
        return bits ^ _ALL32
    return bits | _SIGN32


@njit(cache=True, inline="always")
def _decode(key):
    """The float32 bits of an :func:`_encode` key."""
    if key >= _SIGN32:
        return key ^ _SIGN32
    return key ^ _ALL32


@njit(cache=True)
def encode_in_place(scores):
    """Turn a contiguous float32 array into its ``uint32`` keys, in place; return the key view."""
    keys = scores.view(np.uint32)
    for i in range(scores.size):
        keys[i] = _encode(scores[i], keys[i])
    return keys


@njit(cache=True)
def encode(scores):
    """The ``uint32`` keys of float32 ``scores`` (a new array)."""
    bits = scores.view(np.uint32)
    keys = np.empty(scores.size, np.uint32)
    for i in range(scores.size):
        keys[i] = _encode(scores[i], bits[i])
    return keys


@njit(cache=True)
def decode(keys):
    """The float32 scores of ``uint32`` keys (a new array)."""
    bits = np.empty(keys.size, np.uint32)
    for i in range(keys.size):
        bits[i] = _decode(keys[i])
    return bits.view(np.float32)


@njit(cache=True)
def radix_sort(keys, aux):
    """Sort ``uint32`` keys in place: LSD radix sort, four passes of 8 bits.

    ``aux`` is scratch space of at least ``keys.size``. A pass whose digit is the same for all
    keys is skipped. Linear time: several times faster than ``np.sort`` on float32 here.
    """
    n = keys.size
    counts = np.zeros((4, 256), np.int64)
    for i in range(n):
        key = keys[i]
        counts[0, key & 255] += 1
        counts[1, (key >> 8) & 255] += 1
        counts[2, (key >> 16) & 255] += 1
        counts[3, key >> 24] += 1
    offsets = np.empty(256, np.int64)
    in_keys = True
    for digit in range(4):
        shift = np.uint32(8 * digit)
        if n == 0 or counts[digit, (keys[0] >> shift) & 255] == n:
            continue
        total = 0
        for d in range(256):
            offsets[d] = total
            total += counts[digit, d]
        source = keys if in_keys else aux
        target = aux if in_keys else keys
        for i in range(n):
            key = source[i]
            d = (key >> shift) & 255
            target[offsets[d]] = key
            offsets[d] += 1
        in_keys = not in_keys
    if not in_keys:
        keys[:] = aux[:n]


@njit(cache=True)
def pack_keys(scores, regions):
    """``uint64`` keys that sort like ``(score, region)`` for ``float32`` scores: the
    :func:`_encode` key of the score above, the region below."""
    bits = scores.view(np.uint32)
    keys = np.empty(scores.size, np.uint64)
    for i in range(scores.size):
        keys[i] = (np.uint64(_encode(scores[i], bits[i])) << _SHIFT) | np.uint64(regions[i])
    return keys


@njit(cache=True)
def group_keys(keys, region_sizes):
    """From sorted :func:`pack_keys` keys: distinct scores, count and summed ``1 / region size``."""
    n_keys = keys.size
    k_total = 0
    for i in range(n_keys):
        if i == 0 or (keys[i] >> _SHIFT) != (keys[i - 1] >> _SHIFT):
            k_total += 1
    value_bits = np.empty(k_total, np.uint32)
    counts = np.zeros(k_total, np.int64)
    sums = np.zeros(k_total)
    j = -1
    for i in range(n_keys):
        high = keys[i] >> _SHIFT
        if i == 0 or high != (keys[i - 1] >> _SHIFT):
            j += 1
            value_bits[j] = _decode(np.uint32(high))
        counts[j] += 1
        sums[j] += 1.0 / region_sizes[np.int64(keys[i] & _LOW32)]
    return value_bits.view(np.float32), counts, sums


@njit(cache=True)
def count_within(points, targets, distance):
    """How many set pixels of ``points`` have a set pixel of ``targets`` within Euclidean
    ``distance`` (two boolean arrays of one shape).

    The first pass of a separable distance transform: each pixel's distance along its row to
    the nearest target (two sweeps per row); then a point at (r, c) is within ``distance`` of a
    target iff some row r + dy, |dy| <= distance, has ``near[r + dy, c]**2 + dy**2 <=
    distance**2``. O(pixels + points * distance), exact in integers.
    """
    height, width = targets.shape
    far = 2 * (height + width) + 2
    near = np.empty((height, width), np.int64)
    for r in range(height):
        last = -far
        for c in range(width):
            if targets[r, c]:
                last = c
            near[r, c] = c - last
        last = far + width
        for c in range(width - 1, -1, -1):
            if targets[r, c]:
                last = c
            if last - c < near[r, c]:
                near[r, c] = last - c
    reach = int(np.floor(distance))
    limit = distance * distance
    count = 0
    for r in range(height):
        for c in range(width):
            if not points[r, c]:
                continue
            for dy in range(max(-reach, -r), min(reach, height - 1 - r) + 1):
                dx = near[r + dy, c]
                if dx * dx + dy * dy <= limit:
                    count += 1
                    break
    return count


@njit(cache=True)
def chessboard_band(mask, width):
    """The pixels of a boolean ``mask`` within chessboard distance ``width`` of a pixel outside
    it, the outside of the image counting as outside the mask.

    A mask pixel is *not* in the band when the (2 width + 1)-square around it lies inside the
    image and inside the mask: a run of 2 width + 1 mask pixels along its row centred on it
    (first pass), then such a run of those centres along its column (second pass); runs restart
    at the image border, so squares reaching outside never qualify.
    """
    height, columns = mask.shape
    span = 2 * width + 1
    inner = np.zeros((height, columns), np.bool_)
    for r in range(height):
        run = 0
        for c in range(columns):
            run = run + 1 if mask[r, c] else 0
            if run >= span:
                inner[r, c - width] = True
    band = mask.copy()
    for c in range(columns):
        run = 0
        for r in range(height):
            run = run + 1 if inner[r, c] else 0
            if run >= span:
                band[r - width, c] = False
    return band

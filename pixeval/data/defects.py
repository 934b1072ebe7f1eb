"""Defect painters for the built-in ``synthetic-textures`` dataset.

Each painter takes a clean ``uint8`` ``H×W×3`` RGB image, a :class:`numpy.random.Generator` and a
``size`` in ``[0, 1]`` (0 = tiny, 1 = large) and returns ``(image, mask)``: a defective copy of the
image and a ``bool`` ``H×W`` mask of the defect. The mask is never empty and marks the pixels
the painter changed:

* ``scratch``, ``patch``, ``colour`` and ``hole`` change no pixel outside the mask;
* ``stain`` has a soft edge: its opacity falls linearly from full at ``edge`` pixels inside the
  blob's outline to zero at ``edge`` pixels outside (``edge`` <= :data:`STAIN_MAX_EDGE`), and the
  mask is the blob itself, where the opacity exceeds one half. Outside the mask only pixels closer
  than ``edge + 0.5`` to it change, each by less than half of the full stain.

Inside the mask a painted pixel keeps its value only where it already had the defect's own
value (a dark crack over a black shadow), so nearly every mask pixel changes.

Sizes map log-uniformly to the areas in :data:`AREA_RANGES` (fractions of the image) for the
region defects, and to lengths and widths for scratches. Lengths given in pixels below (scratch
widths, a stain's soft edge, a hole's rim) are for a 128-px image and scale with the image's
shorter side (:func:`pixel_scale`), so a defect looks the same at any resolution. Patches and
colour shifts start larger than stains and holes: a few pixels of foreign grain or of changed
contrast are invisible even to a person.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

#: The defect types, in the order they are generated; each is one defect folder.
DEFECT_TYPES: tuple[str, ...] = ("scratch", "stain", "patch", "colour", "hole")

#: Region area at ``size`` 0 and 1 per region defect, as fractions of the image area
#: (log-uniform in between).
AREA_RANGES: dict[str, tuple[float, float]] = {
    "stain": (0.003, 0.12),
    "patch": (0.01, 0.15),
    "colour": (0.006, 0.12),
    "hole": (0.002, 0.10),
}

#: How many random cuts a ``patch`` chooses its material from.
PATCH_CANDIDATES = 6

#: Largest half-width in pixels (of a 128-px image) of a stain's soft edge.
STAIN_MAX_EDGE = 4.0

#: Fixed-point bits for sub-pixel polygon vertices in ``cv2.fillPoly``.
_SHIFT = 4


def paint_defect(kind: str, clean: np.ndarray, rng: np.random.Generator, size: float,
                 donors: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Paint one defect of type ``kind`` into a copy of ``clean``; return ``(image, mask)``.

    ``donors`` are ``uint8`` RGB photographs that ``patch`` cuts its material from (ignored by
    the other types); the first is the photograph ``clean`` comes from.
    """
    if kind not in _PAINTERS:
        raise ValueError(f"unknown defect type {kind!r}; expected one of {', '.join(DEFECT_TYPES)}")
    if not 0.0 <= size <= 1.0:
        raise ValueError(f"defect size must lie in [0, 1], got {size}")
    if clean.dtype != np.uint8 or clean.ndim != 3 or clean.shape[2] != 3:
        raise ValueError(f"clean image must be uint8 H×W×3, got {clean.dtype} {clean.shape}")
    if kind == "patch":
        image, mask = paint_patch(clean, rng, size, donors)
    else:
        image, mask = _PAINTERS[kind](clean, rng, size)
    if not mask.any():
        raise AssertionError(f"{kind} painter produced an empty mask")  # a painter bug, never input
    return image, mask


def region_area(kind: str, size: float, shape: tuple[int, int]) -> float:
    """Target area in pixels of a ``kind`` region defect of ``size`` in an image of ``shape``."""
    low, high = AREA_RANGES[kind]
    return shape[0] * shape[1] * low * (high / low) ** size


def pixel_scale(shape: tuple[int, int]) -> float:
    """How many pixels of an image of ``shape`` a pixel of a 128-px image spans: ``min(h, w) / 128``."""
    return min(shape[:2]) / 128


def irregular_region(shape: tuple[int, int], rng: np.random.Generator, area: float,
                     roughness: float = 0.0) -> np.ndarray:
    """A ``bool`` mask of one irregular blob of about ``area`` pixels inside ``shape``.

    The outline is an ellipse (aspect ratio up to 2.2, random orientation) whose log-radius is
    modulated by random harmonics 2-5 (smooth bulges) and, scaled by ``roughness``, 6-24 (a
    jagged edge); the centre keeps the blob inside the image as far as its size allows.
    """
    h, w = shape
    radius = math.sqrt(area / math.pi)
    aspect = rng.uniform(1.0, 2.2)
    rx, ry = radius * math.sqrt(aspect), radius / math.sqrt(aspect)
    theta = np.linspace(0.0, 2.0 * math.pi, 192, endpoint=False)
    log_r = np.zeros_like(theta)
    for k in range(2, 25):
        scale = 0.22 / k if k < 6 else roughness * 0.3 / k
        log_r += rng.normal(0.0, scale) * np.cos(k * theta + rng.uniform(0.0, 2.0 * math.pi))
    r = np.exp(log_r)
    x, y = rx * r * np.cos(theta), ry * r * np.sin(theta)
    phi = rng.uniform(0.0, math.pi)
    x, y = x * math.cos(phi) - y * math.sin(phi), x * math.sin(phi) + y * math.cos(phi)
    cx = rng.uniform(*_centre_range(w, float(np.abs(x).max())))
    cy = rng.uniform(*_centre_range(h, float(np.abs(y).max())))
    return _fill_polygon(shape, np.stack([x + cx, y + cy], axis=1))


def paint_scratch(clean: np.ndarray, rng: np.random.Generator,
                  size: float) -> tuple[np.ndarray, np.ndarray]:
    """A thin crack or scratch along a cubic Bézier curve, darker or lighter than the surface.

    Length runs from 15% to 90% of the image side and the widest point from about 1.5 to 6
    pixels (of a 128-px image) with ``size``; the width tapers towards both ends. A pixel
    belongs to the scratch when its centre lies within the local radius of the curve; its shade
    is strongest on the centre line.
    """
    h, w = clean.shape[:2]
    side = min(h, w)
    length = side * (0.15 + 0.75 * size)
    px = pixel_scale((h, w))
    r_max = (0.8 + 2.2 * size) * px
    r_min = 0.6 * px
    angle = rng.uniform(0.0, 2.0 * math.pi)
    along = np.array([math.cos(angle), math.sin(angle)])
    across = np.array([-along[1], along[0]])
    centre = np.array([rng.uniform(0.2 * w, 0.8 * w), rng.uniform(0.2 * h, 0.8 * h)])
    bends = rng.uniform(-0.25, 0.25, size=2) * length
    controls = np.stack([centre - along * length / 2,
                         centre - along * length / 6 + across * bends[0],
                         centre + along * length / 6 + across * bends[1],
                         centre + along * length / 2])
    t = np.linspace(0.0, 1.0, max(8, int(4 * length)))[:, None]
    points = ((1 - t) ** 3 * controls[0] + 3 * (1 - t) ** 2 * t * controls[1]
              + 3 * (1 - t) * t ** 2 * controls[2] + t ** 3 * controls[3])
    radii = r_min + (r_max - r_min) * np.sin(math.pi * t[:, 0]) ** 0.7

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # Normalised distance to the nearest curve sample, in units of that sample's radius.
    nearest = np.full((h, w), np.inf)
    for (px, py), radius in zip(points, radii):
        x0, x1 = max(0, int(px - radius) - 1), min(w, int(px + radius) + 2)
        y0, y1 = max(0, int(py - radius) - 1), min(h, int(py + radius) + 2)
        if x0 >= x1 or y0 >= y1:
            continue
        d = np.hypot(xx[y0:y1, x0:x1] - px, yy[y0:y1, x0:x1] - py) / radius
        np.minimum(nearest[y0:y1, x0:x1], d, out=nearest[y0:y1, x0:x1])
    mask = nearest <= 1.0

    dark = rng.random() < 0.65
    target = rng.uniform(10, 40) if dark else rng.uniform(210, 240)
    strength = rng.uniform(0.7, 0.9) * (1.0 - 0.45 * nearest[mask] ** 2)
    image = clean.copy()
    inside = clean[mask].astype(np.float64)
    image[mask] = _to_uint8(inside + (target - inside) * strength[:, None])
    return image, mask


def paint_stain(clean: np.ndarray, rng: np.random.Generator,
                size: float) -> tuple[np.ndarray, np.ndarray]:
    """A stain (oil, rust, lime) with a soft edge: a blob and a few droplets around it.

    The opacity ``alpha`` falls linearly across the outline over ``2 * edge`` pixels; each pixel
    moves towards the stain colour by ``strength * alpha``. The mask is ``alpha > 1/2``, the blob.
    """
    h, w = clean.shape[:2]
    area = region_area("stain", size, (h, w))
    blob = irregular_region((h, w), rng, area)
    for _ in range(rng.integers(0, 4)):
        droplet = irregular_region((h, w), rng, area * rng.uniform(0.01, 0.05))
        ys, xs = np.nonzero(blob)
        # Move the droplet next to a random blob pixel, a little outside the blob's extent.
        anchor = rng.integers(len(ys))
        dy, dx = np.nonzero(droplet)
        shift_y = int(ys[anchor] - dy.mean() + rng.normal(0, 0.5 * math.sqrt(area)))
        shift_x = int(xs[anchor] - dx.mean() + rng.normal(0, 0.5 * math.sqrt(area)))
        blob |= _shifted(droplet, shift_y, shift_x)

    px = pixel_scale((h, w))
    edge = min(STAIN_MAX_EDGE * px, 0.5 * px + 0.08 * math.sqrt(area))
    inside_dist = cv2.distanceTransform(blob.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    outside_dist = cv2.distanceTransform((~blob).astype(np.uint8), cv2.DIST_L2,
                                         cv2.DIST_MASK_PRECISE)
    # Signed distance to the outline, halfway between the last blob pixel and the first other.
    signed = np.where(blob, -(inside_dist - 0.5), outside_dist - 0.5)
    alpha = np.clip(0.5 - signed / (2.0 * edge), 0.0, 1.0)

    colours = {"oil": (32, 30, 27), "rust": (150, 78, 38), "lime": (214, 210, 196)}
    colour = np.array(list(colours.values())[rng.integers(len(colours))], dtype=np.float64)
    strength = rng.uniform(0.6, 0.85)
    weight = (strength * alpha)[..., None]
    image = _to_uint8(clean + (colour - clean) * weight)
    return image, alpha > 0.5


def paint_patch(clean: np.ndarray, rng: np.random.Generator, size: float,
                donors: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Material cut from elsewhere and pasted in with a hard edge.

    Half of the patches come from the image's own photograph (``donors[0]``), enlarged 1.5-2.5x
    and turned by any angle, so the grain no longer matches; the others come from another
    texture, turned, at 0.8-1.25x. The patch outline is an irregular blob or a turned rectangle.
    Of :data:`PATCH_CANDIDATES` random cuts the one that differs most from the covered pixels
    (mean absolute difference) is pasted: a cut of a flat brick face onto a flat brick face
    would be no defect at all.
    """
    h, w = clean.shape[:2]
    area = region_area("patch", size, (h, w))
    if rng.random() < 0.5:
        mask = irregular_region((h, w), rng, area)
    else:
        mask = _rectangle((h, w), rng, area)
    own = len(donors) == 1 or rng.random() < 0.5
    donor = donors[0] if own else donors[1 + rng.integers(len(donors) - 1)]
    zoom = rng.uniform(1.5, 2.5) if own else math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
    covered = clean[mask].astype(np.float64)
    cuts = [_cut(donor, (h, w), rng, zoom)[mask] for _ in range(PATCH_CANDIDATES)]
    best = max(cuts, key=lambda cut: float(np.abs(cut - covered).mean()))
    image = clean.copy()
    image[mask] = best
    return image, mask


def paint_colour(clean: np.ndarray, rng: np.random.Generator,
                 size: float) -> tuple[np.ndarray, np.ndarray]:
    """A discoloured region with a hard edge: a tint (rust, green, blue), or a contrast change.

    Tints scale the three channels by different gains; contrast changes stretch (x1.8-2.4) or
    flatten (x0.15-0.35) the values about the region's mean and shift it by 25-45 grey levels.
    """
    h, w = clean.shape[:2]
    mask = irregular_region((h, w), rng, region_area("colour", size, (h, w)))
    inside = clean[mask].astype(np.float64)
    kind = rng.integers(3)
    if kind == 0:
        gains = [(1.3, 0.95, 0.65), (0.8, 1.15, 0.75), (0.75, 0.9, 1.35)][rng.integers(3)]
        changed = inside * np.array(gains)
    else:
        factor = rng.uniform(1.8, 2.4) if kind == 1 else rng.uniform(0.15, 0.35)
        mean = inside.mean(axis=0)
        shift = rng.choice([-1.0, 1.0]) * rng.uniform(25, 45)
        changed = mean + (inside - mean) * factor + shift
    image = clean.copy()
    image[mask] = _to_uint8(changed)
    return image, mask


def paint_hole(clean: np.ndarray, rng: np.random.Generator,
               size: float) -> tuple[np.ndarray, np.ndarray]:
    """Missing material: a dark cavity with a rough outline, shaded from one side, and a lit rim.

    The rim (the outer 1-2.5 pixels of the region, at 128 px) is the broken edge catching the light,
    brighter on the side the light comes from. The cavity floor is dark (grey level 20-50),
    lighter towards the lit side, and keeps a fifth of the surface's grain.
    """
    h, w = clean.shape[:2]
    mask = irregular_region((h, w), rng, region_area("hole", size, (h, w)), roughness=0.5)
    depth = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[mask]
    grey = clean[mask].astype(np.float64).mean(axis=1)
    ys, xs = np.nonzero(mask)
    light = rng.uniform(0.0, 2.0 * math.pi)
    span = max(1.0, float(np.ptp(xs) + np.ptp(ys)) / 4)
    # Position along the light direction, about -1 (far side) to +1 (lit side).
    side = np.clip(((xs - xs.mean()) * math.cos(light) + (ys - ys.mean()) * math.sin(light))
                   / span, -1.0, 1.0)
    floor = rng.uniform(20, 50) * (1.0 + 0.5 * side) + 0.2 * (grey - grey.mean())
    rim_light = rng.uniform(180, 225) * (0.8 + 0.2 * side)
    rim = 0.4 * grey + 0.6 * rim_light
    value = np.where(depth <= rng.uniform(1.0, 2.5) * pixel_scale((h, w)), rim, floor)
    image = clean.copy()
    image[mask] = _to_uint8(np.repeat(value[:, None], 3, axis=1))
    return image, mask


_PAINTERS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "scratch": paint_scratch,
    "stain": paint_stain,
    "patch": paint_patch,
    "colour": paint_colour,
    "hole": paint_hole,
}


def _centre_range(extent: int, half: float) -> tuple[float, float]:
    """Where a shape reaching ``half`` pixels from its centre may sit inside ``[0, extent)``."""
    margin = min(half, extent / 2.0 - 1.0)
    return margin, extent - margin


def _fill_polygon(shape: tuple[int, int], vertices: np.ndarray) -> np.ndarray:
    canvas = np.zeros(shape, dtype=np.uint8)
    fixed = np.round(vertices * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(canvas, [fixed], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return canvas.astype(bool)


def _rectangle(shape: tuple[int, int], rng: np.random.Generator, area: float) -> np.ndarray:
    """A turned rectangle of about ``area`` pixels, aspect ratio up to 3."""
    aspect = rng.uniform(1.0, 3.0)
    half_w, half_h = math.sqrt(area * aspect) / 2, math.sqrt(area / aspect) / 2
    phi = rng.uniform(0.0, math.pi)
    corners = np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])
    turn = np.array([[math.cos(phi), -math.sin(phi)], [math.sin(phi), math.cos(phi)]])
    corners = corners @ turn.T
    h, w = shape
    cx = rng.uniform(*_centre_range(w, float(np.abs(corners[:, 0]).max())))
    cy = rng.uniform(*_centre_range(h, float(np.abs(corners[:, 1]).max())))
    return _fill_polygon(shape, corners + np.array([cx, cy]))


def _cut(donor: np.ndarray, shape: tuple[int, int], rng: np.random.Generator,
         zoom: float) -> np.ndarray:
    """An image of ``shape`` cut from ``donor`` at a random place, turned, enlarged by ``zoom``.

    The cut's centre lies at least half the image's diagonal (in donor pixels) from the donor's
    border, so every pixel is real donor content.
    """
    h, w = shape
    dh, dw = donor.shape[:2]
    reach = 0.5 * math.hypot(h, w) / zoom + 1.0
    if 2 * reach >= min(dh, dw):
        raise ValueError(f"a {dh}×{dw} donor is too small for a {h}×{w} cut at zoom {zoom:.2f}")
    centre = np.array([rng.uniform(reach, dw - reach), rng.uniform(reach, dh - reach)])
    # Maps image pixels to donor pixels: turn and scale about the image centre, then move it.
    transform = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), rng.uniform(0.0, 360.0), 1.0 / zoom)
    transform[:, 2] += centre - np.array([w / 2.0, h / 2.0])
    return cv2.warpAffine(donor, transform, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)


def _shifted(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``mask`` moved by ``(dy, dx)`` pixels; what leaves the frame is dropped."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    src = mask[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    out[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    return out


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)

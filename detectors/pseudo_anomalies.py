"""Synthetic anomalies for validation: defects painted into normal images by families that are
not the test painter's (:mod:`pixeval.data.defects` draws the synthetic-textures test defects).

Families (each returns the changed image and the exact boolean mask of changed pixels):

* ``pasted``: an irregular blob (the pixels of a random ellipse, semi-axes 6-18 % of the image
  side, where smoothed Gaussian noise exceeds its median; largest connected component) filled
  with the same region of another image of the set turned by 180 degrees, with a random gain in
  [0.5, 0.8] or [1.25, 1.6] and a random offset in [-40, 40] grey levels per channel.
* ``perlin``: DRAEM's recipe (Zavrtanik et al., ICCV 2021): the mask is 2-D Perlin noise (random
  lattice scale 2^1..2^5 per axis) above half its maximum; the content blends the image with an
  anomaly source (another image of the set, colour-inverted or solarised or contrast-stretched at
  random, rotated by a random multiple of 90 degrees) as ``(1 - b)·source + b·image`` with ``b`` in
  [0, 0.8]. DRAEM takes its sources from DTD textures, which are not available offline.
* ``scar``: CutPaste's scar (Li et al., CVPR 2021): a thin rectangle (2-16 px wide, 10-25 % of
  the side long) cut from elsewhere in the same image, colour-jittered (brightness, contrast
  ±10 %, per-channel shift ±20 grey levels), rotated by a random angle and pasted.
* ``mixed``: each image draws one of the three families.

Pixels whose value the paint leaves unchanged are not in the mask (an invisible defect is no
defect); an image whose draw changed no pixel is drawn again. Everything comes from one seeded
Generator, so the same inputs and seed give the same anomalies.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

FAMILIES = ("pasted", "perlin", "scar", "mixed")


def synthesize(images: Sequence[np.ndarray], family: str = "mixed", seed: int = 0,
               per_image: int = 1) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``per_image`` anomalous versions of each ``uint8`` RGB image: (images, boolean masks)."""
    if family not in FAMILIES:
        raise ValueError(f"family={family!r}; choose one of {', '.join(FAMILIES)}")
    rng = np.random.default_rng(seed)
    images = [np.asarray(im) for im in images]
    out_images, out_masks = [], []
    for i, image in enumerate(images):
        donor = images[(i + 1) % len(images)]
        for _ in range(per_image):
            chosen = family if family != "mixed" else ("pasted", "perlin", "scar")[rng.integers(3)]
            for _attempt in range(20):
                painted = _PAINTERS[chosen](image, donor, rng)
                mask = np.any(painted != image, axis=-1)
                if mask.any():
                    break
            out_images.append(painted)
            out_masks.append(mask)
    return out_images, out_masks


def _pasted(image: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    region = _blob(h, w, rng)
    source = cv2.resize(donor, (w, h), interpolation=cv2.INTER_LINEAR)[::-1, ::-1]
    gain = rng.uniform(0.5, 0.8) if rng.random() < 0.5 else rng.uniform(1.25, 1.6)
    content = np.clip(source.astype(np.float32) * gain + rng.uniform(-40, 40, size=3), 0, 255).astype(np.uint8)
    out = image.copy()
    out[region] = content[region]
    return out


def _blob(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    side = min(h, w)
    cy, cx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
    ay, ax = rng.uniform(0.06, 0.18, size=2) * side
    theta = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(theta) + dy * np.sin(theta)) / ax
    v = (-dx * np.sin(theta) + dy * np.cos(theta)) / ay
    ellipse = u ** 2 + v ** 2 <= 1.0
    noise = cv2.GaussianBlur(rng.normal(size=(h, w)).astype(np.float32), (0, 0), max(side / 40, 1.0))
    blob = ellipse & (noise > np.median(noise[ellipse]))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(blob.astype(np.uint8), connectivity=8)
    if count <= 1:
        return ellipse
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def perlin_noise(shape: tuple[int, int], scale: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """2-D gradient (Perlin) noise of ``shape`` with ``scale[0] × scale[1]`` lattice cells, in about
    [-0.7, 0.7]: random unit gradients at the lattice points, the quintic fade 6t^5 - 15t^4 + 10t^3."""
    h, w = shape
    gy, gx = scale
    angles = rng.uniform(0, 2 * np.pi, size=(gy + 1, gx + 1))
    grads = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    y = np.arange(h) * gy / h
    x = np.arange(w) * gx / w
    y0, x0 = y.astype(int), x.astype(int)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]

    def corner(dy: int, dx: int) -> np.ndarray:
        g = grads[(y0 + dy)[:, None], (x0 + dx)[None, :]]
        return g[..., 0] * (fy - dy) + g[..., 1] * (fx - dx)

    def fade(t: np.ndarray) -> np.ndarray:
        return t * t * t * (t * (t * 6 - 15) + 10)

    uy, ux = fade(fy), fade(fx)
    top = corner(0, 0) * (1 - ux) + corner(0, 1) * ux
    bottom = corner(1, 0) * (1 - ux) + corner(1, 1) * ux
    return top * (1 - uy) + bottom * uy


def _perlin(image: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    noise = perlin_noise((h, w), (2 ** int(rng.integers(1, 6)), 2 ** int(rng.integers(1, 6))), rng)
    region = noise > 0.5 * noise.max()
    source = cv2.resize(donor, (w, h), interpolation=cv2.INTER_LINEAR)
    source = np.rot90(source, int(rng.integers(4))) if h == w else source
    kind = rng.integers(3)
    if kind == 0:
        source = 255 - source
    elif kind == 1:
        source = np.where(source >= 128, 255 - source, source)
    else:
        lo, hi = np.percentile(source, (20, 80))
        source = np.clip((source.astype(np.float32) - lo) * 255 / max(hi - lo, 1), 0, 255)
    b = rng.uniform(0, 0.8)
    blended = (1 - b) * source.astype(np.float32) + b * image.astype(np.float32)
    out = image.copy()
    out[region] = np.clip(blended[region], 0, 255).astype(np.uint8)
    return out


def _scar(image: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    side = min(h, w)
    sw, sh = int(rng.integers(2, 17)), max(int(rng.uniform(0.10, 0.25) * side), 3)
    y, x = int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1))
    patch = image[y:y + sh, x:x + sw].astype(np.float32)
    patch = patch * rng.uniform(0.9, 1.1) + rng.uniform(-20, 20, size=3)
    patch = (patch - patch.mean()) * rng.uniform(0.9, 1.1) + patch.mean()
    patch = np.clip(patch, 0, 255).astype(np.uint8)
    angle = rng.uniform(-45, 45)
    diag = int(np.ceil(np.hypot(sh, sw))) + 2
    canvas = np.zeros((diag, diag, 3), np.uint8)
    inside = np.zeros((diag, diag), np.uint8)
    oy, ox = (diag - sh) // 2, (diag - sw) // 2
    canvas[oy:oy + sh, ox:ox + sw] = patch
    inside[oy:oy + sh, ox:ox + sw] = 1
    turn = cv2.getRotationMatrix2D((diag / 2, diag / 2), angle, 1.0)
    canvas = cv2.warpAffine(canvas, turn, (diag, diag), flags=cv2.INTER_NEAREST)
    inside = cv2.warpAffine(inside, turn, (diag, diag), flags=cv2.INTER_NEAREST).astype(bool)
    ty, tx = int(rng.integers(0, max(h - diag, 0) + 1)), int(rng.integers(0, max(w - diag, 0) + 1))
    out = image.copy()
    target = out[ty:ty + diag, tx:tx + diag]
    keep = inside[:target.shape[0], :target.shape[1]]
    target[keep] = canvas[:target.shape[0], :target.shape[1]][keep]
    return out


_PAINTERS = {"pasted": _pasted, "perlin": _perlin, "scar": _scar}

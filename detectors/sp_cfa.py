"""Sp-CFA (Rafiei, Breckon, Iosifidis, "Superpixel-based Anomaly Detection for Irregular Textures
with a Focus on Pixel-level Accuracy", IJCNN 2024): CFA on the image and on superpixel tilings.

No public code exists; where the paper is silent the choices are stated here and in
:mod:`detectors.superpixels` (SLIC settings, tiling order and grid, resampling).

* **Branches.** ``org`` (the image, i.e. plain CFA), ``small`` (tiling with region size ``rs_s``)
  and, unless ``rs_b`` is unset, ``big`` (region size ``rs_b``). Each branch has its own CoordConv
  descriptor, memory bank and radius over the one frozen backbone; the ``org`` branch is
  initialised exactly like :class:`~detectors.cfa.CFA` with the same seed (so it *is* CFA), the
  branch of region size ``rs`` from ``SeedSequence([seed, rs])``.
* **Input of the superpixel branches.** The image is resized to ``resolution × resolution``
  (``cv2.INTER_AREA`` when shrinking, ``cv2.INTER_LINEAR`` when enlarging), SLIC runs on it, and
  the tiled image (same size) goes through the backbone.
* **Training.** ``L = w1·L_org + w2·L_small + w3·L_big`` with one AdamW over all branches, each
  ``L`` being CFA's loss (:mod:`detectors.cfa.loss`), for the preset's number of epochs.
* **Branch maps.** A branch's patch scores are upsampled to ``resolution``; for the superpixel
  branches the map is untiled (:func:`~detectors.superpixels.untile`) back to the image's pixel
  layout; then blurred with ``sigma`` (after untiling, so no blur crosses unrelated cells).
* **Common scale for fusion.** After training, each branch's maps on the *training* images are
  computed once; the branch's maps are then standardised as ``(S - mean) / std``, with ``mean``
  and ``std`` over all pixels of all training images of that branch (population std). No test
  image enters these statistics.
* **Fusion.** ``S = a1·Z_org + a2·Z_small + a3·Z_big``, resized bilinearly to each image's size;
  image score = max of the map. Default weights are equal; :mod:`detectors.tuning` chooses them
  (and the region sizes) on validation data.
* **Table II presets** (``table2=...``): the paper's published weights and region sizes per
  category. The printed table gives ``α2 = 0`` exactly on the rows without ``rs_b``, which only
  makes sense if the printed ``α2`` weighs the *big* branch and ``α3`` the *small* one; that is the
  reading used here (e.g. carpet: ``a1 = 0.25`` org, ``a2 = 0.75`` small with ``rs_s = 10``, no
  big branch). The paper's region sizes refer to its own input size, which it does not state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from detectors.cfa.detector import CFA, CFAParams
from detectors.cfa.loss import CFAHead
from detectors.cfa.training import patch_scores, upsample
from detectors.common import gaussian_blur, to_image_maps
from detectors.superpixels import Tiling, make_tiling, tile, untile
from pixeval import ParamError, Prediction, ProgressCallback, param

#: The paper's Table II as (a1 org, a2 small, a3 big, rs_s, rs_b); see the module docstring for
#: the reading of the printed a2/a3 columns.
TABLE2: dict[str, tuple[float, float, float, int, int | None]] = {
    "mvtec-carpet": (0.25, 0.75, 0.0, 10, None),
    "mvtec-grid": (0.1, 0.8, 0.1, 10, 35),
    "mvtec-leather": (0.1, 0.9, 0.0, 15, None),
    "mvtec-tile": (0.15, 0.65, 0.2, 10, 30),
    "mvtec-wood": (0.15, 0.75, 0.1, 10, 40),
    "ksdd2": (0.1, 0.55, 0.35, 10, 30),
    "xray": (0.25, 0.4, 0.35, 20, 40),
}


@dataclass
class SpCFAParams(CFAParams):
    """Sp-CFA hyperparameters: CFA's, plus superpixels, loss weights and fusion weights."""

    table2: str | None = param(None, "Take a1, a2, a3, rs_s, rs_b from the paper's Table II for this "
                               "category (overrides those five).", choices=(None, *TABLE2))
    rs_s: int = param(10, "SLIC region size of the small-superpixel branch (pixels at `resolution`).", min=2)
    rs_b: int | None = param(30, "SLIC region size of the big-superpixel branch; none = no big branch.", min=2)
    a1: float = param(1 / 3, "Fusion weight of the original-image branch.", min=0.0)
    a2: float = param(1 / 3, "Fusion weight of the small-superpixel branch.", min=0.0)
    a3: float = param(1 / 3, "Fusion weight of the big-superpixel branch (ignored without rs_b).", min=0.0)
    w1: float = param(1.0, "Loss weight of the original-image branch.", min=0.0)
    w2: float = param(1.0, "Loss weight of the small-superpixel branch.", min=0.0)
    w3: float = param(1.0, "Loss weight of the big-superpixel branch.", min=0.0)
    slic_ruler: float = param(10.0, "SLIC compactness (OpenCV `ruler`).", min=0.0)
    slic_iterations: int = param(10, "SLIC iterations.", min=1)
    slic_min_element: int = param(25, "enforceLabelConnectivity min_element_size (percent of the mean "
                                  "superpixel size; 0 = no enforcement).", min=0, max=100)


@dataclass
class Branch:
    """One trained branch: its region size (``None`` for the image itself), its CFA head and the
    mean and standard deviation of its maps over the training images."""

    region_size: int | None
    head: CFAHead
    mean: float = 0.0
    std: float = 1.0

    @property
    def name(self) -> str:
        return "org" if self.region_size is None else f"rs{self.region_size}"


def branch_seed(seed: int, region_size: int | None) -> int:
    """Descriptor seed of a branch: ``seed`` itself for the image branch (as CFA)."""
    if region_size is None:
        return seed
    return int(np.random.SeedSequence([seed, region_size]).generate_state(1)[0] & 0x7FFFFFFF)


def to_resolution(image: np.ndarray, resolution: int) -> np.ndarray:
    """``image`` resized to ``resolution × resolution`` (area when shrinking, bilinear otherwise)."""
    if image.shape[:2] == (resolution, resolution):
        return image
    shrink = image.shape[0] * image.shape[1] > resolution * resolution
    return cv2.resize(image, (resolution, resolution), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class SpCFA(CFA):
    """Sp-CFA: CFA on the image plus CFA on small and big SLIC-superpixel tilings, fused.

    Three CFA branches (image; tiling of SLIC superpixels of region size rs_s; of rs_b, optional)
    share the frozen backbone, each with its own descriptor and memory bank, trained on
    w1·L_org + w2·L_small + w3·L_big. SLIC (plain SLIC on CIELAB, connectivity enforced) runs on
    the image resized to `resolution`; each superpixel's bounding box is resized bicubically into
    a square cell, cells tiled row-major in raster order of the superpixels' first pixels; a
    branch map is untiled exactly (each cell back to its box, written on its superpixel's pixels
    only), blurred, and standardised by the mean and std of that branch's maps on the training
    images; S = a1·Z_org + a2·Z_small + a3·Z_big. Choose a1..a3 and region sizes with
    `pixeval tune` (validation data, never the test set) or take the paper's with `table2`.
    Every choice the paper leaves open is documented in the module detectors.sp_cfa.
    """

    Params = SpCFAParams

    def __init__(self, params: Any = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        p = self.params
        if p.table2 is not None:
            a1, a2, a3, rs_s, rs_b = TABLE2[p.table2]
            self.params = p = dataclasses.replace(p, a1=a1, a2=a2, a3=a3, rs_s=rs_s, rs_b=rs_b)
        if p.rs_b is not None and p.rs_b == p.rs_s:
            raise ParamError(f"rs_b={p.rs_b} equals rs_s; give the big branch a different region size or rs_b=none")
        if p.a1 + p.a2 + (p.a3 if p.rs_b is not None else 0.0) <= 0:
            raise ParamError("fusion weights a1, a2 (and a3 with rs_b) are all 0; give at least one a positive weight")
        self.branches: dict[str, Branch] = {}

    # ------------------------------------------------------------------ building blocks
    def region_sizes(self) -> list[int | None]:
        """The branches' region sizes: ``None`` (image), ``rs_s`` and, if set, ``rs_b``."""
        return [None, self.params.rs_s] + ([self.params.rs_b] if self.params.rs_b is not None else [])

    def fusion_weights(self) -> dict[str, float]:
        """Fusion weight per branch name."""
        p = self.params
        weights = {"org": p.a1, f"rs{p.rs_s}": p.a2}
        if p.rs_b is not None:
            weights[f"rs{p.rs_b}"] = weights.get(f"rs{p.rs_b}", 0.0) + p.a3
        return weights

    def tilings(self, images: Sequence[np.ndarray], region_size: int) -> tuple[list[np.ndarray], list[Tiling]]:
        """Each image at network resolution, tiled with superpixels of ``region_size``."""
        p = self.params
        tiled, tilings = [], []
        for image in images:
            resized = to_resolution(image, p.resolution)
            t = make_tiling(resized, region_size, ruler=p.slic_ruler, iterations=p.slic_iterations,
                            min_element_size=p.slic_min_element)
            tiled.append(tile(resized, t))
            tilings.append(t)
        return tiled, tilings

    def branch_inputs(self, images: Sequence[np.ndarray], region_size: int | None,
                      progress: ProgressCallback | None = None) -> tuple[torch.Tensor, list[Tiling] | None]:
        """Cached features of a branch's inputs, and the tilings (``None`` for the image branch)."""
        if region_size is None:
            return self.features(images, progress), None
        tiled, tilings = self.tilings(images, region_size)
        return self.features(tiled, progress), tilings

    def raw_branch_maps(self, branch: Branch, features: torch.Tensor, tilings: list[Tiling] | None) -> np.ndarray:
        """``N×R×R`` maps of one branch in image layout, blurred, before standardisation."""
        maps = upsample(patch_scores(branch.head, features), self.params.resolution)
        if tilings is not None:
            maps = np.stack([untile(m, t) for m, t in zip(maps, tilings)])
        return gaussian_blur(maps, self.params.sigma)

    def fit_branches(self, images: Sequence[np.ndarray], region_sizes: Sequence[int | None],
                     loss_weights: Sequence[float], progress: ProgressCallback | None = None) -> dict[str, Branch]:
        """Train one branch per region size (``None`` = the image) jointly; set their statistics."""
        inputs = [self.branch_inputs(images, rs, progress) for rs in region_sizes]
        branches = [Branch(rs, self.new_head(f.shape[1], branch_seed(self.params.seed, rs)))
                    for rs, (f, _) in zip(region_sizes, inputs)]
        self.train_branches([b.head for b in branches], [f for f, _ in inputs], loss_weights, progress)
        for branch, (features, tilings) in zip(branches, inputs):
            maps = self.raw_branch_maps(branch, features, tilings)
            branch.mean, branch.std = float(maps.mean(dtype=np.float64)), float(maps.std(dtype=np.float64))
            branch.std = branch.std if branch.std > 0 else 1.0
        return {b.name: b for b in branches}

    def branch_maps(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> dict[str, np.ndarray]:
        """Standardised ``N×R×R`` maps of every branch (image layout), by branch name."""
        if not self.branches:
            raise self.not_fitted_error()
        out = {}
        for name, branch in self.branches.items():
            features, tilings = self.branch_inputs(images, branch.region_size, progress)
            out[name] = (self.raw_branch_maps(branch, features, tilings) - branch.mean) / branch.std
        return out

    # ------------------------------------------------------------------ contract
    def fit(self, train_images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> "SpCFA":
        p = self.params
        sizes = self.region_sizes()
        weights = [p.w1, p.w2, p.w3][:len(sizes)]
        self.branches = self.fit_branches(train_images, sizes, weights, progress)
        return self

    def use_branches(self, branches: dict[str, Branch]) -> "SpCFA":
        """Adopt already trained branches (e.g. from a tuning run) that cover this detector's
        region sizes; returns ``self``."""
        missing = [n for n in self.fusion_weights() if n not in branches]
        if missing:
            raise ValueError(f"no trained branch for {', '.join(missing)}")
        self.branches = {n: branches[n] for n in self.fusion_weights()}
        return self

    def predict(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> Prediction:
        images = list(images)
        maps = fuse(self.branch_maps(images, progress), self.fusion_weights())
        out = to_image_maps(torch.from_numpy(maps), images, self.params.resolution)
        return Prediction(out, np.array([m.max() for m in out], dtype=np.float64))

    def state_dict(self) -> dict[str, Any]:
        if not self.branches:
            raise self.not_fitted_error()
        return {"branches": [{"region_size": b.region_size, "mean": b.mean, "std": b.std,
                              "in_channels": b.head.descriptor.conv.in_channels - 2,
                              "head": {k: v.clone() for k, v in b.head.state_dict().items()}}
                             for b in self.branches.values()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        branches = {}
        for entry in state["branches"]:
            head = self.new_head(entry["in_channels"], branch_seed(self.params.seed, entry["region_size"]))
            head.bank = torch.empty_like(entry["head"]["bank"])
            head.load_state_dict(entry["head"])
            head.eval()
            branch = Branch(entry["region_size"], head, entry["mean"], entry["std"])
            branches[branch.name] = branch
        self.branches = branches


def fuse(branch_maps: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """``Σ weights[name] · branch_maps[name]`` over the named branches (weights may be 0)."""
    total = None
    for name, weight in weights.items():
        term = np.float32(weight) * branch_maps[name]
        total = term if total is None else total + term
    return total.astype(np.float32)

"""Sp-CFA (Rafiei, Breckon, Iosifidis, "Superpixel-based Anomaly Detection for Irregular Textures
with a Focus on Pixel-level Accuracy", IJCNN 2024): CFA on the image and on superpixel tilings.

No public code exists; where the paper is silent the choices are stated here and in
:mod:`detectors.superpixels` (SLIC settings, tiling order and grid, resampling). Each choice the
paper leaves open is a hyperparameter; the ``paper`` preset takes the literal reading, the other
presets the setting measured best in benchmarks/README.md ("Sp-CFA: the evidence").

* **Branches.** ``org`` (the image, i.e. plain CFA), ``small`` (tiling with region size ``rs_s``)
  and, unless ``rs_b`` is unset, ``big`` (region size ``rs_b``). Each branch has its own
  descriptor, memory bank and radius over the one frozen backbone; the ``org`` branch is
  initialised exactly like :class:`~detectors.cfa.CFA` with the same seed (so it *is* CFA), the
  branch of region size ``rs`` from ``SeedSequence([seed, rs])``.
* **Where the superpixels are cut** (``superpixels_at``). ``image``: SLIC, tiling and untiling
  on the image as loaded, at its own size (the mosaic is then resized to the network input like
  any image); region sizes are in pixels of the image, which is how the paper's 10-40 read on
  MVTec's 1024-px photographs. ``network``: on the image first resized to
  ``resolution × resolution`` (``cv2.INTER_AREA`` when shrinking, bilinear otherwise); region
  sizes are then in network-input pixels.
* **Memory bank of the superpixel branches** (``sp_bank``). ``positions``: CFA's own bank, the
  per-position mean of the untrained descriptor over the training images; on a mosaic a
  position holds a different superpixel in every image, so the mean is a blur of all of them.
  ``patches``: K-means centres over descriptor outputs drawn from every position of every
  training mosaic (``bank_sample`` of them), position-free (:mod:`detectors.cfa.loss`).
  ``sp_coordconv`` keeps or drops CFA's two coordinate channels in those branches' descriptors.
  The image branch is always CFA's (positions bank, CoordConv).
* **Training.** ``L = w1·L_org + w2·L_small + w3·L_big`` with one AdamW over all branches, each
  ``L`` being CFA's loss (:mod:`detectors.cfa.loss`), for the preset's number of epochs.
* **Branch maps.** The image branch's map is CFA's (upsampled to ``resolution``, blurred with
  ``sigma``, resized to the image's size). A superpixel branch's patch scores are upsampled
  bilinearly to the size of the image the tiling was cut from, untiled
  (:func:`~detectors.superpixels.untile`), blurred with ``sp_sigma`` (given in network-input
  pixels, scaled to that image's size) and resized bilinearly to the image's own size.
* **Common scale for fusion.** After training, each branch's maps on the *training* images are
  computed once; the branch's maps are then standardised as ``(S - mean) / std``, with ``mean``
  and ``std`` over all pixels of all training images of that branch (population std). No test
  image enters these statistics.
* **Fusion.** ``S = a1·Z_org + a2·Z_small + a3·Z_big`` at each image's own size; image score =
  max of the map. The paper chooses the weights per category by a grid search (its Table II);
  so does ``fit`` by default: with ``a1..a3`` unset, the branches train on all but
  ``weight_holdout`` of the training images and the weights are the simplex-grid point (step
  ``weight_step``) of best P-AUPR on the held-out images, clean and with synthetic anomalies
  (:mod:`detectors.validation`; never the test set). Given weights are used as they are.
  ``pixeval tune`` (:mod:`detectors.tuning`) searches region sizes too.
* **Table II presets** (``table2=...``): the paper's published weights and region sizes per
  category. The printed table gives ``α2 = 0`` exactly on the rows without ``rs_b``, which only
  makes sense if the printed ``α2`` weighs the *big* branch and ``α3`` the *small* one; that is the
  reading used here (e.g. carpet: ``a1 = 0.25`` org, ``a2 = 0.75`` small with ``rs_s = 10``, no
  big branch). The paper's region sizes refer to its 1024-px images (``superpixels_at=image``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from detectors.cfa.detector import PRESETS, CFA, CFAParams
from detectors.cfa.loss import BANKS, CFAHead
from detectors.cfa.training import patch_scores
from detectors.common import gaussian_blur, max_scored, resize_map, to_image_maps
from detectors.superpixels import Tiling, make_tiling, tile, untile
from detectors.validation import best_weights, fuse, hold_out
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

#: Where the superpixels are cut (see the module docstring).
SUPERPIXELS_AT = ("image", "network")

#: The literal reading of the paper: superpixels of the network input, CFA's own branches.
LITERAL = {"superpixels_at": "network", "sp_bank": "positions", "sp_coordconv": True}
#: The setting measured best in benchmarks/README.md ("Sp-CFA: the evidence").
MEASURED = {"superpixels_at": "image", "sp_bank": "patches", "sp_coordconv": False}

#: CFA's presets (epochs, gamma_c) plus the superpixel branches' construction.
SP_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {**PRESETS["paper"], **LITERAL},
    "standard": {**PRESETS["standard"], **MEASURED},
    "quick": {**PRESETS["quick"], **MEASURED},
}


@dataclass
class SpCFAParams(CFAParams):
    """Sp-CFA hyperparameters: CFA's, plus superpixels, loss weights and fusion weights."""

    preset: str = param("quick", "Named setting of the fields left unset: 'paper' (CFA's 30 epochs and full "
                        "bank; the literal reading: superpixels of the network input, CFA's own branches), "
                        "'standard' (8 epochs, bank /4) or 'quick' (4 epochs, bank /8), both with the "
                        "superpixel setting measured best.", choices=tuple(SP_PRESETS))
    table2: str | None = param(None, "Take a1, a2, a3, rs_s, rs_b from the paper's Table II for this "
                               "category (overrides those five).", choices=(None, *TABLE2))
    superpixels_at: str | None = param(None, "Cut superpixels from the image at its own size ('image') or from "
                                       "the network input ('network'); unset: from the preset.",
                                       choices=(None, *SUPERPIXELS_AT))
    rs_s: int = param(40, "SLIC region size of the small-superpixel branch (pixels of the image SLIC runs on; "
                      "the default is 20 px of the 256-px network input on the built-in 512-px images).",
                      min=2)
    rs_b: int | None = param(80, "SLIC region size of the big-superpixel branch; none = no big branch.", min=2)
    sp_bank: str | None = param(None, "Memory bank of the superpixel branches: CFA's per-position mean "
                                "('positions') or K-means over patches of all mosaics ('patches'); unset: "
                                "from the preset.", choices=(None, *BANKS))
    sp_coordconv: bool | None = param(None, "Coordinate channels in the superpixel branches' descriptors; "
                                      "unset: from the preset.")
    sp_sigma: float = param(4.0, "Gaussian blur of the superpixel branch maps, in network-input pixels "
                            "(0 = none: sharp superpixel borders).", min=0.0)
    bank_sample: int = param(20_000, "Patches drawn for K-means with sp_bank='patches'.", min=1)
    a1: float | None = param(None, "Fusion weight of the original-image branch; a1, a2, a3 all unset: chosen "
                             "at fit on validation data (weight_holdout); any set: the unset ones are 0.",
                             min=0.0)
    a2: float | None = param(None, "Fusion weight of the small-superpixel branch (see a1).", min=0.0)
    a3: float | None = param(None, "Fusion weight of the big-superpixel branch (see a1; ignored without rs_b).",
                             min=0.0)
    weight_holdout: float = param(0.2, "With the fusion weights chosen at fit: fraction of the training images "
                                  "held out (clean and with synthetic anomalies, detectors.validation); the "
                                  "branches train on the rest.", min=0.01, max=0.99)
    weight_step: float = param(0.1, "Grid step of the fusion weights chosen at fit (P-AUPR on the simplex).",
                               min=0.01, max=1.0)
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


def pooled_mean_std(maps: Sequence[np.ndarray]) -> tuple[float, float]:
    """Mean and population standard deviation over all pixels of ``maps`` (any sizes), in float64;
    a standard deviation of 0 is returned as 1 (a constant branch stays constant)."""
    n = sum(m.size for m in maps)
    mean = sum(float(m.sum(dtype=np.float64)) for m in maps) / n
    var = sum(float(np.square(m.astype(np.float64) - mean).sum()) for m in maps) / n
    std = float(np.sqrt(var))
    return mean, std if std > 0 else 1.0


class SpCFA(CFA):
    """Sp-CFA: CFA on the image plus CFA on small and big SLIC-superpixel tilings, fused.

    Three CFA branches (image; tiling of SLIC superpixels of region size rs_s; of rs_b, optional)
    share the frozen backbone, each with its own descriptor and memory bank, trained on
    w1·L_org + w2·L_small + w3·L_big. SLIC (plain SLIC on CIELAB, connectivity enforced) runs on
    the image at its own size (superpixels_at=image) or on the network input (=network, the
    paper's literal reading); each superpixel's bounding box is resized bicubically into a cell of
    a mosaic, cells in raster order of the superpixels' first pixels; a branch map is untiled
    exactly (each cell back to its box, written on its superpixel's pixels only), blurred with
    sp_sigma, and standardised by the mean and std of that branch's maps on the training images;
    S = a1·Z_org + a2·Z_small + a3·Z_big at the image's size. The superpixel branches' memory bank
    is CFA's per-position mean (sp_bank=positions) or K-means over all mosaic patches (=patches),
    with or without coordinate channels (sp_coordconv). By default fit chooses a1..a3 by P-AUPR
    on held-out training images with synthetic anomalies (never the test set), as the paper's
    per-category grid search does; give them, take the paper's with `table2`, or search region
    sizes too with `pixeval tune`.
    Every choice the paper leaves open is documented in the module detectors.sp_cfa, and measured
    in benchmarks/README.md.
    """

    Params = SpCFAParams
    PRESETS = SP_PRESETS

    def __init__(self, params: Any = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        p = self.params
        if p.table2 is not None:
            a1, a2, a3, rs_s, rs_b = TABLE2[p.table2]
            self.params = p = dataclasses.replace(p, a1=a1, a2=a2, a3=a3, rs_s=rs_s, rs_b=rs_b)
        if p.rs_b is not None and p.rs_b == p.rs_s:
            raise ParamError(f"rs_b={p.rs_b} equals rs_s; give the big branch a different region size or rs_b=none")
        given = (p.a1, p.a2, p.a3 if p.rs_b is not None else None)
        if any(a is not None for a in given) and sum(a or 0.0 for a in given) <= 0:
            raise ParamError("fusion weights a1, a2 (and a3 with rs_b) are all 0; give at least one a positive weight")
        if abs(round(1 / p.weight_step) * p.weight_step - 1) > 1e-9:
            raise ParamError(f"weight_step={p.weight_step} must divide 1 exactly (e.g. 0.05, 0.1, 0.25)")
        self.branches: dict[str, Branch] = {}
        #: Fusion weights chosen at fit (when a1..a3 are unset), by branch name.
        self.chosen_weights: dict[str, float] | None = None

    # ------------------------------------------------------------------ building blocks
    def region_sizes(self) -> list[int | None]:
        """The branches' region sizes: ``None`` (image), ``rs_s`` and, if set, ``rs_b``."""
        return [None, self.params.rs_s] + ([self.params.rs_b] if self.params.rs_b is not None else [])

    def weights_given(self) -> bool:
        """Whether the fusion weights are hyperparameters (else they are chosen at fit)."""
        p = self.params
        return any(a is not None for a in (p.a1, p.a2, p.a3))

    def fusion_weights(self) -> dict[str, float]:
        """Fusion weight per branch name: the given ones (unset = 0), or those chosen at fit."""
        p = self.params
        if not self.weights_given():
            if self.chosen_weights is None:
                raise self.not_fitted_error()
            return dict(self.chosen_weights)
        weights = {"org": p.a1 or 0.0, f"rs{p.rs_s}": p.a2 or 0.0}
        if p.rs_b is not None:
            weights[f"rs{p.rs_b}"] = p.a3 or 0.0
        return weights

    def tilings(self, images: Sequence[np.ndarray], region_size: int) -> tuple[list[np.ndarray], list[Tiling]]:
        """Each image (at its own size or at network resolution, by ``superpixels_at``) tiled
        with superpixels of ``region_size``: the mosaics and their tilings."""
        p = self.params
        mosaics, tilings = [], []
        for image in images:
            source = image if p.superpixels_at == "image" else to_resolution(image, p.resolution)
            t = make_tiling(source, region_size, ruler=p.slic_ruler, iterations=p.slic_iterations,
                            min_element_size=p.slic_min_element)
            mosaics.append(tile(source, t))
            tilings.append(t)
        return mosaics, tilings

    def branch_inputs(self, images: Sequence[np.ndarray], region_size: int | None,
                      progress: ProgressCallback | None = None) -> tuple[torch.Tensor, list[Tiling] | None]:
        """Cached features of a branch's inputs, and the tilings (``None`` for the image branch)."""
        if region_size is None:
            return self.features(images, progress), None
        mosaics, tilings = self.tilings(images, region_size)
        return self.features(mosaics, progress), tilings

    def raw_branch_maps(self, branch: Branch, features: torch.Tensor, tilings: list[Tiling] | None,
                        images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One map per image at its own size, of one branch, before standardisation."""
        p = self.params
        scores = patch_scores(branch.head, features)
        if tilings is None:
            return to_image_maps(scores, images, p.resolution, p.sigma)
        out = []
        for s, t, image in zip(scores, tilings, images):
            h, w = t.shape
            m = untile(resize_map(s.float().numpy(), (h, w)), t)
            m = gaussian_blur(m[None], (p.sp_sigma * h / p.resolution, p.sp_sigma * w / p.resolution))[0]
            out.append(resize_map(m, image.shape[:2]))
        return out

    def fit_branches(self, images: Sequence[np.ndarray], region_sizes: Sequence[int | None],
                     loss_weights: Sequence[float], progress: ProgressCallback | None = None) -> dict[str, Branch]:
        """Train one branch per region size (``None`` = the image) jointly; set their statistics."""
        p = self.params
        inputs = [self.branch_inputs(images, rs, progress) for rs in region_sizes]
        branches = [Branch(rs, self.new_head(f.shape[1], branch_seed(p.seed, rs),
                                             coordconv=rs is None or bool(p.sp_coordconv)))
                    for rs, (f, _) in zip(region_sizes, inputs)]
        banks = ["positions" if rs is None else p.sp_bank for rs in region_sizes]
        self.train_branches([b.head for b in branches], [f for f, _ in inputs], loss_weights, progress,
                            banks=banks, bank_sample=p.bank_sample)
        for branch, (features, tilings) in zip(branches, inputs):
            branch.mean, branch.std = pooled_mean_std(self.raw_branch_maps(branch, features, tilings, images))
        return {b.name: b for b in branches}

    def branch_maps(self, images: Sequence[np.ndarray],
                    progress: ProgressCallback | None = None) -> dict[str, list[np.ndarray]]:
        """Standardised maps of every branch, one per image at its own size, by branch name."""
        if not self.branches:
            raise self.not_fitted_error()
        images = list(images)
        out = {}
        for name, branch in self.branches.items():
            features, tilings = self.branch_inputs(images, branch.region_size, progress)
            out[name] = [(m - np.float32(branch.mean)) / np.float32(branch.std)
                         for m in self.raw_branch_maps(branch, features, tilings, images)]
        return out

    # ------------------------------------------------------------------ contract
    def fit(self, train_images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> SpCFA:
        """Train the branches; with the fusion weights unset, on all but ``weight_holdout`` of the
        images, then choose the weights by P-AUPR on the held-out ones (clean and with synthetic
        anomalies, :func:`detectors.validation.hold_out`)."""
        p = self.params
        sizes = self.region_sizes()
        loss_weights = [p.w1, p.w2, p.w3][:len(sizes)]
        if self.weights_given():
            self.branches = self.fit_branches(train_images, sizes, loss_weights, progress)
            return self
        split = hold_out(train_images, p.weight_holdout, p.seed)
        self.branches = self.fit_branches(split.fit_images, sizes, loss_weights, progress)
        maps = {name: np.concatenate([m.ravel() for m in branch_maps])
                for name, branch_maps in self.branch_maps(split.images, progress).items()}
        labels = np.concatenate([m.ravel() for m in split.masks])
        self.chosen_weights, _ = best_weights(maps, labels, p.weight_step)
        return self

    def use_branches(self, branches: dict[str, Branch]) -> SpCFA:
        """Adopt already trained branches (e.g. from a tuning run) that cover this detector's
        region sizes (its fusion weights must be given); returns ``self``."""
        names = ["org"] + [f"rs{rs}" for rs in self.region_sizes()[1:]]
        missing = [n for n in names if n not in branches]
        if missing:
            raise ValueError(f"no trained branch for {', '.join(missing)}")
        self.branches = {n: branches[n] for n in names}
        return self

    def predict(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> Prediction:
        images = list(images)
        branch = self.branch_maps(images, progress)
        weights = self.fusion_weights()
        maps = [fuse({n: branch[n][i] for n in weights}, weights) for i in range(len(images))]
        return max_scored(maps)

    def state_dict(self) -> dict[str, Any]:
        if not self.branches:
            raise self.not_fitted_error()
        return {"chosen_weights": self.chosen_weights,
                "branches": [{"region_size": b.region_size, "mean": b.mean, "std": b.std,
                              "in_channels": b.head.in_channels, "coordconv": b.head.descriptor.coords,
                              "head": {k: v.clone() for k, v in b.head.state_dict().items()}}
                             for b in self.branches.values()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        branches = {}
        for entry in state["branches"]:
            head = self.new_head(entry["in_channels"], branch_seed(self.params.seed, entry["region_size"]),
                                 coordconv=entry["coordconv"])
            head.bank = torch.empty_like(entry["head"]["bank"])
            head.load_state_dict(entry["head"])
            head.eval()
            branch = Branch(entry["region_size"], head, entry["mean"], entry["std"])
            branches[branch.name] = branch
        self.branches = branches
        self.chosen_weights = state["chosen_weights"]

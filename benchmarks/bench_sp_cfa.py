"""CFA vs Sp-CFA: the measured evidence behind Sp-CFA's options and defaults (issue 12).

For each category and seed, everything is fitted on the same 80 % of the training images; the
other 20 % are the validation images (clean, and with synthetic anomalies of each family of
:mod:`detectors.pseudo_anomalies`), never the test set:

* the image branch (``org``, which is CFA with the same seed), trained once;
* for each **construction** of the superpixel branches in :data:`CONFIGS` (where superpixels are
  cut, memory bank, CoordConv), a small (``rs_s``) and a big (``rs_b``) branch.

Branches train independently (:func:`detectors.cfa.training.train_heads`), so this equals fitting
each Sp-CFA configuration on its own. Per construction the test set scores:

* ``diag:small``, ``diag:big``: one superpixel branch alone (diagnostics);
* ``equal``: the three branches fused with equal weights;
* ``tuned``, ``tuned:org+small``, ``tuned:org+big``: fusion weights chosen on the validation
  images (the ``mixed`` family, P-AUPR on maps halved in size as below, simplex step 0.1) with
  all three branches (as Sp-CFA's ``fit`` does by default), or with the big or the small branch
  left out: the paper's Table VII ablation;
* ``CFA`` is the image branch alone.

Significance: per category, 1000 bootstrap resamples of the test images (the same resamples for
every variant and seed, :func:`pixeval.bootstrap_samples`), the metric averaged over seeds on each
resample; the two-sided paired p-value of variant minus CFA (:func:`pixeval.metrics.bootstrap.compare`).
Across categories the resamples are drawn independently per category and averaged.

Region sizes are given in network-input pixels (``--rs-s``, ``--rs-b``) and scaled by image side /
resolution for the constructions that cut the image at its own size, so both cuts see superpixels
of the same content.

Validation that transfers (on the ``--rank-seed`` job only): for every construction and every
fusion-weight vector on the simplex (step 0.25: 15 per construction), P-AUPR on the validation
images of each family and on the test set (both on maps and masks halved in size by block means /
block maxima, to keep this cheap); the Spearman rank correlation of the two over all settings, per
category and seed.

Writes one JSON file per (dataset, category, seed) into ``--out`` (an existing file is reused, so
a killed run resumes) and prints the tables; ``--summarise`` only prints them. Example::

    python benchmarks/bench_sp_cfa.py --data synthetic-textures --categories gravel,grass,brick \\
        --seeds 0,1,2 --out runs/sp-evidence
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from itertools import product
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from detectors.sp_cfa import SpCFA, fuse
from detectors.tuning import simplex_grid, validation_split
from pixeval import average_precision, bootstrap_samples, evaluate, open_dataset
from pixeval.metrics.bootstrap import compare
from pixeval.metrics.catalogue import metric_title

#: Constructions of the superpixel branches: (superpixels_at, sp_bank, sp_coordconv, sp_sigma);
#: sp_sigma None = ``--sp-sigma``. The literal reading, each new option alone, all three together,
#: and the image cut without the blur (sharp superpixel borders).
CONFIGS = {
    "literal": ("network", "positions", True, None),
    "image": ("image", "positions", True, None),
    "patches": ("network", "patches", True, None),
    "nocoord": ("network", "positions", False, None),
    "all three": ("image", "patches", False, None),
    "image sharp": ("image", "positions", True, 0.0),
}
FAMILIES = ("pasted", "perlin", "scar", "mixed")
METRICS = ("pixel_aupr", "pixel_f1_max", "pixel_auroc", "pixel_aupro", "image_auroc")
N_RESAMPLES = 1000


class CachedSpCFA(SpCFA):
    """Sp-CFA whose branch inputs (features and tilings) are computed once per image set,
    region size and cut, and shared by every construction that cuts the same way."""

    cache: dict = {}

    def branch_inputs(self, images, region_size, progress=None):
        key = (tuple(id(im) for im in images), region_size,  # the images live as long as the job
               None if region_size is None else self.params.superpixels_at)
        if key not in self.cache:
            self.cache[key] = super().branch_inputs(images, region_size, progress)
        return self.cache[key]


def halve(maps, masks):
    """Maps by 2×2 block means, masks by 2×2 block maxima (odd edges dropped), flattened."""
    def blocks(a, how):
        h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
        b = a[:h, :w].reshape(h // 2, 2, w // 2, 2)
        return how(b, axis=(1, 3))
    return (np.concatenate([blocks(m, np.mean).ravel() for m in maps]),
            np.concatenate([blocks(np.asarray(m) > 0, np.max).ravel() for m in masks]))


def run_job(spec, category_name, seed, args):
    data = open_dataset(spec).load_category(category_name)
    test_images = [s.load_image() for s in data.test]
    test_masks = [s.load_mask() > 0 for s in data.test]
    families = FAMILIES if seed == args.rank_seed else ("mixed",)
    splits = {f: validation_split(data, holdout=0.2, seed=seed, family=f) for f in families}
    fit_images = splits["mixed"].fit_images
    CachedSpCFA.cache = {}
    base = dict(seed=seed, preset=args.preset, backbone=args.backbone, resolution=args.resolution,
                rs_s=args.rs_s, rs_b=args.rs_b, sp_sigma=args.sp_sigma)
    t0 = time.perf_counter()
    org = CachedSpCFA(**base).fit_branches(fit_images, [None], [1.0])["org"]
    timings = {"org_fit_s": time.perf_counter() - t0}

    def maps_of(model, images):
        return model.branch_maps(images)

    out = {"dataset": spec, "category": category_name, "seed": seed, "params": base, "variants": {},
           "rank": {}, "weights": {}, "timings": timings}
    samples = {}

    def score(name, maps):
        report = evaluate(maps, test_masks)
        out["variants"][name] = {m: float(getattr(report, m)) for m in METRICS}
        # one resampling seed for every variant and model seed: the samples pair across both
        s = bootstrap_samples(maps, test_masks, n_resamples=N_RESAMPLES, seed=0)
        samples[name] = {m: s[m] for m in METRICS}

    for cname, (at, bank, coord, sp_sigma) in CONFIGS.items():
        if args.configs and cname not in args.configs:
            continue
        scale = test_images[0].shape[0] / args.resolution if at == "image" else 1.0
        rs_s, rs_b = round(args.rs_s * scale), round(args.rs_b * scale)
        small, big = f"rs{rs_s}", f"rs{rs_b}"
        model = CachedSpCFA(**{**base, "rs_s": rs_s, "rs_b": rs_b,
                               "sp_sigma": args.sp_sigma if sp_sigma is None else sp_sigma},
                            superpixels_at=at, sp_bank=bank, sp_coordconv=coord)
        t0 = time.perf_counter()
        branches = model.fit_branches(fit_images, [rs_s, rs_b], [1.0, 1.0])
        timings[f"{cname}_fit_s"] = time.perf_counter() - t0
        model.branches = {"org": org, **branches}
        t0 = time.perf_counter()
        test = maps_of(model, test_images)
        timings[f"{cname}_predict_s"] = time.perf_counter() - t0
        val = {f: maps_of(model, splits[f].images) for f in families}
        if "CFA" not in out["variants"]:
            score("CFA", test["org"])
        score(f"{cname} diag:small", test[small])
        score(f"{cname} diag:big", test[big])
        equal = {"org": 1 / 3, small: 1 / 3, big: 1 / 3}
        score(f"{cname} equal", [fuse({n: test[n][i] for n in equal}, equal) for i in range(len(test_images))])
        halved_test = {n: halve(test[n], test_masks) for n in equal}
        halved_val = {f: {n: halve(val[f][n], splits[f].masks) for n in equal} for f in families}
        val_flat = {n: v[0] for n, v in halved_val["mixed"].items()}
        labels = halved_val["mixed"]["org"][1]
        for variant, free in (("tuned", (True, True, True)), ("tuned:org+small", (True, True, False)),
                              ("tuned:org+big", (True, False, True))):
            best = max(simplex_grid(0.1, free), key=lambda w: average_precision(
                fuse(val_flat, dict(zip(equal, w))), labels))
            weights = dict(zip(equal, best))
            out["weights"][f"{cname} {variant}"] = best
            score(f"{cname} {variant}",
                  [fuse({n: test[n][i] for n in weights}, weights) for i in range(len(test_images))])
        # validation vs test ranking over the fusion simplex (step 0.25) of this construction
        for w in simplex_grid(0.25) if seed == args.rank_seed else ():
            weights = dict(zip(equal, w))
            key = f"{cname} {w}"
            row = {"test": float(average_precision(fuse({n: v[0] for n, v in halved_test.items()}, weights),
                                                   halved_test["org"][1]))}
            for f in families:
                row[f] = float(average_precision(fuse({n: v[0] for n, v in halved_val[f].items()}, weights),
                                                 halved_val[f]["org"][1]))
            out["rank"][key] = row
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out, samples


def summarise(jobs, sample_files, args):
    """Print mean ± std over seeds per dataset/category, the paired tests and the rank correlations."""
    by_cat = {}
    for job in jobs:
        by_cat.setdefault((job["dataset"], job["category"]), []).append(job)
    variants = list(jobs[0]["variants"])
    for (dataset, cat), runs in by_cat.items():
        print(f"\n## {dataset} / {cat}: {len(runs)} seeds (mean ± std over seeds; p: paired bootstrap "
              f"of P-AUPR and P-F1max vs CFA, seeds averaged)")
        samples = [np.load(sample_files[(dataset, cat, r["seed"])]) for r in runs]
        print(f"{'variant':32s} " + " ".join(f"{metric_title(m):>15s}" for m in METRICS) + "   p AUPR   p F1")
        for v in variants:
            cells = []
            for m in METRICS:
                vals = np.array([r["variants"][v][m] for r in runs])
                cells.append(f"{vals.mean():.4f}±{vals.std():.4f}")
            ps = []
            for m in ("pixel_aupr", "pixel_f1_max"):
                a = np.mean([s[f"{v}|{m}"] for s in samples], axis=0)
                b = np.mean([s[f"CFA|{m}"] for s in samples], axis=0)
                va = np.mean([r["variants"][v][m] for r in runs])
                vb = np.mean([r["variants"]["CFA"][m] for r in runs])
                ps.append(compare(m, va, vb, a, b, 0.95).p_value if v != "CFA" else float("nan"))
            print(f"{v:32s} " + " ".join(f"{c:>15s}" for c in cells) + f"   {ps[0]:.3f}   {ps[1]:.3f}")
        print("Spearman rank correlation of validation and test P-AUPR over all settings "
              "(construction × fusion weights), mean over seeds:")
        for f in FAMILIES:
            rhos = []
            for r in runs:
                keys = list(r["rank"])
                if not keys:
                    continue
                rhos.append(spearmanr([r["rank"][k][f] for k in keys], [r["rank"][k]["test"] for k in keys])[0])
            print(f"  {f:8s} rho = {np.mean(rhos):.3f} (seeds: {', '.join(f'{x:.3f}' for x in rhos)})")
        t = {k: np.mean([r["timings"][k] for r in runs]) for k in runs[0]["timings"]}
        print("seconds (mean over seeds): " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="synthetic-textures")
    parser.add_argument("--categories", default="gravel,grass,brick")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--configs", default="", help="Comma-separated subset of the constructions.")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--rs-s", type=int, default=20, help="Small region size in network-input pixels "
                        "(scaled to the image's size for constructions that cut the image).")
    parser.add_argument("--rs-b", type=int, default=40, help="Big region size, likewise.")
    parser.add_argument("--rank-seed", type=int, default=0, help="The seed whose job also paints the other "
                        "validation families and ranks every setting on them.")
    parser.add_argument("--sp-sigma", type=float, default=4.0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--summarise", action="store_true", help="Only print the tables of --out.")
    args = parser.parse_args()
    args.configs = [c for c in args.configs.split(",") if c]
    args.out.mkdir(parents=True, exist_ok=True)
    jobs, sample_files = [], {}
    for cat, seed in product(args.categories.split(","), [int(s) for s in args.seeds.split(",")]):
        stem = args.out / f"{args.data.replace('/', '_').replace(':', '_')}-{cat}-{seed}"
        if not stem.with_suffix(".json").exists():
            if args.summarise:
                continue
            t0 = time.perf_counter()
            job, samples = run_job(args.data, cat, seed, args)
            np.savez_compressed(stem.with_suffix(".npz"),
                                **{f"{v}|{m}": s[m] for v, s in samples.items() for m in s})
            stem.with_suffix(".json").write_text(json.dumps(job, indent=1))
            print(f"{cat} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
        job = json.loads(stem.with_suffix(".json").read_text())
        jobs.append(job)
        sample_files[(job["dataset"], cat, seed)] = stem.with_suffix(".npz")
    if jobs:
        summarise(jobs, sample_files, args)


if __name__ == "__main__":
    main()

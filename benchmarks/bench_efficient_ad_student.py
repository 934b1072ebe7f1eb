"""How far EfficientAD's student has moved from its initialisation after a short schedule.

EfficientAD scores ``map_st = mean_c (T̂ − S)²``, with ``T̂`` the teacher's outputs standardised
per channel over the training images. While the student's outputs ``S`` are still near 0, that
map is just ``mean_c T̂²``, the energy of the standardised teacher features, and the detector
works as a diagonal-Gaussian score of the teacher's features rather than as the trained
student-teacher pair of the paper. For each ``--steps`` value this fits EfficientAD on the first
54 training images of a built-in category and prints, over the pixels of the first 10 anomalous
test images at the PDN's output size, the correlation of ``map_st`` with ``mean_c T̂²`` and the
ratio ``mean S² / mean T̂²``. Example (the figures in benchmarks/README.md)::

    python benchmarks/bench_efficient_ad_student.py --resolution 128 --steps 10,100 \\
        --param teacher_steps=16
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from detectors.efficient_ad import EfficientAD
from detectors.efficient_ad.networks import TEACHER_CHANNELS
from detectors.features import images_to_tensor
from pixeval.data.synthetic import generate_category


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--category", default="gravel")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--steps", default="10,100", help="comma-separated train_steps values")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="another EfficientAD hyperparameter (integers only), e.g. teacher_steps=16")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    overrides = {name: int(value) for name, value in (p.split("=", 1) for p in args.param)}
    items = list(generate_category(args.category))
    train = [image for split, _, image, _, _ in items if split == "train"][:54]
    anomalous = [image for split, defect, image, _, _ in items if defect != "good"][:10]
    views = images_to_tensor(anomalous, args.resolution)
    print("steps  corr(map_st, mean T^2)  mean S^2 / mean T^2  fit s")
    for steps in (int(s) for s in args.steps.split(",")):
        start = time.perf_counter()
        detector = EfficientAD(resolution=args.resolution, train_steps=steps, seed=0, **overrides).fit(train)
        fit_seconds = time.perf_counter() - start
        with torch.no_grad():
            teacher = detector.teacher(views)
            student = detector.student(views)[:, :TEACHER_CHANNELS]
        map_st = ((teacher - student) ** 2).mean(dim=1).flatten().numpy()
        energy = (teacher ** 2).mean(dim=1).flatten().numpy()
        correlation = float(np.corrcoef(map_st, energy)[0, 1])
        ratio = float((student ** 2).mean() / (teacher ** 2).mean())
        print(f"{steps:5d}  {correlation:22.4f}  {ratio:19.4f}  {fit_seconds:5.1f}")


if __name__ == "__main__":
    main()

"""Commands the ``detectors`` package adds to the ``pixeval`` command line, through the
entry-point group ``pixeval.commands`` (pyproject.toml), exactly as a third-party package would.

``pixeval tune``: choose Sp-CFA's fusion weights and region sizes on validation data
(:mod:`detectors.tuning`).
"""

from __future__ import annotations

import json

import click

from pixeval import DatasetError, ParamError, open_dataset
from pixeval.params import build_params


def _sizes(text: str, allow_none: bool) -> list[int | None]:
    out: list[int | None] = []
    for item in text.split(","):
        item = item.strip().lower()
        if allow_none and item in ("none", ""):
            out.append(None)
            continue
        if not item.isdigit() or int(item) < 2:
            raise ValueError(f"{item!r} is not a region size (an integer >= 2{' or none' if allow_none else ''})")
        out.append(int(item))
    return out


@click.command("tune")
@click.option("--data", "spec", required=True, help="Dataset spec, e.g. synthetic-textures or mvtec:/data/mvtec_ad.")
@click.option("--category", required=True, help="Category to tune for.")
@click.option("--rs-s", "rs_s", default="40", show_default=True, help="Candidate small region sizes, comma-separated.")
@click.option("--rs-b", "rs_b", default="none,80", show_default=True,
              help="Candidate big region sizes, comma-separated; 'none' = no big branch.")
@click.option("--step", default=0.05, show_default=True, help="Grid step of the fusion weights on the simplex.")
@click.option("--objective", default="aupr", show_default=True, type=click.Choice(["aupr", "f1", "auroc"]),
              help="Validation metric to maximise (pixel level).")
@click.option("--holdout", default=0.2, show_default=True,
              help="Fraction of training images held out for synthetic anomalies when the dataset has no "
                   "labelled validation split.")
@click.option("--family", default="mixed", show_default=True,
              type=click.Choice(["pasted", "perlin", "scar", "mixed"]),
              help="Synthetic anomalies painted into the held-out images (see detectors.pseudo_anomalies).")
@click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE",
              help="Any other Sp-CFA hyperparameter (see `pixeval detectors sp_cfa`), repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def tune(spec: str, category: str, rs_s: str, rs_b: str, step: float, objective: str, holdout: float,
         family: str, params: tuple[str, ...], as_json: bool) -> None:
    """Tune Sp-CFA fusion weights and region sizes on validation data.

    Grid-searches the fusion weights (a1, a2, a3 on the simplex) and region sizes (rs_s, rs_b)
    by OBJECTIVE on validation data, never on the test set: the dataset's labelled validation
    split when it has one, otherwise held-out training images, clean and with synthetic anomalies
    (see detectors.tuning). Prints the chosen values, ready to pass as `-p a1=... -p a2=...` to
    Sp-CFA. Exit status 2 on bad input.
    """
    try:
        rs_s_grid = _sizes(rs_s, allow_none=False)
        rs_b_grid = _sizes(rs_b, allow_none=True)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--rs-s/--rs-b") from None
    values = {}
    for item in params:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--param")
        values[name.strip()] = value.strip()
    from detectors.sp_cfa import SpCFAParams
    from detectors.tuning import TuningRun, simplex_grid, validation_split

    try:
        simplex_grid(step)
        build_params(SpCFAParams, values)
    except (ParamError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--param/--step") from None
    try:
        dataset = open_dataset(spec)
        if category not in dataset.categories:
            raise click.BadParameter(f"no category {category!r} in {spec}; available: "
                                     f"{', '.join(dataset.categories)}", param_hint="--category")
        split = validation_split(dataset.load_category(category), holdout=holdout, seed=int(values.get("seed", 0)),
                                 family=family)
    except (DatasetError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--data/--holdout") from None
    click.echo(f"validation data: {split.source}; training on {len(split.fit_images)} images", err=True)
    run = TuningRun(values, split, rs_s_grid, rs_b_grid)
    result = run.best(objective, step)
    chosen = {**result.params(), "objective": objective, "value": result.value, "validation": result.source,
              "preset": run.model.params.preset}
    if as_json:
        click.echo(json.dumps(chosen, indent=2))
        return
    click.echo(f"{category}: {objective} {result.value:.4f} on {result.source}")
    click.echo(" ".join(f"-p {k}={v if v is not None else 'none'}" for k, v in result.params().items()))

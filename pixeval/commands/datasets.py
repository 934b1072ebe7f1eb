"""``pixeval datasets [SPEC]``: the built-in dataset and the supported layouts, or one dataset's
categories and image counts."""

from __future__ import annotations

import click

from pixeval.data import LAYOUTS, SYNTHETIC_TEXTURES, Dataset, open_dataset

#: Public datasets that the layouts read as distributed, for the listing.
KNOWN_DATASETS = (
    ("MVTec AD", "mvtec:PATH", "15 object and texture categories; masks <id>_mask.png"),
    ("MPDD", "mvtec:PATH", "6 metal-part categories, MVTec AD layout"),
    ("BTAD", "mvtec:PATH", "products 01, 02, 03; folders ok/ and ko/, masks <id>.png or .bmp"),
    ("VisA", "mvtec:PATH", "after its prepare_data.py split (1cls): good/ and bad/, masks <id>.png"),
    ("KSDD2", "ksdd2:PATH", "one category; <id>.png with <id>_GT.png"),
)


@click.command("datasets")
@click.argument("spec", required=False)
def command(spec: str | None) -> None:
    """List the built-in dataset and the layouts, or show one dataset.

    Without SPEC: list the built-in dataset (whether it is generated yet, and where), the
    supported layouts with their spec syntax, and public datasets that fit them.

    With SPEC (e.g. synthetic-textures, mvtec:/data/mvtec_ad, ksdd2:/data/KSDD2,
    folder:./my_images, manifest:list.csv, or a bare path whose layout is recognised): read the
    dataset and show each category's train, validation and test counts, the number of anomalous
    test images and the defect types. Naming synthetic-textures generates it on first use.
    """
    if spec is None:
        click.echo(format_overview())
        return
    click.echo(format_summary(open_dataset(spec)))


def format_overview() -> str:
    """The built-in dataset, the layouts with their spec syntax, and known public datasets."""
    from pixeval.data.synthetic import VERSIONS, default_root, is_current

    lines = [f"Built-in dataset (spec: {SYNTHETIC_TEXTURES}; each version below opens by its name):"]
    for version, info in sorted(VERSIONS.items(), reverse=True):
        root = default_root(version)
        state = (f"generated at {root}" if is_current(root, version)
                 else f"not generated yet; generated on first use into {root}")
        lines += [f"  {info.name}: {state} (set PIXEVAL_DATA to change the folder)"]
        lines += [f"    {line}" for line in info.summary().splitlines()]
    lines += ["", "Layouts (spec LAYOUT:PATH, or a bare PATH whose layout is recognised):"]
    width = max(len(name) for name in LAYOUTS) + len(":PATH")
    lines += [f"  {name + ':PATH':<{width}}  {cls.expects}" for name, cls in LAYOUTS.items()]
    lines += ["", "Public datasets in these layouts (download them yourself; give their folder):"]
    width = max(len(name) for name, _, _ in KNOWN_DATASETS)
    lines += [f"  {name:<{width}}  {spec:<10}  {note}" for name, spec, note in KNOWN_DATASETS]
    return "\n".join(lines)


def format_summary(dataset: Dataset) -> str:
    """Per category: train, validation and test counts, anomalous test images, defect types."""
    header = ("category", "train", "val", "test", "anomalous", "defect types")
    rows = []
    for name in dataset.categories:
        data = dataset.load_category(name)
        defects = sorted({s.defect for s in data.test if s.label == 1})
        rows.append((name, len(data.train), len(data.validation), len(data.test),
                     sum(s.label for s in data.test), ", ".join(defects)))
    if len(rows) > 1:
        rows.append(("total", *(sum(r[k] for r in rows) for k in range(1, 5)), ""))
    widths = [max(len(str(r[k])) for r in [header, *rows]) for k in range(len(header) - 1)]
    lines = [f"{dataset.name}: {dataset.layout} layout at {dataset.root}", ""]
    for row in [header, *rows]:
        cells = [f"{row[0]:<{widths[0]}}"] + [f"{row[k]:>{widths[k]}}" for k in range(1, 5)] + [row[5]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)

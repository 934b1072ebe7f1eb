"""``pixeval report RUN...``: ranked tables (and an HTML page) from one or several bench runs."""

from __future__ import annotations

import click

from pixeval.report.ranking import DEFAULT_METRICS, PRIMARY
from pixeval.tables import FORMATS


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False), metavar="RUN...")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="Format of the printed tables.")
@click.option("--metrics", metavar="A,B", default=",".join(DEFAULT_METRICS), show_default=True,
              help="Metrics (columns), as named in the results store (their definitions: pixeval score --help).")
@click.option("--primary", default=PRIMARY, show_default=True, help="Metric that orders the table.")
@click.option("--per-category", is_flag=True, help="Also print one table per category.")
@click.option("--html", "html_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Also write a self-contained HTML page DIR/index.html with the tables, PR/ROC/PRO "
                   "curves and a qualitative grid.")
def command(runs: tuple[str, ...], fmt: str, metrics: str, primary: str, per_category: bool,
            html_dir: str | None) -> None:
    """Tabulate and plot the results of one or more bench runs.

    RUN is a folder given to `pixeval bench --out`. Several runs are combined (for example runs of different detectors, or from different
    machines), as long as no two hold the same detector, dataset, category and seed.
    """
    from pixeval.bench import read_runs
    from pixeval.report import render_tables

    metric_list = [m.strip() for m in metrics.split(",") if m.strip()]
    results = read_runs(list(runs))
    click.echo(render_tables(results, fmt, metrics=metric_list, primary=primary, per_category=per_category))
    if html_dir:
        from pixeval.report.html import write_html

        path = write_html(results, html_dir, metrics=metric_list, primary=primary)
        click.echo(f"HTML report: {path}", err=True)

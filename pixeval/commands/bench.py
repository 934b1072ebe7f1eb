"""``pixeval bench``: run detectors over datasets into a run folder and print the ranked table."""

from __future__ import annotations

import sys

import click

from pixeval.report.ranking import PRIMARY
from pixeval.tables import FORMATS

#: Command-line option -> BenchConfig field, for options that a config file may also set.
CONFIG_OPTIONS = {"data": "data", "categories": "categories", "detectors": "detectors", "param": "params",
                  "seeds": "seeds", "backbone": "backbone", "resolution": "resolution", "device": "device",
                  "out": "out", "save_maps": "save_maps", "examples": "examples", "bootstrap": "bootstrap",
                  "threshold_holdout": "threshold_holdout", "target_fpr": "target_fpr", "size_edges": "size_edges",
                  "jobs": "jobs", "scheduler": "scheduler", "imports": "imports"}


@click.command("bench")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="YAML or TOML file with any of the settings below (options given here win); "
                   "saved into the run folder as config.yaml.")
@click.option("--data", multiple=True, metavar="SPEC",
              help="Dataset: synthetic-textures (default), mvtec:PATH, ksdd2:PATH, folder:PATH or "
                   "manifest:FILE. Repeat for several.")
@click.option("--categories", metavar="A,B", help="Only these categories (default: all).")
@click.option("--detectors", metavar="A,B", help="Detectors to run (default: every built-in one; "
                                                   "see `pixeval detectors`).")
@click.option("--param", multiple=True, metavar="DET.NAME=VALUE",
              help="A hyperparameter of one detector, e.g. sp_cfa.rs_s=15. Repeatable.")
@click.option("--seeds", metavar="0,1,2", help="Seeds, as a list or a range like 0-4 (default: 0).")
@click.option("--backbone", help="Backbone for every detector that has one.")
@click.option("--resolution", type=int, help="Input resolution for every detector that has one.")
@click.option("--device", help="Torch device for every detector: cpu (default), cuda, cuda:N.")
@click.option("--out", metavar="DIR", help="Run folder (default: runs/bench). Rerunning into it skips "
                                           "finished jobs.")
@click.option("--save-maps/--no-save-maps", default=None,
              help="Also write every score map as a float TIFF at original size, in the MVTec "
                   "mirrored layout under DIR/maps/<detector>/<dataset>/seed<N>/.")
@click.option("--examples", type=int, metavar="N", help="Anomalous images per job kept for the "
                                                         "report's qualitative grid (default: 3).")
@click.option("--bootstrap", type=int, metavar="N",
              help="Bootstrap resamples of each job's test images, kept for the significance test "
                   "of the ranked table (default: 1000; 0 = none, the table then falls back to a "
                   "test over categories × seeds).")
@click.option("--threshold-holdout", type=float, metavar="SHARE",
              help="Share of each category's training images held out of every detector's fit; the "
                   "detector's maps of them set its deployment threshold, for the @t metrics (default: "
                   "0.1; 0 = fit on all, no deployment threshold).")
@click.option("--target-fpr", type=float, metavar="FPR",
              help="Pixel FPR that the deployment threshold allows on the held-out normal images "
                   "(default: 0.01).")
@click.option("--size-edges", metavar="F1,F2", help="Defect-size bins of the by-size table, as shares of "
                                                     "the image's pixels (default: 0.001,0.01).")
@click.option("--jobs", type=int, metavar="N", help="Run N jobs at once in worker processes (default: 1); "
                                                   "progress shows a bar per running job.")
@click.option("--scheduler", metavar="tcp://HOST:PORT",
              help="Send the jobs to this Dask scheduler (needs pip install 'pixeval[dask]'); progress "
                   "shows a bar per running job.")
@click.option("--import", "imports", multiple=True, metavar="MODULE",
              help="Import MODULE first (here and on every worker) to register its detectors.")
@click.option("--force", is_flag=True, help="Redo jobs the run folder already holds.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="Format of the printed table.")
@click.option("--primary", default=PRIMARY, show_default=True, help="Metric that orders the table.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bars on stderr, for the grid and each running job's phase (default: when "
                   "stderr is a terminal).")
@click.pass_context
def command(ctx: click.Context, config_file: str | None, force: bool, fmt: str, primary: str,
            progress: bool | None, **options) -> None:
    """Run detectors over datasets and print a ranked comparison.

    Runs a grid of jobs (detector × dataset × category × seed) and prints the ranked table. With
    no arguments: every built-in detector on the built-in synthetic-textures dataset, on the
    CPU, with one seed. Each job writes its result into the run folder when it finishes, so a run
    stopped halfway resumes where it stopped; `pixeval report DIR` tabulates and plots it later.
    """
    from pixeval.bench import RunStore, make_config, run_bench
    from pixeval.bench.jobs import load_config_file
    from pixeval.report import render_tables

    values = load_config_file(config_file) if config_file else {}
    for option, name in CONFIG_OPTIONS.items():
        given = ctx.get_parameter_source(option) == click.core.ParameterSource.COMMANDLINE
        if given and options[option] not in (None, ()):
            values[name] = list(options[option]) if isinstance(options[option], tuple) else options[option]
    config = make_config(values)
    summary = run_bench(config, force=force, progress=sys.stderr.isatty() if progress is None else progress)

    for job, error in summary.failed:
        click.echo(f"FAILED {job.label}: {error}", err=True)
    click.echo(f"{len(summary.finished)} jobs run, {len(summary.skipped)} already done, "
               f"{len(summary.failed)} failed; results in {summary.run_dir}", err=True)
    keys = {job.key for job in summary.jobs}
    table = RunStore(summary.run_dir).table()
    table = table[table["job"].isin(keys)]
    if not table.empty:
        click.echo(render_tables(table, fmt, primary=primary))
    if summary.failed:
        ctx.exit(1)

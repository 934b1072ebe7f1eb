"""Benchmark runs: a grid of jobs (detector × dataset × category × seed), run by an executor,
each result written atomically into a run folder, from which tables and plots are made.

:func:`run_bench` is what ``pixeval bench`` calls: it expands the configuration into jobs, skips
those the run folder already holds (unless ``force``), runs the rest and rebuilds the tidy table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pixeval.bench import executors
from pixeval.bench.jobs import BenchConfig, ConfigError, Job, expand_jobs, make_config, save_config
from pixeval.bench.store import RunStore, read_runs

__all__ = ["BenchConfig", "BenchSummary", "ConfigError", "Job", "RunStore", "make_config", "read_runs",
           "run_bench"]


@dataclass
class BenchSummary:
    """What a call of :func:`run_bench` did."""

    run_dir: Path
    jobs: list[Job]
    skipped: list[Job] = field(default_factory=list)
    finished: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)


def run_bench(config: BenchConfig, *, force: bool = False, progress: bool = False) -> BenchSummary:
    """Run every job of ``config`` that the run folder ``config.out`` does not hold yet.

    Failed jobs are reported in the summary (with their error) and left unfinished, so the next
    run retries them. ``progress`` shows one bar for the grid and, for jobs run in this process,
    one for the job's current phase.
    """
    jobs = expand_jobs(config)
    store = RunStore(config.out).create()
    save_config(config, store.root)
    if force:
        for job in jobs:
            store.remove(job)
    pending = [job for job in jobs if not store.is_finished(job)]
    summary = BenchSummary(store.root, jobs, skipped=[job for job in jobs if job not in pending])

    grid_bar, phase_bar = _bars(len(jobs), len(summary.skipped), progress, config)
    if config.scheduler:
        outcomes = executors.dask(pending, config.scheduler)
    elif config.jobs > 1:
        outcomes = executors.processes(pending, config.jobs)
    else:
        outcomes = executors.local(pending, progress=phase_bar)
    try:
        for job, outcome in outcomes:
            if isinstance(outcome, BaseException):
                summary.failed.append((job, f"{type(outcome).__name__}: {outcome}"))
            else:
                store.write(outcome)
                summary.finished.append(job)
            if grid_bar is not None:
                grid_bar.set_postfix_str(job.label, refresh=False)
                grid_bar.update(1)
    finally:
        if grid_bar is not None:
            grid_bar.close()
        if phase_bar is not None:
            phase_bar.close()
        store.write_table()
    return summary


def _bars(total: int, done: int, show: bool, config: BenchConfig):
    """The grid bar and, for local runs, a phase callback driving a second bar (or Nones)."""
    if not show:
        return None, None
    from tqdm.auto import tqdm

    grid = tqdm(total=total, initial=done, desc="jobs", unit="job", position=0, dynamic_ncols=True)
    if config.scheduler or config.jobs > 1:
        return grid, None
    return grid, PhaseBar(tqdm(total=1, desc="", position=1, leave=False, dynamic_ncols=True))


class PhaseBar:
    """A :data:`~pixeval.registry.ProgressCallback` that shows the current phase of a job."""

    def __init__(self, bar) -> None:
        self.bar = bar
        self.phase: str | None = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self.phase:
            self.phase = phase
            self.bar.reset(total=max(total, 1))
            self.bar.set_description_str(phase, refresh=False)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()

"""Benchmark runs: a grid of jobs (detector × dataset × category × seed), run by an executor,
each result written atomically into a run folder, from which tables and plots are made.

:func:`run_bench` is what ``pixeval bench`` calls: it expands the configuration into jobs, skips
those the run folder already holds (unless ``force``), runs the rest and rebuilds the tidy table.

With ``progress`` it shows one bar for the grid and, below it, the phase of each running job
(loading, fitting, predicting, scoring, as the detector reports them): one :class:`PhaseBar`
for a run in this process, or one bar per job running in a worker process or on a Dask worker
(:class:`JobBars`, fed through the executor's progress channel).
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
    run retries them. ``progress`` shows one bar for the grid and one for each running job's
    current phase.
    """
    jobs = expand_jobs(config)
    store = RunStore(config.out).create()
    save_config(config, store.root)
    if force:
        for job in jobs:
            store.remove(job)
    pending = [job for job in jobs if not store.is_finished(job)]
    summary = BenchSummary(store.root, jobs, skipped=[job for job in jobs if job not in pending])

    grid_bar, phase_bar, job_bars = _bars(len(jobs), len(summary.skipped), progress, config)
    if config.scheduler:
        outcomes = executors.dask(pending, config.scheduler, progress=job_bars)
    elif config.jobs > 1:
        outcomes = executors.processes(pending, config.jobs, progress=job_bars)
    else:
        outcomes = executors.local(pending, progress=phase_bar)
    try:
        for job, outcome in outcomes:
            if isinstance(outcome, BaseException):
                summary.failed.append((job, f"{type(outcome).__name__}: {outcome}"))
            else:
                store.write(outcome)
                summary.finished.append(job)
            if job_bars is not None:
                job_bars.finish(job)
            if grid_bar is not None:
                grid_bar.set_postfix_str(job.label, refresh=False)
                grid_bar.update(1)
    finally:
        for bar in (job_bars, phase_bar, grid_bar):
            if bar is not None:
                bar.close()
        store.write_table()
    return summary


def _bars(total: int, done: int, show: bool, config: BenchConfig):
    """The grid bar, and the phase bar of a local run or the job bars of a parallel one (the
    other None); all None when not ``show``."""
    if not show:
        return None, None, None
    from tqdm.auto import tqdm

    grid = tqdm(total=total, initial=done, desc="jobs", unit="job", position=0, dynamic_ncols=True)
    if config.scheduler or config.jobs > 1:
        return grid, None, JobBars(lambda position: _phase_tqdm(tqdm, position))
    return grid, PhaseBar(_phase_tqdm(tqdm, 1)), None


def _phase_tqdm(tqdm, position: int):
    """An empty bar at line ``position`` below the grid bar, cleared when closed."""
    return tqdm(total=1, desc="", position=position, leave=False, dynamic_ncols=True)


class PhaseBar:
    """A :data:`~pixeval.detector.ProgressCallback` that shows the current phase of a job, after
    ``label`` when given."""

    def __init__(self, bar, label: str = "") -> None:
        self.bar = bar
        self.label = label
        self.phase: str | None = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self.phase:
            self.phase = phase
            self.bar.reset(total=max(total, 1))
            self.bar.set_description_str(f"{self.label} {phase}" if self.label else phase, refresh=False)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


class JobBars:
    """A :data:`~pixeval.bench.executors.JobProgress` callback showing one :class:`PhaseBar`
    per running job, labelled with the job, on the lowest line below the grid bar that no other
    running job holds; :meth:`finish` frees a job's line. ``make_bar(line)`` makes the bars."""

    def __init__(self, make_bar) -> None:
        self.make_bar = make_bar
        self.running: dict[str, tuple[int, PhaseBar]] = {}  # job key -> (line, bar)

    def __call__(self, job: Job, phase: str, done: int, total: int) -> None:
        if job.key not in self.running:
            taken = {line for line, _ in self.running.values()}
            line = next(n for n in range(1, len(taken) + 2) if n not in taken)
            self.running[job.key] = line, PhaseBar(self.make_bar(line), label=job.label)
        self.running[job.key][1](phase, done, total)

    def finish(self, job: Job) -> None:
        if job.key in self.running:
            self.running.pop(job.key)[1].close()

    def close(self) -> None:
        for _, bar in self.running.values():
            bar.close()
        self.running.clear()

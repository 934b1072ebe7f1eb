"""Where jobs run: in this process, in worker processes, or on a Dask cluster.

Each executor is a generator of ``(job, outcome)`` pairs in the order jobs finish, ``outcome``
being the :class:`~pixeval.bench.runner.JobResult` or the exception the job raised. The process
that iterates owns the run folder and writes every result itself, so a remote worker needs the
datasets (at the same paths) and pixeval with the detectors' packages, but no access to the run
folder: results travel back with the job's future.

* :func:`local` runs one job at a time here and feeds the detector's progress to a phase bar.
* :func:`processes` runs up to N jobs at once in fresh worker processes (``spawn``, one job per
  process, so a job's peak memory is its own and torch threads never cross a ``fork``).
* :func:`dask` submits every job to an existing Dask scheduler (``tcp://host:8786``). Dask is an
  optional dependency (``pip install pixeval[dask]``), imported only here.
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed

from pixeval.bench.jobs import ConfigError, Job
from pixeval.bench.runner import JobResult, run_job
from pixeval.registry import ProgressCallback

Outcome = tuple[Job, "JobResult | BaseException"]

#: How long to wait for a Dask scheduler to answer.
CONNECT_TIMEOUT = "20s"


def local(jobs: list[Job], progress: ProgressCallback | None = None) -> Iterator[Outcome]:
    """Run ``jobs`` one after another in this process."""
    for job in jobs:
        try:
            yield job, run_job(job, progress=progress)
        except Exception as exc:  # one broken job must not stop the grid
            yield job, exc


def processes(jobs: list[Job], n_workers: int) -> Iterator[Outcome]:
    """Run ``jobs`` in up to ``n_workers`` worker processes at once."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=context, max_tasks_per_child=1) as pool:
        futures = {pool.submit(run_job, job): job for job in jobs}
        try:
            for future in as_completed(futures):
                yield futures[future], _outcome(future.result)
        finally:
            for future in futures:
                future.cancel()


def dask(jobs: list[Job], scheduler: str) -> Iterator[Outcome]:
    """Run ``jobs`` on the Dask cluster whose scheduler listens at ``scheduler``."""
    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError:
        raise ConfigError("--scheduler needs Dask distributed, which is not installed; "
                          "install it with: pip install 'pixeval[dask]'") from None
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({exc}); start one "
                          "with `dask scheduler` and workers with `dask worker ADDRESS`") from None
    with client:
        batch = uuid.uuid4().hex[:8]
        futures = {client.submit(run_job, job, key=f"pixeval-{job.key}-{batch}"): job for job in jobs}
        try:
            for future in dask_completed(list(futures), loop=client.loop):
                yield futures[future], _outcome(future.result)
        finally:
            client.cancel(list(futures))


def _outcome(get: Callable[[], JobResult]) -> "JobResult | BaseException":
    try:
        return get()
    except Exception as exc:
        return exc

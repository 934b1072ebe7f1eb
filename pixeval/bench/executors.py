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

Given a :data:`JobProgress` callback, :func:`processes` and :func:`dask` also bring the jobs'
progress back: a job runs through :func:`run_reporting`, which sends its **progress events**
``(job key, phase, done, total)`` through a **channel** (a :class:`QueueChannel` on a
``multiprocessing`` manager's queue; a :class:`TopicChannel`, Dask's pub-sub of worker events,
for Dask) to this process, which hands them to the callback while it waits for results. Events
are thinned by :class:`Throttle`; those arriving after their job's result are dropped. Progress
never fails a job: a channel that breaks only stops the job's events. Without a callback no
channel is made and jobs run :func:`~pixeval.bench.runner.run_job` directly.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any

from pixeval.bench.jobs import ConfigError, Job
from pixeval.bench.runner import JobResult, run_job
from pixeval.detector import ProgressCallback

Outcome = tuple[Job, "JobResult | BaseException"]
#: ``progress(job, phase, done, total)``: a job running elsewhere reached ``done`` of ``total``.
JobProgress = Callable[[Job, str, int, int], None]
#: A progress event as it travels: ``(job key, phase, done, total)``.
Event = tuple[str, str, int, int]

#: How long to wait for a Dask scheduler to answer.
CONNECT_TIMEOUT = "20s"
#: Least seconds between two events a job sends within one phase (see :class:`Throttle`).
EVENT_INTERVAL = 0.25
#: Seconds between two looks at the worker processes' progress queue.
POLL_SECONDS = 0.2


def local(jobs: list[Job], progress: ProgressCallback | None = None) -> Iterator[Outcome]:
    """Run ``jobs`` one after another in this process."""
    for job in jobs:
        try:
            yield job, run_job(job, progress=progress)
        except Exception as exc:  # one broken job must not stop the grid
            yield job, exc


def processes(jobs: list[Job], n_workers: int, progress: JobProgress | None = None) -> Iterator[Outcome]:
    """Run ``jobs`` in up to ``n_workers`` worker processes at once, their progress to ``progress``."""
    context = multiprocessing.get_context("spawn")
    with ExitStack() as stack:
        channel = QueueChannel(stack.enter_context(context.Manager()).Queue()) if progress else None
        pool = stack.enter_context(ProcessPoolExecutor(max_workers=n_workers, mp_context=context,
                                                       max_tasks_per_child=1))
        futures = {pool.submit(*_task(job, channel)): job for job in jobs}
        relay = Relay(jobs, progress)
        running = set(futures)
        try:
            while running:
                done, running = wait(running, timeout=POLL_SECONDS if channel else None,
                                     return_when=FIRST_COMPLETED)
                if channel:
                    channel.drain(relay)
                for future in done:
                    relay.finish(futures[future])
                    yield futures[future], _outcome(future.result)
        finally:
            for future in futures:
                future.cancel()


def dask(jobs: list[Job], scheduler: str, progress: JobProgress | None = None) -> Iterator[Outcome]:
    """Run ``jobs`` on the Dask cluster whose scheduler listens at ``scheduler``, their progress
    to ``progress``."""
    try:
        from distributed import Client
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
        inbox: SimpleQueue = SimpleQueue()  # finished futures and progress events, as they come
        channel = TopicChannel(f"pixeval-progress-{batch}") if progress else None
        if channel:
            client.subscribe_topic(channel.topic, lambda event: inbox.put(tuple(event[1])))
        futures = {}
        for job in jobs:
            future = client.submit(*_task(job, channel), key=f"pixeval-{job.key}-{batch}")
            future.add_done_callback(inbox.put)
            futures[future] = job
        relay = Relay(jobs, progress)
        try:
            for _ in futures:
                while isinstance(message := inbox.get(), tuple):
                    relay(message)
                relay.finish(futures[message])
                yield futures[message], _outcome(message.result)
        finally:
            client.cancel(list(futures))


def _task(job: Job, channel: QueueChannel | TopicChannel | None) -> tuple:
    """The function and arguments that run ``job`` on a worker, reporting through ``channel``."""
    return (run_job, job) if channel is None else (run_reporting, job, channel)


def run_reporting(job: Job, channel: QueueChannel | TopicChannel) -> JobResult:
    """:func:`~pixeval.bench.runner.run_job` on a worker, sending its progress events through
    ``channel``, thinned by :class:`Throttle`."""
    def send(phase: str, done: int, total: int) -> None:
        channel.send((job.key, str(phase), int(done), int(total)))

    return run_job(job, progress=Throttle(send))


class Throttle:
    """A progress callback passing on to ``send`` the first event of each phase, its last (the
    one with ``done >= total``, or else the one before the next phase starts) and in between at
    most one event per ``interval`` seconds. Once ``send`` raises, it sends nothing more."""

    def __init__(self, send: ProgressCallback, interval: float = EVENT_INTERVAL) -> None:
        self.send = send
        self.interval = interval
        self.phase: str | None = None
        self.held: tuple[str, int, int] | None = None  # the latest event not passed on
        self.sent_at = float("-inf")
        self.broken = False

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if phase != self.phase:
            if self.held is not None:
                self._pass_on(*self.held, now)
            self.phase = phase
        elif done < total and now - self.sent_at < self.interval:
            self.held = (phase, done, total)
            return
        self._pass_on(phase, done, total, now)

    def _pass_on(self, phase: str, done: int, total: int, now: float) -> None:
        self.held, self.sent_at = None, now
        if self.broken:
            return
        try:
            self.send(phase, done, total)
        except Exception:  # progress must never fail a job
            self.broken = True


@dataclass(frozen=True)
class QueueChannel:
    """Progress events through a queue shared with the worker processes (a manager's queue)."""

    queue: Any

    def send(self, event: Event) -> None:
        self.queue.put(event)

    def drain(self, relay: Relay) -> None:
        """Hand every event waiting in the queue to ``relay``; a broken queue just holds none."""
        try:
            while True:
                relay(self.queue.get_nowait())
        except (Empty, OSError, EOFError):
            return


@dataclass(frozen=True)
class TopicChannel:
    """Progress events as Dask worker events on ``topic``, which the client subscribes to."""

    topic: str

    def send(self, event: Event) -> None:
        from distributed import get_worker

        get_worker().log_event(self.topic, list(event))


class Relay:
    """Hands progress events of ``jobs`` to ``progress`` as ``(job, phase, done, total)``, but
    not those of jobs already finished (their bar is gone) nor of unknown keys."""

    def __init__(self, jobs: list[Job], progress: JobProgress | None) -> None:
        self.running = {job.key: job for job in jobs}
        self.progress = progress

    def __call__(self, event: Event) -> None:
        key, phase, done, total = event
        job = self.running.get(key)
        if job is not None and self.progress is not None:
            self.progress(job, phase, done, total)

    def finish(self, job: Job) -> None:
        self.running.pop(job.key, None)


def _outcome(get: Callable[[], JobResult]) -> "JobResult | BaseException":
    try:
        return get()
    except Exception as exc:
        return exc

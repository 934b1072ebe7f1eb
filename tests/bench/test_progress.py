"""Progress of parallel runs: worker processes and Dask workers send each job's phases back to the
bench, thinned, without ever failing a job, and the bench shows one bar per running job."""

from __future__ import annotations

from itertools import groupby

import numpy as np
import pandas as pd
import pytest

from pixeval.bench import JobBars, RunStore, executors, make_config, run_bench
from pixeval.bench.executors import QueueChannel, Relay, Throttle, TopicChannel, run_reporting
from pixeval.bench.jobs import expand_jobs
from pixeval.bench.runner import run_job

#: The phases a tiny detector's job goes through, in order (run_job's and the detector's own).
PHASES = ["load", "fit", "predict", "score"]


def tiny_config(root, **values):
    return make_config({"data": f"mvtec:{root}", "detectors": "tiny_zscore,tiny_blur",
                        "imports": ["tiny_detectors"], **values})


def recorded(calls: list[tuple], interval: float) -> Throttle:
    return Throttle(lambda *event: calls.append(event), interval=interval)


def test_throttle_passes_on_each_phases_first_and_last_event():
    calls = []
    throttle = recorded(calls, interval=3600)
    for event in [("load", 0, 1), ("load", 1, 1), *[("fit", i, 5) for i in range(1, 4)],
                  *[("predict", i, 10) for i in range(1, 11)], ("score", 0, 1)]:
        throttle(*event)
    # fit stops at 3/5: its last event is passed on when predict starts
    assert calls == [("load", 0, 1), ("load", 1, 1), ("fit", 1, 5), ("fit", 3, 5), ("predict", 1, 10),
                     ("predict", 10, 10), ("score", 0, 1)]


def test_throttle_without_interval_passes_on_everything():
    calls = []
    throttle = recorded(calls, interval=0)
    events = [("predict", i, 10) for i in range(1, 11)]
    for event in events:
        throttle(*event)
    assert calls == events


def test_a_throttle_whose_send_raises_stops_sending_quietly():
    calls = []

    def send(*event):
        calls.append(event)
        raise BrokenPipeError("gone")

    throttle = Throttle(send, interval=0)
    throttle("load", 0, 1)
    throttle("load", 1, 1)
    assert calls == [("load", 0, 1)]


class BrokenQueue:
    def put(self, item):
        raise BrokenPipeError("the manager is gone")

    def get_nowait(self):
        raise EOFError


@pytest.mark.parametrize("channel", [QueueChannel(BrokenQueue()), TopicChannel("no-worker-here")],
                         ids=["dead-queue", "no-dask-worker"])
def test_a_broken_channel_does_not_fail_the_job(tiny_mvtec, channel):
    job = expand_jobs(tiny_config(tiny_mvtec, detectors="tiny_zscore", categories="tiles"))[0]
    assert run_reporting(job, channel).metrics == run_job(job).metrics


def test_draining_a_broken_queue_hands_on_nothing():
    events = []
    QueueChannel(BrokenQueue()).drain(Relay([], lambda *event: events.append(event)))
    assert events == []


def test_relay_drops_events_of_finished_and_unknown_jobs(tiny_mvtec):
    first, second = expand_jobs(tiny_config(tiny_mvtec, categories="tiles"))
    events = []
    relay = Relay([first, second], lambda job, *event: events.append((job.key, *event)))
    relay((first.key, "fit", 1, 1))
    relay.finish(first)
    relay((first.key, "score", 1, 1))
    relay(("someone_else", "fit", 1, 1))
    relay((second.key, "predict", 2, 10))
    assert events == [(first.key, "fit", 1, 1), (second.key, "predict", 2, 10)]


class FakeBar:
    """Just what PhaseBar uses of a tqdm bar."""

    def __init__(self, line: int) -> None:
        self.line, self.n, self.total, self.desc, self.closed = line, 0, None, "", False

    def reset(self, total):
        self.n, self.total = 0, total

    def set_description_str(self, desc, refresh=True):
        self.desc = desc

    def refresh(self):
        pass

    def close(self):
        self.closed = True


def test_job_bars_give_each_running_job_a_free_line(tiny_mvtec):
    a, b, c = expand_jobs(tiny_config(tiny_mvtec))[:3]
    made = []
    bars = JobBars(lambda line: made.append(FakeBar(line)) or made[-1])
    bars(a, "fit", 1, 1)
    bars(b, "predict", 3, 10)
    bars(a, "predict", 1, 10)
    assert [(bar.line, bar.desc, bar.n, bar.total) for bar in made] == [
        (1, f"{a.label} predict", 1, 10), (2, f"{b.label} predict", 3, 10)]
    bars.finish(a)
    assert made[0].closed and not made[1].closed
    bars(c, "load", 0, 1)
    assert made[2].line == 1  # a's line, free again
    bars.close()
    assert all(bar.closed for bar in made)


def assert_every_job_went_through_its_phases(jobs, events):
    """Every job's events arrived, its phases in order, each counting up to its total."""
    by_job = {key: [e[1:] for e in group] for key, group in groupby(sorted(events, key=lambda e: e[0]),
                                                                    key=lambda e: e[0])}
    assert set(by_job) == {job.key for job in jobs}
    for job in jobs:
        # sorted() is stable: each job's events keep the order in which they arrived
        phases = [(phase, [(done, total) for _, done, total in group])
                  for phase, group in groupby(by_job[job.key], key=lambda e: e[0])]
        assert [phase for phase, _ in phases] == PHASES, job.key
        for phase, counts in phases:
            assert [done for done, _ in counts] == sorted(done for done, _ in counts), (job.key, phase)
            assert counts[-1][0] == counts[-1][1], (job.key, phase)


def metrics_by_job(outcomes):
    """Each job's metrics, NaN (an undefined metric) written as None so that equal results compare equal."""
    assert not [o for _, o in outcomes if isinstance(o, BaseException)], outcomes
    return {job.key: {name: None if np.isnan(value) else value for name, value in outcome.metrics.items()}
            for job, outcome in outcomes}


@pytest.mark.slow
def test_worker_processes_send_every_jobs_phases(tiny_mvtec, plugin_env, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", plugin_env["PYTHONPATH"])
    jobs = expand_jobs(tiny_config(tiny_mvtec))
    events = []
    outcomes = list(executors.processes(jobs, 2, progress=lambda job, *e: events.append((job.key, *e))))
    assert_every_job_went_through_its_phases(jobs, events)
    assert metrics_by_job(outcomes) == metrics_by_job(list(executors.local(jobs)))


@pytest.mark.slow
def test_dask_workers_send_every_jobs_phases(tiny_mvtec, plugin_env, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("PYTHONPATH", plugin_env["PYTHONPATH"])
    jobs = expand_jobs(tiny_config(tiny_mvtec))
    events = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        outcomes = list(executors.dask(jobs, cluster.scheduler_address,
                                       progress=lambda job, *e: events.append((job.key, *e))))
        quiet = list(executors.dask(jobs, cluster.scheduler_address))
    assert_every_job_went_through_its_phases(jobs, events)
    assert metrics_by_job(outcomes) == metrics_by_job(quiet)


def _results_without_timing(out):
    table = RunStore(out).table()
    return table[["detector", "dataset", "category", "seed", "metric", "value"]].sort_values(
        ["detector", "category", "seed", "metric"]).reset_index(drop=True)


@pytest.mark.slow
def test_parallel_bench_shows_a_bar_per_running_job(tiny_mvtec, tmp_path, plugin_env, monkeypatch, capsys):
    monkeypatch.setenv("PYTHONPATH", plugin_env["PYTHONPATH"])
    jobs = expand_jobs(tiny_config(tiny_mvtec))
    run_bench(tiny_config(tiny_mvtec, out=str(tmp_path / "quiet")))
    summary = run_bench(tiny_config(tiny_mvtec, out=str(tmp_path / "bars"), jobs=2), progress=True)
    assert len(summary.finished) == 4 and not summary.failed
    err = capsys.readouterr().err
    assert "jobs: 100%" in err and "4/4" in err
    for job in jobs:
        assert f"{job.label} predict: 100%" in err  # fed from the job's worker process
    pd.testing.assert_frame_equal(_results_without_timing(tmp_path / "quiet"),
                                  _results_without_timing(tmp_path / "bars"))

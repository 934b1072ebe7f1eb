"""Running benches end to end: results against scikit-learn, saved maps, resuming, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from click.testing import CliRunner
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from pixeval import Detector, create_detector, register_detector
from pixeval.bench import RunStore, executors, make_config, run_bench
from pixeval.bench.jobs import ConfigError
from pixeval.cli import main
from pixeval.data import open_dataset

from conftest import bench_split


def bench_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["bench", "--data", f"mvtec:{root}", "--detectors", "tiny_zscore,tiny_blur", "--import",
            "tiny_detectors", "--out", str(out), "--no-progress", *extra]


def reference_maps(name: str, root: Path, category: str, holdout: float = 0.1, **params):
    """Maps of a detector fitted outside the bench (on the training images the bench does not
    hold out), with the category's masks; and the maps of the held-out images."""
    data = open_dataset(f"mvtec:{root}").load_category(category)
    fit_on, held = bench_split(root, category, [s.load_image() for s in data.train], holdout)
    detector = create_detector(name, params).fit(fit_on)
    maps = detector.predict([s.load_image() for s in data.test]).maps
    held_maps = detector.predict(held).maps if held else []
    return maps, [s.load_mask() for s in data.test], data.test, held_maps


def lowest_threshold_at_fpr(normal_maps, target):
    """The lowest score value whose share of normal pixels scoring >= it is <= target, plainly."""
    scores = np.concatenate([m.ravel() for m in normal_maps])
    return min(v for v in np.unique(scores) if np.mean(scores >= v) <= target)


def test_tiny_bench_end_to_end(tiny_mvtec, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, bench_args(tiny_mvtec, out, "--categories", "tiles", "--save-maps"))
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "results.csv")
    assert set(table["detector"]) == {"tiny_zscore", "tiny_blur"} and set(table["category"]) == {"tiles"}
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), RunStore(out).table())
    assert (out / "config.yaml").exists()

    aupr = {}
    for name in ("tiny_zscore", "tiny_blur"):
        maps, masks, _, held_maps = reference_maps(name, tiny_mvtec, "tiles")
        scores = np.concatenate([m.ravel() for m in maps])
        labels = np.concatenate([m.ravel() for m in masks])
        rows = table[table["detector"] == name].set_index("metric")["value"]
        aupr[name] = average_precision_score(labels, scores)
        assert rows["pixel_aupr"] == pytest.approx(aupr[name], abs=1e-12)
        assert rows["pixel_auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
        # the deployment threshold: set on the one held-out training image (10 % of 8), at FPR 1 %
        t = lowest_threshold_at_fpr(held_maps, 0.01)
        assert len(held_maps) == rows["normal_images"] == 1 and rows["normal_threshold"] == pytest.approx(t, abs=0)
        assert "threshold" not in rows  # stored once, as normal_threshold
        predicted = scores >= t
        assert rows["pixel_f1_at_threshold"] == pytest.approx(f1_score(labels, predicted), abs=1e-12)
        assert rows["image_f1_at_threshold"] == pytest.approx(
            f1_score([m.any() for m in masks], [m.max() >= t for m in maps]), abs=1e-12)
        assert {"pixel_aupimo", "boundary_f1", "boundary_iou", "boundary_f1_at_threshold",
                "pixel_aupr [size >= 1%]", "region_recall [size < 0.1%]"} <= set(rows.index)
        meta = table[table["detector"] == name].iloc[0]
        assert meta["n_test"] == len(maps) and meta["n_train"] == 7 and meta["peak_memory_mb"] > 0
        assert json.loads(meta["versions"])["numpy"] == np.__version__

    # the printed table ranks the better P-AUPR first
    lines = [line for line in result.output.splitlines() if line.startswith("tiny_")]
    assert lines[0].split()[0] == max(aupr, key=aupr.get)


def test_saved_maps_mirror_the_test_set_and_rescore(tiny_mvtec, tmp_path):
    out = tmp_path / "run"
    run_bench(make_config({"data": f"mvtec:{tiny_mvtec}", "detectors": "tiny_blur", "categories": "tiles",
                           "out": str(out), "save_maps": True}))
    maps, masks, samples, _ = reference_maps("tiny_blur", tiny_mvtec, "tiles")
    root = out / "maps" / "tiny_blur" / tiny_mvtec.name / "seed0"
    for score_map, sample in zip(maps, samples):
        saved = tifffile.imread(root / "tiles" / "test" / f"{sample.image_id}.tiff")
        assert saved.dtype == np.float32 and np.array_equal(saved, score_map)
    assert len(list(root.rglob("*.tiff"))) == len(samples)

    rescored = CliRunner().invoke(main, ["score", str(root), str(tiny_mvtec), "--format", "json", "-q"])
    assert rescored.exit_code == 0, rescored.output
    records = json.loads(rescored.output)
    record = next(r for r in (records if isinstance(records, list) else records["rows"])
                  if r.get("category") == "tiles")
    stored = RunStore(out).table().set_index("metric")["value"]
    for metric in ("pixel_aupr", "pixel_auroc", "pixel_aupro", "pixel_f1_max"):
        column = next(k for k in record if k.lower().replace("-", "_") in (metric, metric.replace("pixel_", "p_")))
        assert record[column] == pytest.approx(stored[metric], abs=1e-9)


def test_rerun_skips_finished_jobs_and_force_redoes_them(tiny_mvtec, tmp_path):
    config = make_config({"data": f"mvtec:{tiny_mvtec}", "detectors": "tiny_zscore", "out": str(tmp_path)})
    first = run_bench(config)
    assert len(first.finished) == 2 and not first.skipped
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("jobs/*/result.json")}
    second = run_bench(config)
    assert not second.finished and len(second.skipped) == 2
    assert stamps == {p: p.stat().st_mtime_ns for p in tmp_path.glob("jobs/*/result.json")}
    third = run_bench(config, force=True)
    assert len(third.finished) == 2 and not third.skipped
    assert all(p.stat().st_mtime_ns != t for p, t in stamps.items())


def test_other_hyperparameters_do_not_mix_into_a_run(tiny_mvtec, tmp_path):
    run_bench(make_config({"data": f"mvtec:{tiny_mvtec}", "detectors": "tiny_blur", "out": str(tmp_path)}))
    changed = make_config({"data": f"mvtec:{tiny_mvtec}", "detectors": "tiny_blur", "out": str(tmp_path),
                           "params": ["tiny_blur.sigma=5"]})
    with pytest.raises(ConfigError, match="other hyperparameters"):
        run_bench(changed)
    assert len(run_bench(changed, force=True).finished) == 2


@register_detector("tiny_broken")
class Broken(Detector):
    """Fails on one category (a test detector)."""

    def fit(self, train_images, progress=None):
        return self

    def predict(self, images, progress=None):
        raise RuntimeError("deliberate failure")

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def test_a_failed_job_is_reported_and_retried_later(tiny_mvtec, tmp_path):
    result = CliRunner().invoke(main, ["bench", "--data", f"mvtec:{tiny_mvtec}", "--detectors",
                                       "tiny_broken,tiny_zscore", "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code == 1
    assert "FAILED tiny_broken" in result.output and "deliberate failure" in result.output
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == [
        f"tiny_zscore__{tiny_mvtec.name}__fabric__seed0", f"tiny_zscore__{tiny_mvtec.name}__tiles__seed0"]


@pytest.mark.parametrize("args, message", [
    (["--detectors", "nope"], "unknown detector 'nope'"),
    (["--data", "mvtec:/does/not/exist", "--detectors", "tiny_zscore"], "/does/not/exist"),
    (["--detectors", "tiny_zscore", "--param", "tiny_zscore.delay=soon"], "delay"),
    (["--detectors", "tiny_zscore", "--scheduler", "tcp://127.0.0.1:1"], "cannot reach the Dask scheduler"),
])
def test_bad_input_is_a_clear_error_with_exit_code_2(tiny_mvtec, tmp_path, monkeypatch, args, message):
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", "1s")
    base = ["bench", "--data", f"mvtec:{tiny_mvtec}", "--out", str(tmp_path), "--no-progress"]
    result = CliRunner().invoke(main, base + args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_a_killed_run_resumes_without_redoing_finished_jobs(tiny_mvtec, tmp_path, plugin_env):
    out = tmp_path / "run"
    slow_down = ["--param", "tiny_zscore.delay=0.1", "--param", "tiny_blur.delay=0.1"]
    args = [sys.executable, "-c", "from pixeval.cli import main; main()", *bench_args(tiny_mvtec, out, *slow_down)]
    process = subprocess.Popen(args, env=plugin_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not finished_jobs(out):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no job finished in time"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = finished_jobs(out)
    assert 1 <= len(finished) < 4

    resumed = subprocess.run(args, env=plugin_env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{4 - len(finished)} jobs run, {len(finished)} already done" in resumed.stderr
    after = finished_jobs(out)
    assert len(after) == 4 and all(after[k] == t for k, t in finished.items())
    assert not [p for p in (out / "jobs").iterdir() if p.name.startswith(".")]


def finished_jobs(out: Path) -> dict[str, int]:
    """Finished job folders (not the hidden ones being written) -> their result's mtime."""
    return {p.parent.name: p.stat().st_mtime_ns for p in out.glob("jobs/*/result.json")
            if not p.parent.name.startswith(".")}


def _job_pid(result_json: Path) -> int:
    return json.loads(result_json.read_text())["meta"]["pid"]


def _results_without_timing(out: Path) -> pd.DataFrame:
    table = RunStore(out).table()
    return table[["detector", "dataset", "category", "seed", "metric", "value"]].sort_values(
        ["detector", "category", "seed", "metric"]).reset_index(drop=True)


@pytest.mark.slow
def test_worker_processes_give_the_same_results(tiny_mvtec, tmp_path, plugin_env, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", plugin_env["PYTHONPATH"])
    base = {"data": f"mvtec:{tiny_mvtec}", "detectors": "tiny_zscore,tiny_blur", "imports": ["tiny_detectors"]}
    run_bench(make_config({**base, "out": str(tmp_path / "local")}))
    summary = run_bench(make_config({**base, "out": str(tmp_path / "procs"), "jobs": 2}))
    assert len(summary.finished) == 4 and not summary.failed
    pd.testing.assert_frame_equal(_results_without_timing(tmp_path / "local"),
                                  _results_without_timing(tmp_path / "procs"))
    pids = {_job_pid(p) for p in (tmp_path / "procs").glob("jobs/*/result.json")}
    assert os.getpid() not in pids and len(pids) == 4  # one fresh worker process per job


@pytest.mark.slow
def test_dask_cluster_results_land_in_the_same_store(tiny_mvtec, tmp_path, plugin_env, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("PYTHONPATH", plugin_env["PYTHONPATH"])
    base = {"data": f"mvtec:{tiny_mvtec}", "detectors": "tiny_zscore,tiny_blur", "imports": ["tiny_detectors"]}
    run_bench(make_config({**base, "out": str(tmp_path / "local")}))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        config = make_config({**base, "out": str(tmp_path / "dask"), "scheduler": cluster.scheduler_address})
        summary = run_bench(config)
        with distributed.Client(cluster) as client:
            worker_pids = set(client.run(os.getpid).values())
    assert len(summary.finished) == 4 and not summary.failed
    assert os.getpid() not in worker_pids and len(worker_pids) == 2
    assert {_job_pid(p) for p in (tmp_path / "dask").glob("jobs/*/result.json")} <= worker_pids
    pd.testing.assert_frame_equal(_results_without_timing(tmp_path / "local"),
                                  _results_without_timing(tmp_path / "dask"))


def test_progress_shows_the_grid_and_the_detectors_phases(tiny_mvtec, tmp_path, capsys):
    run_bench(make_config({"data": f"mvtec:{tiny_mvtec}", "detectors": "tiny_zscore", "categories": "tiles",
                           "out": str(tmp_path)}), progress=True)
    err = capsys.readouterr().err
    assert "jobs: 100%" in err and "1/1" in err
    assert "predict: 100%" in err and "10/10" in err  # fed by the detector's progress callback

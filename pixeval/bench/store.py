"""The results store: a run folder that holds every finished job and the tidy table made from them.

Layout of a run folder::

    RUN/config.yaml                    the configuration (pixeval bench --config RUN/config.yaml repeats it)
    RUN/jobs/<job key>/result.json     the job, its metrics and metadata
    RUN/jobs/<job key>/curves.npz      thinned pixel ROC / PR / PRO curves
    RUN/jobs/<job key>/resamples.npz   every pixel and image metric on each bootstrap resample of the
                                       test images (runs made before pixeval kept them lack it)
    RUN/jobs/<job key>/examples.npz    pictures for the qualitative grid
    RUN/maps/<detector>/<dataset>/seed<N>/<category>/test/<defect>/<id>.tiff   (with --save-maps)
    RUN/results.csv, RUN/results.parquet   the tidy table below, as CSV and as Parquet

A job is **finished** exactly when its ``jobs/<key>`` folder exists: the folder is written under
a temporary name and renamed into place, which is atomic, so a run killed at any moment leaves
each job either finished or absent, never half-written. Score maps are written the same way, one
category folder at a time, before the job folder; a job killed in between is redone and its maps
replaced.

The **tidy table** has one row per (detector, dataset, category, seed, metric) with the value and
the job's metadata (:data:`META_COLUMNS`); it is rebuilt from the job folders, which stay the
authority, so several runs can be read and combined (:func:`read_runs`), and the bootstrap
samples of the jobs in such a table read back beside it (:func:`read_resamples`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from pixeval.bench.jobs import ConfigError, Job
from pixeval.bench.runner import JobResult

#: Columns of the tidy table that identify a number.
KEY_COLUMNS = ["detector", "dataset", "category", "seed", "metric", "value"]
#: Columns that describe the job a number came from.
META_COLUMNS = ["backbone", "resolution", "hyperparameters", "params_hash", "fit_seconds",
                "predict_seconds", "peak_memory_mb", "n_train", "n_test", "versions", "dataset_spec",
                "finished", "job", "run"]


class RunStore:
    """One run folder (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.jobs_dir = self.root / "jobs"

    def create(self) -> "RunStore":
        """Make the folder if needed and clear what a killed run left half-written; return ``self``."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        leftovers = [*self.jobs_dir.glob(".tmp-*"), *self.jobs_dir.glob(".old-*"),
                     *self.root.glob("maps/*/*/*/.tmp-*"), *self.root.glob("maps/*/*/*/.old-*")]
        for path in leftovers:
            shutil.rmtree(path)
        return self

    def job_dir(self, job: Job) -> Path:
        return self.jobs_dir / job.key

    def maps_dir(self, job: Job) -> Path:
        """Root of ``job``'s category in the MVTec mirrored layout (``.../<category>``)."""
        return self.root / "maps" / job.detector / job.dataset_name / f"seed{job.seed}" / job.category

    def is_finished(self, job: Job) -> bool:
        """Whether ``job`` has a result here. Raises :class:`ConfigError` when the result was made
        with other hyperparameters, which a rerun must not mix in silently."""
        result = self.job_dir(job) / "result.json"
        if not result.exists():
            return False
        stored = json.loads(result.read_text())["params_hash"]
        if stored != job.params_hash:
            raise ConfigError(f"{self.root} already holds {job.label} made with other hyperparameters "
                              f"({result}); use --force to redo it, or another --out")
        return True

    def write(self, result: JobResult) -> Path:
        """Write ``result`` atomically (maps first, then the job folder); return the job folder."""
        job = result.job
        if result.maps:
            self._write_maps(job, result.maps)
        target = self.job_dir(job)
        tmp = self.jobs_dir / f".tmp-{job.key}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        record = {"key": job.key, "job": dataclasses.asdict(job), "params_hash": job.params_hash,
                  "metrics": result.metrics, "meta": result.meta,
                  "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        (tmp / "result.json").write_text(json.dumps(record, indent=1, default=_json_default))
        np.savez_compressed(tmp / "curves.npz", **result.curves)
        np.savez_compressed(tmp / "resamples.npz", **result.resamples)
        np.savez_compressed(tmp / "examples.npz", **result.examples)
        _swap_into_place(tmp, target)
        return target

    def _write_maps(self, job: Job, maps: list[tuple[str, np.ndarray]]) -> None:
        from pixeval.io import write_score_map

        target = self.maps_dir(job)
        tmp = target.with_name(f".tmp-{target.name}-{uuid.uuid4().hex[:8]}")
        for relative, score_map in maps:
            path = tmp / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            write_score_map(path, score_map)
        _swap_into_place(tmp, target)

    def remove(self, job: Job) -> None:
        """Forget ``job`` (for ``--force``): its folder and maps go."""
        for path in (self.job_dir(job), self.maps_dir(job)):
            if path.exists():
                shutil.rmtree(path)

    def finished_records(self) -> list[dict]:
        """The ``result.json`` records of every finished job, in key order."""
        if not self.jobs_dir.is_dir():
            return []
        return [json.loads((d / "result.json").read_text())
                for d in sorted(self.jobs_dir.iterdir()) if not d.name.startswith(".") and d.is_dir()]

    def table(self) -> pd.DataFrame:
        """The tidy table of every finished job (see the module docstring)."""
        rows = []
        for record in self.finished_records():
            job, meta = record["job"], record["meta"]
            common = {"detector": job["detector"], "dataset": job["dataset_name"], "category": job["category"],
                      "seed": job["seed"], "backbone": meta.get("backbone"), "resolution": meta.get("resolution"),
                      "hyperparameters": json.dumps(meta["hyperparameters"], sort_keys=True),
                      "params_hash": record["params_hash"], "fit_seconds": meta["fit_seconds"],
                      "predict_seconds": meta["predict_seconds"], "peak_memory_mb": meta["peak_memory_mb"],
                      "n_train": meta["n_train"], "n_test": meta["n_test"],
                      "versions": json.dumps(meta["versions"], sort_keys=True), "dataset_spec": job["dataset"],
                      "finished": record["finished"], "job": record["key"], "run": str(self.root)}
            rows.extend({**common, "metric": metric, "value": value} for metric, value in record["metrics"].items())
        return pd.DataFrame(rows, columns=KEY_COLUMNS + META_COLUMNS)

    def write_table(self) -> list[Path]:
        """Write ``results.csv`` and ``results.parquet`` atomically."""
        table = self.table()
        return [_atomic(self.root / "results.csv", lambda p: table.to_csv(p, index=False)),
                _atomic(self.root / "results.parquet", lambda p: table.to_parquet(p, index=False))]


def read_runs(paths: list[str | Path]) -> pd.DataFrame:
    """The tidy tables of one or several run folders, combined. Raises :class:`ConfigError` when a
    path is no run folder, or when two runs hold the same detector, dataset, category and seed
    (combining them would count one job twice)."""
    tables = []
    for path in paths:
        store = RunStore(path)
        if not store.jobs_dir.is_dir():
            raise ConfigError(f"{path} is not a pixeval bench run folder (it has no jobs/ folder); "
                              "pass the --out folder of a `pixeval bench` run")
        tables.append(store.table())
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=KEY_COLUMNS + META_COLUMNS)
    ids = ["detector", "dataset", "category", "seed", "metric"]
    dup = table[table.duplicated(ids, keep=False)]
    if not dup.empty:
        first = dup.iloc[0]
        raise ConfigError(f"runs {', '.join(sorted(set(dup['run'])))} both hold {first['detector']} on "
                          f"{first['dataset']}/{first['category']} seed {first['seed']}; pass runs with "
                          "disjoint jobs")
    return table


def load_job_arrays(run: str | Path, job_key: str, kind: str) -> dict[str, np.ndarray]:
    """The ``curves``, ``resamples`` or ``examples`` arrays stored with a finished job (empty if
    none)."""
    path = Path(run) / "jobs" / job_key / f"{kind}.npz"
    if not path.exists():
        return {}
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def read_resamples(table: pd.DataFrame, metric: str) -> dict[tuple[str, str, str, int], np.ndarray]:
    """The bootstrap samples of ``metric`` (float64) of each job in a tidy table (its ``run`` and
    ``job`` columns say where the job is stored), by ``(detector, dataset, category, seed)``. Jobs
    without them (runs made before they were kept, or a run folder that is gone) are left out."""
    samples = {}
    for row in table.drop_duplicates(["run", "job"]).itertuples():
        arrays = load_job_arrays(row.run, row.job, "resamples")
        if metric in arrays:
            samples[(row.detector, row.dataset, row.category, int(row.seed))] = arrays[metric].astype(np.float64)
    return samples


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Rename the finished folder ``tmp`` to ``target``, replacing an older ``target``."""
    if target.exists():
        old = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:8]}")
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(target)


def _atomic(path: Path, write) -> Path:
    tmp = path.with_name(f".tmp-{path.name}")
    write(tmp)
    tmp.replace(path)
    return path


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in result.json")

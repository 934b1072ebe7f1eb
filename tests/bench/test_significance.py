"""p vs next: the paired bootstrap over test images, stored per job, and the sign-flip fallback."""

from __future__ import annotations

import json
import shutil
import zlib

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pixeval.bench import make_config, read_runs, run_bench
from pixeval.bench.store import load_job_arrays, read_resamples
from pixeval.cli import main
from pixeval.data import open_dataset
from pixeval.metrics import bootstrap_samples
from pixeval.metrics.bootstrap import compare
from pixeval import create_detector
from pixeval.report.ranking import ranked_table
from pixeval.report.significance import bootstrap_test, sign_flip_test

from conftest import bench_split
from test_report import METRICS, random_results, tidy  # noqa: F401  (random_results is a fixture)

DETECTORS = ("tiny_blur", "tiny_zscore")
#: Bootstrap resamples per job in these runs (the default is 1000).
RESAMPLES = 500


@pytest.fixture(scope="module")
def one_seed_run(tiny_mvtec, tmp_path_factory):
    """Both tiny detectors, one seed, both categories of the tiny dataset."""
    out = tmp_path_factory.mktemp("significance") / "run"
    run_bench(make_config({"data": f"mvtec:{tiny_mvtec}", "detectors": ",".join(DETECTORS), "out": str(out),
                           "bootstrap": RESAMPLES}))
    return out


def report_json(*runs) -> dict:
    result = CliRunner().invoke(main, ["report", *map(str, runs), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_stored_resamples_are_the_metrics_on_resamples_shared_by_all_detectors(one_seed_run, tiny_mvtec):
    data = open_dataset(f"mvtec:{tiny_mvtec}").load_category("tiles")
    masks = [s.load_mask() for s in data.test]
    seed = zlib.crc32(f"{tiny_mvtec.name}/tiles".encode())
    table = read_runs([one_seed_run])
    for name in DETECTORS:
        detector = create_detector(name, {}).fit(bench_split(tiny_mvtec, "tiles",
                                                             [s.load_image() for s in data.train])[0])
        prediction = detector.predict([s.load_image() for s in data.test])
        # the same call with the seed of the category alone reproduces the stored samples
        expected = bootstrap_samples(prediction.maps, masks, image_scores=prediction.image_scores,
                                     n_resamples=RESAMPLES, seed=seed)
        job = table[(table["detector"] == name) & (table["category"] == "tiles")]["job"].iloc[0]
        with np.load(one_seed_run / "jobs" / job / "resamples.npz") as stored:
            assert set(stored.files) == set(expected)
            for metric, values in expected.items():
                assert stored[metric].dtype == np.float32 and stored[metric].shape == (RESAMPLES,)
                np.testing.assert_array_equal(stored[metric], values.astype(np.float32))


def test_one_seed_run_is_significant_with_the_bootstrap_where_sign_flips_cannot_be(one_seed_run):
    document = report_json(one_seed_run)
    rows = {row["detector"]: row for row in document["ranked"]}
    assert [row["detector"] for row in document["ranked"]] == list(DETECTORS)
    assert "paired bootstrap test" in document["caption"] and "sign-flip" not in document["caption"]
    assert 2 / (RESAMPLES + 1) <= rows["tiny_blur"]["p vs next"] < 0.05
    # the same two cells by sign flips: two cells allow no p below 0.5
    cells = read_runs([one_seed_run]).query("metric == 'pixel_aupr'").pivot(
        index="category", columns="detector", values="value")
    assert (cells["tiny_blur"] > cells["tiny_zscore"]).all()
    assert sign_flip_test(cells["tiny_blur"].to_numpy(), cells["tiny_zscore"].to_numpy()).p_value == 0.5


def test_p_vs_next_is_the_bootstrap_p_of_the_table_average(one_seed_run):
    table = read_runs([one_seed_run])
    samples = read_resamples(table, "pixel_aupr")
    assert len(samples) == 4
    values = table.query("metric == 'pixel_aupr'").set_index(["detector", "category"])["value"]
    dataset = table["dataset"].iloc[0]
    # one seed: the table average is the mean over the two categories, per resample too
    mean = {d: np.mean([samples[(d, dataset, c, 0)] for c in ("fabric", "tiles")], axis=0) for d in DETECTORS}
    point = {d: np.mean([values[(d, c)] for c in ("fabric", "tiles")]) for d in DETECTORS}
    expected = compare("pixel_aupr", point["tiny_blur"], point["tiny_zscore"], mean["tiny_blur"],
                       mean["tiny_zscore"], 0.95)
    p = ranked_table(table, METRICS, resamples=samples).frame.set_index("detector")["p vs next"]
    assert p["tiny_blur"] == pytest.approx(expected.p_value)


def test_runs_in_several_folders_and_runs_without_resamples(one_seed_run, tmp_path):
    # one run folder per detector: samples are found through each row's run folder
    split = {}
    for name in DETECTORS:
        split[name] = tmp_path / name
        (split[name] / "jobs").mkdir(parents=True)
        for job in (one_seed_run / "jobs").glob(f"{name}__*"):
            shutil.copytree(job, split[name] / "jobs" / job.name)
    combined = report_json(*split.values())
    assert "paired bootstrap test" in combined["caption"]
    assert combined["ranked"] == report_json(one_seed_run)["ranked"]

    # a run made before the samples were kept: the sign-flip test, and the caption says why
    for path in split["tiny_zscore"].glob("jobs/*/resamples.npz"):
        path.unlink()
    partial = report_json(*split.values())
    assert "sign-flip test" in partial["caption"] and "lack paired bootstrap samples" in partial["caption"]
    assert partial["ranked"][0]["p vs next"] == 0.5
    for path in split["tiny_blur"].glob("jobs/*/resamples.npz"):
        path.unlink()
    old = report_json(*split.values())
    assert "sign-flip test" in old["caption"] and "have no bootstrap samples" in old["caption"]


def test_bootstrap_test_averages_per_seed_then_over_seeds():
    rng = np.random.default_rng(0)
    seeds = np.array([0, 0, 0, 1])  # seed 1 has one cell only: plain cell means would differ
    samples_a, samples_b = rng.random((4, 200)), rng.random((4, 200)) - 0.05
    a, b = samples_a.mean(axis=1), samples_b.mean(axis=1)
    test = bootstrap_test(a, b, samples_a, samples_b, seeds)

    def average(x):
        return (x[:3].mean(axis=0) + x[3]) / 2

    differences = average(samples_a) - average(samples_b)
    tail = min(np.sum(differences <= 0), np.sum(differences >= 0))
    assert test.p_value == pytest.approx(min(1.0, 2 * (1 + tail) / 201))
    assert test.mean_difference == pytest.approx(average(a) - average(b))
    assert (test.method, test.n, test.n_resamples) == ("bootstrap", 4, 200)
    # a cell with a NaN value is dropped, as by the sign-flip test
    a[3] = np.nan
    assert bootstrap_test(a, b, samples_a, samples_b, seeds).n == 3


def test_pairs_without_samples_fall_back_alone_and_are_named(random_results):
    results = tidy(random_results)
    rng = np.random.default_rng(1)
    resamples = {(d, "ds", c, s): rng.random(300) for (d, c, s) in random_results if d != "weak"}
    table = ranked_table(results, METRICS, resamples=resamples)
    assert list(table.frame["detector"]) == ["good", "middle", "weak"]
    assert "paired bootstrap test" in table.caption and "300 resamples" in table.caption
    assert len(table.notes) == 1 and table.notes[0].startswith("p vs next of middle (vs weak): exact paired "
                                                               "sign-flip test")
    sign_flip = ranked_table(results, METRICS).frame["p vs next"]
    assert table.frame["p vs next"].iloc[1] == sign_flip.iloc[1]
    assert table.frame["p vs next"].iloc[0] != sign_flip.iloc[0]
    assert pd.isna(table.frame["p vs next"].iloc[2])


def test_bootstrap_0_keeps_no_samples_and_the_table_says_it_fell_back(tiny_mvtec, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["bench", "--data", f"mvtec:{tiny_mvtec}", "--detectors", ",".join(DETECTORS),
                                       "--bootstrap", "0", "--out", str(out), "--format", "json", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert all(not load_job_arrays(out, job.name, "resamples") for job in (out / "jobs").iterdir())
    caption = report_json(out)["caption"]
    assert "sign-flip test" in caption and "--bootstrap 0" in caption
    bad = CliRunner().invoke(main, ["bench", "--data", f"mvtec:{tiny_mvtec}", "--bootstrap", "-1", "--out", str(out)])
    assert bad.exit_code == 2 and "bootstrap must be at least 0" in bad.output

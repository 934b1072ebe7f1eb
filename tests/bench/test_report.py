"""Ranked tables, significance between neighbours, the report command and the HTML page."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.stats import permutation_test

from pixeval.bench import make_config, run_bench
from pixeval.cli import main
from pixeval.report import render_tables
from pixeval.report.html import FN, FP, TP, segmentation_colours, write_html
from pixeval.report.ranking import ranked_table
from pixeval.report.significance import sign_flip_test

METRICS = ["pixel_aupr", "pixel_auroc"]


def tidy(values: dict[tuple[str, str, int], dict[str, float]]) -> pd.DataFrame:
    """A results table from {(detector, category, seed): {metric: value}}."""
    rows = [{"detector": d, "dataset": "ds", "category": c, "seed": s, "metric": m, "value": v,
             "run": "r", "job": f"{d}-{c}-{s}", "fit_seconds": 1.0, "predict_seconds": 1.0, "peak_memory_mb": 1.0}
            for (d, c, s), metrics in values.items() for m, v in metrics.items()]
    return pd.DataFrame(rows)


@pytest.fixture
def random_results():
    rng = np.random.default_rng(3)
    values = {}
    for shift, detector in zip((0.3, 0.1, 0.0), ("good", "middle", "weak")):
        for category in ("a", "b", "c"):
            for seed in (0, 1):
                values[(detector, category, seed)] = {m: float(rng.uniform(0, 0.6) + shift) for m in METRICS}
    return values


def test_means_ranks_and_order_match_a_plain_computation(random_results):
    table = ranked_table(tidy(random_results), METRICS).frame.set_index("detector")
    detectors, categories, seeds = ("good", "middle", "weak"), ("a", "b", "c"), (0, 1)
    for d in detectors:
        per_seed = [np.mean([random_results[(d, c, s)]["pixel_aupr"] for c in categories]) for s in seeds]
        assert table.loc[d, "P-AUPR"] == pytest.approx(np.mean(per_seed))
        assert table.loc[d, "P-AUPR sd"] == pytest.approx(np.std(per_seed, ddof=1))
    # average rank: per category and metric, rank the seed means (1 = best), then average
    ranks = {d: [] for d in detectors}
    for c in categories:
        for m in METRICS:
            means = {d: np.mean([random_results[(d, c, s)][m] for s in seeds]) for d in detectors}
            for position, d in enumerate(sorted(means, key=means.get, reverse=True), start=1):
                ranks[d].append(position)
    for d in detectors:
        assert table.loc[d, "avg rank"] == pytest.approx(np.mean(ranks[d]))
    assert list(table.index) == sorted(detectors, key=lambda d: -table.loc[d, "P-AUPR"])


def test_neighbour_p_values_match_scipy_exact_permutation_test(random_results):
    table = ranked_table(tidy(random_results), METRICS).frame
    order = list(table["detector"])
    cells = [(c, s) for c in ("a", "b", "c") for s in (0, 1)]
    for upper, lower, p in zip(order, order[1:], table["p vs next"]):
        a = np.array([random_results[(upper, *cell)]["pixel_aupr"] for cell in cells])
        b = np.array([random_results[(lower, *cell)]["pixel_aupr"] for cell in cells])
        reference = permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), vectorized=True,
                                     permutation_type="samples", n_resamples=np.inf).pvalue
        assert p == pytest.approx(reference)
    assert np.isnan(table["p vs next"].iloc[-1])


def test_sign_flip_test_properties():
    # three cells all in favour: the smallest p-value three cells allow, 2/8
    assert sign_flip_test(np.array([0.9, 0.8, 0.7]), np.array([0.1, 0.2, 0.3])).p_value == pytest.approx(0.25)
    # twenty cells all in favour, Monte Carlo: tiny p; identical inputs: p = 1
    many = sign_flip_test(np.linspace(0.5, 0.9, 20), np.linspace(0.1, 0.4, 20))
    assert many.p_value < 1e-3 and many.n == 20
    assert sign_flip_test(np.ones(5), np.ones(5)).p_value == 1.0
    # NaN pairs are dropped
    assert sign_flip_test(np.array([1.0, np.nan]), np.array([0.0, 0.0])).n == 1


def test_cells_missing_for_some_detector_are_left_out_and_said(random_results):
    del random_results[("weak", "c", 1)]
    table = ranked_table(tidy(random_results), METRICS)
    assert any("1 of 6 cells" in note for note in table.notes)
    assert "over 5 dataset × category × seed cells" in table.caption


def test_formats_mark_best_and_second(random_results):
    results = tidy(random_results)
    markdown = render_tables(results, "markdown", metrics=METRICS)
    good_row = next(line for line in markdown.splitlines() if line.startswith("| good"))
    middle_row = next(line for line in markdown.splitlines() if line.startswith("| middle"))
    assert "**" in good_row.split("|")[2] and "<ins>" in middle_row.split("|")[2]
    assert r"\textbf{" in render_tables(results, "latex", metrics=METRICS)
    document = json.loads(render_tables(results, "json", metrics=METRICS, per_category=True))
    assert [row["detector"] for row in document["ranked"]][0] == "good"
    assert set(document["categories"]) == {"ds/a", "ds/b", "ds/c"}
    csv_text = render_tables(results, "csv", metrics=METRICS)
    parsed = pd.read_csv(io.StringIO(csv_text), comment="#")
    assert parsed["P-AUPR"].iloc[0] == pytest.approx(ranked_table(results, METRICS).frame["P-AUPR"].iloc[0])


def test_segmentation_colours():
    predicted = np.array([[1, 1, 0, 0]], dtype=bool)
    truth = np.array([[1, 0, 1, 0]], dtype=bool)
    assert [tuple(p) for p in segmentation_colours(predicted, truth)[0]] == [TP, FP, FN, (0, 0, 0)]


@pytest.fixture(scope="module")
def two_runs(tiny_mvtec, tmp_path_factory):
    """Two runs of the tiny bench, one detector each."""
    root = tmp_path_factory.mktemp("runs")
    for name in ("tiny_zscore", "tiny_blur"):
        run_bench(make_config({"data": f"mvtec:{tiny_mvtec}", "detectors": name, "out": str(root / name)}))
    return root / "tiny_zscore", root / "tiny_blur"


def test_report_combines_runs_and_refuses_overlaps(two_runs):
    result = CliRunner().invoke(main, ["report", *map(str, two_runs), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert {row["detector"] for row in json.loads(result.output)["ranked"]} == {"tiny_zscore", "tiny_blur"}
    twice = CliRunner().invoke(main, ["report", str(two_runs[0]), str(two_runs[0])])
    assert twice.exit_code == 2 and "disjoint jobs" in twice.output
    bad = CliRunner().invoke(main, ["report", str(two_runs[0]), "--metrics", "pixel_nope"])
    assert bad.exit_code == 2 and "pixel_nope" in bad.output


def html_images(page: str) -> list[bytes]:
    sources = re.findall(r"<img [^>]*src='([^']*)'", page)
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    return [base64.b64decode(src.split(",", 1)[1]) for src in sources]


def test_html_page_is_self_contained(two_runs, tmp_path):
    result = CliRunner().invoke(main, ["report", *map(str, two_runs), "--html", str(tmp_path)])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "index.html").read_text()
    images = html_images(page)
    # per category (fabric, tiles): one curves figure and one qualitative grid
    assert len(images) == 4 and all(image.startswith(b"\x89PNG\r\n\x1a\n") for image in images)
    assert "tiny_blur" in page and "P-AUPR" in page
    assert "<dt>P-AUPRO@0.3</dt><dd>MVTec AD AUPRO: mean overlap" in page  # definitions from the catalogue
    assert not re.search(r"(src|href)=['\"](?!data:)", page)


#: Headless, and safe as root in a container: no sandbox (it needs user namespaces), no GPU, no
#: first-run dialogs, and no background connections (updates, sync), which a machine without the
#: internet refuses and which can keep the browser from exiting; /tmp instead of a small /dev/shm.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=5000")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_TIMEOUT_S = 120


def find_chromium() -> tuple[str | None, str]:
    """The first Chromium on PATH that runs ``--version``, or None and why there is none. (Ubuntu's
    ``chromium-browser`` can be a stub that only says to install the snap, hence the trial run.)"""
    found = [path for path in map(shutil.which, CHROMIUM_NAMES) if path]
    if not found:
        return None, f"no Chromium on PATH (none of {', '.join(CHROMIUM_NAMES)}; apt-get install chromium)"
    reasons = []
    for path in found:
        try:
            trial = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            reasons.append(f"{path}: {exc}")
            continue
        if trial.returncode == 0:
            return path, ""
        reasons.append(f"{path} --version exited with {trial.returncode}: {trial.stderr.strip()[-200:]}")
    return None, "no working Chromium: " + "; ".join(reasons)


@pytest.fixture(scope="module")
def chromium() -> str:
    """Chromium's path. Without one the test is skipped, or fails where the environment variable
    PIXEVAL_REQUIRE_CHROMIUM=1 says there must be one (CI sets it once it has installed Chromium)."""
    path, reason = find_chromium()
    if path is None:
        (pytest.fail if os.environ.get("PIXEVAL_REQUIRE_CHROMIUM") == "1" else pytest.skip)(reason)
    return path


def run_chromium(binary: str, profile: Path, *args: str) -> str:
    """Run headless Chromium with a fresh profile folder and ``args``; its stdout. Fails the test,
    with the end of Chromium's log, when it exits with an error or outlives the timeout; whatever
    it started is killed either way (it runs in its own session)."""
    command = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    browser = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        out, err = browser.communicate(timeout=CHROMIUM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(browser.pid, signal.SIGKILL)
        out, err = browser.communicate()
        pytest.fail(f"Chromium did not finish in {CHROMIUM_TIMEOUT_S} s: {' '.join(command)}\n{err[-2000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(browser.pid, signal.SIGKILL)
    assert browser.returncode == 0, f"{' '.join(command)} exited with {browser.returncode}:\n{err[-2000:]}"
    return out


@pytest.mark.slow
def test_html_page_renders_in_headless_chromium(chromium, two_runs, tmp_path):
    write_html(pd.concat([pd.read_csv(run / "results.csv") for run in two_runs]), tmp_path)
    page = tmp_path / "index.html"
    shot = tmp_path / "shot.png"
    run_chromium(chromium, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1400,4000",
                 page.as_uri())
    picture = cv2.imread(str(shot))
    # the figures were painted: a page of text alone shows a few hundred colours (greys of
    # anti-aliasing), this one tens of thousands
    assert picture is not None and len(np.unique(picture.reshape(-1, 3), axis=0)) > 1000
    # a copy of the page that, once loaded, writes how many images failed to decode
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", (
        "<script>window.addEventListener('load', () => { const imgs = [...document.images];"
        "document.body.insertAdjacentHTML('beforeend', '<p id=probe>images=' + imgs.length + ' broken=' +"
        "imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length + '</p>'); });</script></body>")))
    dom = run_chromium(chromium, tmp_path / "profile-probe", "--dump-dom", probe.as_uri())
    assert "images=4 broken=0" in dom, dom[-500:]


def test_deployment_and_size_tables_average_what_the_bench_stored(random_results):
    rng = np.random.default_rng(5)
    size_metrics = [f"{field} [size {label}]" for label in ("< 1%", ">= 1%")
                    for field in ("pixel_aupr", "aupro", "region_recall", "n_regions")]
    for key, metrics in random_results.items():
        metrics |= {m: float(rng.uniform()) for m in ("pixel_f1_at_threshold", "image_f1_at_threshold",
                                                       "pixel_aupimo", "boundary_f1")}
        metrics |= {m: float(rng.integers(1, 5)) if m.startswith("n_regions") else float(rng.uniform())
                    for m in size_metrics}
        metrics |= {"normal_threshold": 0.5, "normal_images": 6.0, "normal_target_fpr": 0.01}
    document = json.loads(render_tables(tidy(random_results), "json", metrics=METRICS))
    cells = [(c, s) for c in ("a", "b", "c") for s in (0, 1)]

    def mean(detector, metric):
        return np.mean([random_results[(detector, c, s)][metric] for c, s in cells])

    deployment = {row["detector"]: row for row in document["deployment"]["table"]}
    assert deployment["middle"]["P-F1@t"] == pytest.approx(mean("middle", "pixel_f1_at_threshold"))
    assert deployment["weak"]["AUPIMO"] == pytest.approx(mean("weak", "pixel_aupimo"))
    assert "B-IoU" not in deployment["weak"]  # not in these results
    assert "held out of its fit" in document["deployment"]["caption"] and "<= 0.01" in document["deployment"]["caption"]
    by_size = document["by size"]["table"]
    assert list(by_size[0]) == ["detector", "< 1% P-AUPR", "< 1% P-AUPRO@0.3", "< 1% region overlap@t",
                                ">= 1% P-AUPR", ">= 1% P-AUPRO@0.3", ">= 1% region overlap@t"]
    row = {r["detector"]: r for r in by_size}["good"]
    assert row[">= 1% region overlap@t"] == pytest.approx(mean("good", "region_recall [size >= 1%]"))
    regions = sum(random_results[(d, c, 0)]["n_regions [size < 1%]"] for d, c in [("good", c) for c in "abc"])
    assert f"< 1%: {regions:g} regions" in document["by size"]["caption"]
    # runs made before the bench kept these metrics: the ranked table alone
    older = tidy({key: {m: values[m] for m in METRICS} for key, values in random_results.items()})
    assert set(json.loads(render_tables(older, "json", metrics=METRICS))) == {"ranked", "caption", "notes",
                                                                               "categories"}

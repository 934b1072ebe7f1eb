"""Bench configuration: option and file parsing, and the job grid it expands to."""

from __future__ import annotations

import json

import pytest
import yaml

from pixeval.bench.jobs import (ConfigError, expand_jobs, load_config_file, make_config, parse_params,
                                parse_seeds, save_config)
from pixeval import ParamError


def test_params_from_strings_and_mappings():
    assert parse_params(["tiny_blur.sigma=3", "tiny_blur.delay = 0.5", "tiny_zscore.delay=1"]) == {
        "tiny_blur": {"sigma": "3", "delay": "0.5"}, "tiny_zscore": {"delay": "1"}}
    assert parse_params({"tiny_blur": {"sigma": 3}}) == {"tiny_blur": {"sigma": 3}}
    with pytest.raises(ConfigError, match="DETECTOR.NAME=VALUE"):
        parse_params(["sigma=3"])


def test_seeds_lists_and_ranges():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds("3-5,1") == [3, 4, 5, 1]
    assert parse_seeds([2, 2, 0]) == [2, 0]
    with pytest.raises(ConfigError, match="seeds"):
        parse_seeds("a")


def test_size_edges_from_text_or_numbers():
    assert make_config({"size_edges": "0.001, 0.01"}).size_edges == [0.001, 0.01]
    assert make_config({"size_edges": [0.001, 0.01]}).size_edges == [0.001, 0.01]
    with pytest.raises(ConfigError, match="size_edges: expected comma-separated numbers"):
        make_config({"size_edges": "0.001,x"})
    with pytest.raises(ConfigError, match=r"size_edges: expected increasing area fractions in \(0, 1\)"):
        make_config({"size_edges": "0.01,0.001"})


def test_yaml_and_toml_files_agree(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "data": ["mvtec:/x"], "detectors": "tiny_blur", "seeds": "0-1", "save-maps": True,
        "params": {"tiny_blur": {"sigma": 1.5}}}))
    (tmp_path / "c.toml").write_text('data = ["mvtec:/x"]\ndetectors = "tiny_blur"\nseeds = "0-1"\n'
                                     'save-maps = true\nparams = ["tiny_blur.sigma=1.5"]\n')
    from_yaml = make_config(load_config_file(tmp_path / "c.yaml"))
    from_toml = make_config(load_config_file(tmp_path / "c.toml"))
    assert from_yaml.seeds == from_toml.seeds == [0, 1]
    assert from_yaml.save_maps and from_toml.save_maps
    assert float(from_yaml.params["tiny_blur"]["sigma"]) == float(from_toml.params["tiny_blur"]["sigma"]) == 1.5


def test_bad_config_files_name_the_problem(tmp_path):
    (tmp_path / "bad.yaml").write_text("detectorz: [a]\n")
    with pytest.raises(ConfigError, match="unknown setting 'detectorz'"):
        load_config_file(tmp_path / "bad.yaml")
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"\.yaml, \.yml or \.toml"):
        load_config_file(tmp_path / "c.json")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config_file(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="jobs must be at least 1"):
        make_config({"jobs": 0})


def test_saved_config_reads_back(tmp_path):
    config = make_config({"data": "mvtec:/x", "detectors": "tiny_blur,tiny_zscore", "seeds": "0,2",
                          "params": ["tiny_blur.sigma=4"], "imports": ["tiny_detectors"]})
    path = save_config(config, tmp_path)
    assert make_config(load_config_file(path)) == config


def test_grid_covers_every_combination_with_resolved_params(tiny_mvtec):
    config = make_config({"data": f"mvtec:{tiny_mvtec}", "detectors": "tiny_zscore,tiny_blur",
                          "seeds": "0,1", "params": ["tiny_blur.sigma=3"]})
    jobs = expand_jobs(config)
    cells = {(j.detector, j.category, j.seed) for j in jobs}
    assert cells == {(d, c, s) for d in ("tiny_zscore", "tiny_blur") for c in ("fabric", "tiles") for s in (0, 1)}
    assert len({j.key for j in jobs}) == len(jobs) == 8
    blur = next(j for j in jobs if j.detector == "tiny_blur" and j.seed == 1)
    assert json.loads(blur.resolved) == {"sigma": 3.0, "delay": 0.0, "seed": 1, "device": "cpu"}
    # seeds and params change the hash that guards a run folder against mixing settings
    assert len({j.params_hash for j in jobs}) == 4


def test_grid_errors_fail_before_any_work(tiny_mvtec):
    data = f"mvtec:{tiny_mvtec}"
    with pytest.raises(ParamError, match="sigma"):
        expand_jobs(make_config({"data": data, "detectors": "tiny_blur", "params": ["tiny_blur.sigma=-1"]}))
    with pytest.raises(ParamError, match="unknown hyperparameter"):
        expand_jobs(make_config({"data": data, "detectors": "tiny_blur", "params": ["tiny_blur.nope=1"]}))
    with pytest.raises(ConfigError, match="does not include"):
        expand_jobs(make_config({"data": data, "detectors": "tiny_blur", "params": ["tiny_zscore.delay=1"]}))
    with pytest.raises(ConfigError, match="carpet"):
        expand_jobs(make_config({"data": data, "detectors": "tiny_blur", "categories": "tiles,carpet"}))
    with pytest.raises(ConfigError, match="--import no_such_module"):
        expand_jobs(make_config({"data": data, "detectors": "tiny_blur", "imports": ["no_such_module"]}))

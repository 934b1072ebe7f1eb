"""The package root is the front door: every public name resolves, from the module that defines it."""

from __future__ import annotations

import importlib

import pytest

import pixeval


def test_all_names_the_exports_and_each_comes_from_its_module():
    assert sorted(pixeval.__all__) == sorted(pixeval._EXPORTS) and len(set(pixeval.__all__)) == len(pixeval.__all__)
    for name in pixeval.__all__:
        assert getattr(pixeval, name) is getattr(importlib.import_module(pixeval._EXPORTS[name]), name), name
    assert set(pixeval.__all__) <= set(dir(pixeval))


def test_the_names_users_and_plugin_authors_need_are_there():
    from pixeval import (BaseParams, Detector, ParamError, Prediction, create_detector, evaluate,  # noqa: F401
                         open_dataset, param, register_detector, score_folder)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'evaluat'"):
        pixeval.evaluat  # noqa: B018

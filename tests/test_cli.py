"""The ``pixeval`` group: every command's ``--help``, commands from the ``pixeval.commands``
entry-point group (built-in ``tune`` and broken plugins), and errors turned into exit status 2."""

from __future__ import annotations

from importlib import metadata

import click
import pytest
from click.testing import CliRunner

from pixeval import ParamError
from pixeval.cli import COMMAND_GROUP, COMMANDS, main

PLUGIN_BUILT_INS = ("tune",)


@click.command("fails")
def failing() -> None:
    """Raise a ParamError, as a command would on a bad hyperparameter."""
    raise ParamError("hyperparameter depth=-1 is below its minimum 1")


@pytest.fixture
def with_plugins(monkeypatch):
    """The installed entry points plus fake ones: a broken import, an object that is no command,
    one that takes a built-in command's name, and one that raises a ParamError."""
    real = metadata.entry_points

    def entry_points(**params):
        found = list(real(**params))
        if params.get("group") == COMMAND_GROUP:
            found += [metadata.EntryPoint("broken", "no_such_module_for_pixeval:command", COMMAND_GROUP),
                      metadata.EntryPoint("notacommand", "json:dumps", COMMAND_GROUP),
                      metadata.EntryPoint("score", f"{__name__}:failing", COMMAND_GROUP),
                      metadata.EntryPoint("fails", f"{__name__}:failing", COMMAND_GROUP)]
        return found

    monkeypatch.setattr(metadata, "entry_points", entry_points)


def test_every_command_has_help():
    """click's advice for lazily loaded commands: run --help of each, so an import error shows."""
    listing = CliRunner().invoke(main, ["--help"])
    assert listing.exit_code == 0, listing.output
    for name in [*COMMANDS, *PLUGIN_BUILT_INS]:
        assert f"  {name} " in listing.output
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert result.output.startswith("Usage: ") and f" {name} [OPTIONS]" in result.output.splitlines()[0]


def test_listed_one_liners_are_the_first_sentence_of_each_commands_help():
    for name, line in COMMANDS.items():
        command = main.get_command(click.Context(main), name)
        assert command.get_short_help_str(limit=200) == line, name
        assert len(line) <= 65, f"{name}: the one-liner does not fit an 80-column listing"


def test_tune_comes_from_the_entry_point_group():
    (entry,) = [ep for ep in metadata.entry_points(group=COMMAND_GROUP) if ep.name == "tune"]
    assert entry.value == "detectors.commands:tune" and entry.dist.metadata["Name"] == "pixeval"
    assert "tune" not in COMMANDS


def test_broken_command_plugins_are_listed_with_their_errors(with_plugins):
    listing = CliRunner().invoke(main, ["--help"])
    assert listing.exit_code == 0, listing.output
    text = " ".join(listing.output.split())  # undo the help formatter's line wrapping
    assert "broken FAILED TO LOAD (package ?): ModuleNotFoundError: No module named 'no_such_module_for_pixeval'" in text
    assert "notacommand FAILED TO LOAD (package ?): TypeError: json:dumps is not a click command" in text
    assert "Ignored plugin commands (pixeval's own commands have these names): score package ?" in text
    assert "tune Tune Sp-CFA fusion weights" in text  # the others still work
    result = CliRunner().invoke(main, ["broken"])
    assert result.exit_code == 1
    assert "Error: command 'broken' (package ?) failed to load: ModuleNotFoundError" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    own = CliRunner().invoke(main, ["score", "--help"])  # a plugin cannot replace a built-in command
    assert own.exit_code == 0 and "Score anomaly maps" in own.output


def test_pixeval_errors_become_exit_status_2_in_one_place(with_plugins):
    result = CliRunner().invoke(main, ["fails"])
    assert result.exit_code == 2
    assert result.output == "Error: hyperparameter depth=-1 is below its minimum 1\n"
    assert isinstance(result.exception, SystemExit)

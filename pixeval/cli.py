"""The ``pixeval`` command line: a click group whose subcommands load lazily.

Built-in commands live one per module in :mod:`pixeval.commands` (each exposes a click command
named ``command``) and are imported only when they run, so ``pixeval score`` never pays for the
torch import that ``pixeval bench`` needs. Installed packages add commands through the entry-point
group ``pixeval.commands`` (:data:`COMMAND_GROUP`, ``name = "module:click_command"``), loaded
when listed or run; pixeval's own ``detectors`` package adds ``tune`` that way. A command plugin
that fails to load is listed with its error and the other commands still work.

Errors: every :class:`~pixeval.errors.PixevalError` a command raises is turned here, and only
here, into ``Error: <message>`` on standard error and exit status 2, without a traceback.
"""

from __future__ import annotations

import importlib

import click

from pixeval import __version__
from pixeval.errors import PixevalError
from pixeval.plugins import LoadedEntryPoint, load_group

#: The entry-point group through which installed packages contribute commands.
COMMAND_GROUP = "pixeval.commands"

#: Built-in command (= its module under pixeval.commands) -> its one-line help, shown by
#: ``pixeval --help`` without importing the module; it is the first sentence of the command's help.
COMMANDS: dict[str, str] = {
    "score": "Score anomaly maps saved as files against ground-truth masks.",
    "bench": "Run detectors over datasets and print a ranked comparison.",
    "report": "Tabulate and plot the results of one or more bench runs.",
    "detectors": "List the registered detectors, or show one's hyperparameters.",
    "datasets": "List the built-in dataset and the layouts, or show one dataset.",
}


class BadInput(click.ClickException):
    """A :class:`~pixeval.errors.PixevalError` as click shows it: ``Error: ...``, exit status 2."""

    exit_code = 2


def plugin_commands() -> dict[str, LoadedEntryPoint]:
    """The commands of the entry-point group :data:`COMMAND_GROUP`, by name; one that fails to
    load, or is not a click command, comes with its error instead."""
    loaded = load_group(COMMAND_GROUP, lambda value: isinstance(value, click.Command), "a click command")
    return {plugin.name: plugin for plugin in loaded}


class LazyGroup(click.Group):
    """A group that imports a command only when it runs or is listed, and turns every
    :class:`~pixeval.errors.PixevalError` into exit status 2."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(plugin_commands()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            return importlib.import_module(f"pixeval.commands.{name}").command
        plugin = plugin_commands().get(name)
        if plugin is None:
            return None
        return plugin.value if plugin.value is not None else _failed_command(plugin)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        plugins = plugin_commands()
        width = formatter.width - 6 - max(map(len, [*COMMANDS, *plugins]))
        rows = []
        for name in self.list_commands(ctx):
            if name in COMMANDS:
                rows.append((name, COMMANDS[name]))
            elif plugins[name].value is not None:
                rows.append((name, plugins[name].value.get_short_help_str(width)))
            else:
                rows.append((name, f"FAILED TO LOAD ({plugins[name].origin}): {plugins[name].error}"))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
        shadowed = [p for name, p in plugins.items() if name in COMMANDS]
        if shadowed:
            with formatter.section("Ignored plugin commands (pixeval's own commands have these names)"):
                formatter.write_dl([(p.name, p.origin) for p in shadowed])

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PixevalError as exc:
            raise BadInput(str(exc)) from None


def _failed_command(plugin: LoadedEntryPoint) -> click.Command:
    """A stand-in for a command plugin that failed to load: running it reports the error (exit 1)."""

    def report() -> None:
        raise click.ClickException(f"command {plugin.name!r} ({plugin.origin}) failed to load: {plugin.error}")

    return click.Command(plugin.name, callback=report, help=f"FAILED TO LOAD: {plugin.error}")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pixeval")
def main() -> None:
    """pixeval: exact, imbalance-aware pixel-level evaluation of visual anomaly detection.

    Pixel AUROC and AUPRO saturate near 1 when defect pixels are a tiny minority; pixeval puts
    precision-recall metrics (AUPR, F1) first and computes every metric exactly.
    """

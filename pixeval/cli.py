"""The ``pixeval`` command line: a click group whose subcommands load lazily."""

from __future__ import annotations

import importlib
import importlib.util

import click

from pixeval import __version__

#: subcommand name -> (module under pixeval.commands, one-line help shown in ``pixeval --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "score": ("score", "Score anomaly maps from files against ground-truth masks."),
    "bench": ("bench", "Run detectors over datasets and print a ranked comparison."),
    "report": ("report", "Tabulate and plot the results of one or more bench runs."),
    "detectors": ("detectors", "List the registered detectors, or show one's hyperparameters."),
    "datasets": ("datasets", "List the built-in and known datasets and where they are."),
    "tune": ("tune", "Grid-search Sp-CFA fusion weights and region sizes on validation data."),
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, (module, _) in COMMANDS.items() if _module_exists(module))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not _module_exists(COMMANDS[name][0]):
            return None
        module = importlib.import_module(f"pixeval.commands.{COMMANDS[name][0]}")
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _module_exists(module: str) -> bool:
    return importlib.util.find_spec(f"pixeval.commands.{module}") is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pixeval")
def main() -> None:
    """pixeval: exact, imbalance-aware pixel-level evaluation of visual anomaly detection.

    Pixel AUROC and AUPRO saturate near 1 when defect pixels are a tiny minority; pixeval puts
    precision-recall metrics (AUPR, F1) first and computes every metric exactly.
    """

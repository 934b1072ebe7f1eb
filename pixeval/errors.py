"""The errors pixeval raises for input it cannot use: one base class, one subclass per room.

Every one of them means "this input, argument or setting cannot be used", and its message names
the file, argument or setting and says how to fix it. The command line turns any
:class:`PixevalError` into ``Error: <message>`` and exit status 2, in one place
(:mod:`pixeval.cli`). Each is also a ``ValueError`` (``RegistryError`` a ``LookupError``), so
code that catches those keeps working.

The metric core (:mod:`pixeval.metrics`) stands apart: like scikit-learn's metrics it raises plain
``ValueError`` for invalid arrays and never imports anything above it.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DatasetError", "InputError", "ParamError", "PixevalError", "RegistryError",
           "ReportError"]


class PixevalError(Exception):
    """Input, an argument or a setting that pixeval cannot use; the message says why and how to fix it."""


class ParamError(PixevalError, ValueError):
    """A hyperparameter name or value that a detector does not accept."""


class RegistryError(PixevalError, LookupError):
    """An unknown detector name, a registered detector that cannot be loaded, or a folder that holds
    no saved detector."""


class DatasetError(PixevalError, ValueError):
    """A dataset path, layout or file that cannot be read; the message says what was expected."""


class InputError(PixevalError, ValueError):
    """Score-map or mask files (or scoring options) that cannot be scored; the message names the
    files and says how to fix them."""


class ConfigError(PixevalError, ValueError):
    """A bench configuration that cannot be run; the message names the setting and the fix."""


class ReportError(PixevalError, ValueError):
    """Results that cannot make the table asked for; the message says why."""

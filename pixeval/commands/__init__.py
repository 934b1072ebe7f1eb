"""One module per CLI command; each exposes a click command named ``command``.

Commands are imported only when invoked (see :mod:`pixeval.cli`), so that e.g. ``pixeval score``
never pays for the torch import that ``pixeval bench`` needs.
"""

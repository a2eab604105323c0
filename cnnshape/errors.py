"""One error hierarchy. Every message names what went wrong, where, and how to fix it.

The CLI turns any :class:`CnnshapeError` into its message on stderr and exit code 2.
"""
from __future__ import annotations


class CnnshapeError(Exception):
    """Base of every error cnnshape raises on purpose."""


class ConfigError(CnnshapeError):
    """A command-line option, a config file entry or an API argument is malformed."""


class InputError(CnnshapeError):
    """An ``--input`` spec is malformed (not about whether it fits the model)."""


class OutputError(CnnshapeError):
    """An output file (``-o``, ``--write-baseline``, ``--junit-file``) could not be written."""


class LoadError(CnnshapeError):
    """The model spec could not be resolved into an ``nn.Module``."""


class TraceError(CnnshapeError):
    """The tracer could not turn the model into a graph."""


class ShapeError(CnnshapeError):
    """The model cannot run on the given input: a layer rejects what it receives."""


class InternalError(CnnshapeError):
    """Two of cnnshape's own computations disagree: a bug to report, never silently resolved."""

"""One error hierarchy. Every message names what went wrong, where, and how to fix it.

The CLI turns any :class:`CnnshapeError` into its message on stderr and exit code 2.

Messages name what the user set by :func:`param`: the API parameter (``leaves``) when the Python
API is called, the command-line flag (``--leaf``) while the CLI runs, which installs its names
with :func:`speaking`. Code below the CLI never spells a flag.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType

_NAMES: ContextVar[Mapping[str, str]] = ContextVar("cnnshape_parameter_names", default=MappingProxyType({}))


def param(name: str) -> str:
    """How a message names the API parameter ``name`` (``"inputs"``): the parameter itself, or
    the flag the running front end installed for it (``"--input"``)."""
    return _NAMES.get().get(name, name)


@contextlib.contextmanager
def speaking(names: Mapping[str, str]) -> Iterator[None]:
    """Messages raised inside name the parameters as ``names`` maps them (API name -> flag)."""
    token = _NAMES.set(names)
    try:
        yield
    finally:
        _NAMES.reset(token)


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


class EnvironmentFault(CnnshapeError):
    """This machine lacks something the request needs (a CUDA device, Graphviz's ``dot``): the
    request is fine, the environment is not."""


class InternalError(CnnshapeError):
    """Two of cnnshape's own computations disagree: a bug to report, never silently resolved."""

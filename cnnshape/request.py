"""What to analyse, as one value: the model, its inputs and how to trace it.

Every analysis takes a :class:`Request` (``analyze``, ``sizes``, ``verify``; later memory, compare
and scan), so a second analysis of the same model is given exactly what the first was. Built and
validated once by :meth:`Request.of`; torch-free.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, param
from .inputs import InputSpec, normalise_inputs
from .vocab import DEFAULT_SHAPE, TRACERS


@dataclass(frozen=True)
class Request:
    #: an ``nn.Module`` instance, or a spec: ``"path/to/file.py:Name"`` / ``"package.module:Name"``
    model: Any
    #: one spec per input of ``forward``: by position, then those named (passed by keyword)
    inputs: tuple[InputSpec, ...] = (InputSpec(DEFAULT_SHAPE),)
    #: constructor or factory keyword arguments of a spec, as (name, value) pairs
    args: tuple[tuple[str, Any], ...] = ()
    #: one of ``vocab.TRACERS``
    tracer: str = "auto"
    #: module classes (or their names) kept as one node
    leaves: tuple[str | type, ...] = ()
    #: analyse in training mode (batch-norm statistics, dropout) instead of eval mode
    train: bool = False
    #: also run torch's meta kernel beside each of cnnshape's (None: ``CNNSHAPE_CROSS_CHECK``)
    cross_check: bool | None = None
    #: cost formulas for this analysis only, as (op name or module class, formula) pairs; see
    #: :data:`cnnshape.analyse.analysis.Formulas`
    formulas: tuple[tuple[Any, Callable[[Any], Any]], ...] = ()

    @classmethod
    def of(cls, model: Any, inputs: Any = (DEFAULT_SHAPE,), *, args: Mapping[str, Any] | None = None,
           tracer: str = "auto", leaves: Sequence[str | type] = (), train: bool = False,
           cross_check: bool | None = None, formulas: Mapping[Any, Callable[[Any], Any]] | None = None) -> Request:
        """A request from the forms the API accepts; ``model`` may already be a Request (then
        every other argument must be left at its default)."""
        if isinstance(model, Request):
            given = (args, tracer, tuple(leaves), train, cross_check, formulas) != (None, "auto", (), False, None, None)
            if given or inputs != (DEFAULT_SHAPE,):
                raise ConfigError("a Request carries its own inputs and options; change them with "
                                  "dataclasses.replace(request, ...) instead of passing them again")
            return model
        if args and not isinstance(model, str):
            raise ConfigError(f"{param('args')} apply to a model spec, not to a module instance")
        if tracer not in TRACERS:
            raise ConfigError(f"{param('tracer')} {tracer!r}: unknown tracer; choose one of {', '.join(TRACERS)}")
        if isinstance(leaves, (str, type)):
            leaves = (leaves,)
        for key, formula in (formulas or {}).items():
            if not isinstance(key, (str, type)) or not callable(formula):
                raise ConfigError(f"{param('formulas')}: {key!r} -> {formula!r}: give an op name "
                                  "('aten.foo', 'mylib.op') or a module class, mapped to a function")
        return cls(model, normalise_inputs(inputs), tuple((args or {}).items()), tracer, tuple(leaves),
                   bool(train), cross_check, tuple((formulas or {}).items()))

    @property
    def kwargs(self) -> dict[str, Any]:
        """``args`` as keyword arguments for the model's constructor."""
        return dict(self.args)

    @property
    def label(self) -> str:
        """How reports name the model: the spec, or the instance's class name."""
        return self.model if isinstance(self.model, str) else type(self.model).__name__


def names_file(where: str) -> bool:
    """Whether the part of a spec before its last colon names a file (``net.py``, ``models/net``,
    an existing ``net.txt``) rather than a module (``torchvision.models``)."""
    return where.endswith(".py") or "/" in where or "\\" in where or os.path.isfile(where)


def spec_file(spec: str) -> str | None:
    """The file of a ``file.py:Name`` spec (None for ``package.module:Name``)."""
    where, sep, _ = spec.rpartition(":")
    return where if sep and where and names_file(where) else None

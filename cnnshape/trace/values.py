"""Values a meta trace cannot have: the errors of a forward that needs them (a branch on a value,
``.item()``), kept through TorchScript, and torch.distributions objects, whose argument checks read
values and whose parameters are the outputs."""
from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch.distributions import Distribution

from .diagnose import from_torchscript, torchscript_source, value_dependence
from .meta import OpRecorder, exception_source


class KeepingRecorder(OpRecorder):
    """An :class:`~.meta.OpRecorder` that keeps the last exception an ATen call raised. TorchScript's
    interpreter re-raises an exception from a Python dispatch mode with its message dropped
    ("RuntimeError: "), so why a scripted module failed is read from here."""

    last_error: BaseException | None = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        try:
            return super().__torch_dispatch__(func, types, args, kwargs)
        except Exception as e:
            self.last_error = e
            raise


def value_failure(exc: BaseException, recorder: KeepingRecorder) -> tuple[str, str | None] | None:
    """(what the forward did that needs values, the user's line) when that is why ``exc`` was raised;
    inside a TorchScript module the cause is the recorder's last error and the line TorchScript's."""
    if from_torchscript(exc) and recorder.last_error is not None:
        what = value_dependence(exc) or value_dependence(recorder.last_error)
        return (what, torchscript_source(exc) or exception_source(exc)) if what else None
    what = value_dependence(exc)
    return (what, exception_source(exc)) if what else None


# -- torch.distributions ----------------------------------------------------------------------------

@contextlib.contextmanager
def distributions_unchecked() -> Iterator[None]:
    """torch.distributions objects skip their argument checks (``validate_args``) inside: the checks
    test values (``scale > 0``), which meta tensors do not have. The default is restored after."""
    before = Distribution._validate_args
    Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        Distribution.set_default_validate_args(before)


_DISTRIBUTION_FIELDS: dict[tuple[str, tuple[str, ...]], type] = {}


def open_distributions(value: Any) -> Any:
    """``value`` with every torch.distributions object replaced by a named tuple of its parameter
    tensors (``Normal`` -> ``(loc, scale)``, ``Categorical(logits=...)`` -> ``(logits,)``), so the
    outputs flatten to keys such as ``[0].loc``. Parameters are those of ``arg_constraints`` the
    object holds (lazy ones it never computed are left out) and nested distributions
    (``Independent.base_dist``)."""
    if isinstance(value, torch.Tensor):  # the common case first: every node's output goes through here
        return value
    if isinstance(value, Distribution):
        fields = []
        for name, item in vars(value).items():
            key = name.lstrip("_")
            if isinstance(item, Distribution):
                fields.append((key, open_distributions(item)))
            elif isinstance(item, torch.Tensor) and name in value.arg_constraints:
                fields.append((key, item))
        names = tuple(k for k, _ in fields)
        cls_key = (type(value).__name__, names)
        if cls_key not in _DISTRIBUTION_FIELDS:
            _DISTRIBUTION_FIELDS[cls_key] = collections.namedtuple(type(value).__name__, names)  # type: ignore[misc]  # fields known at run time
        return _DISTRIBUTION_FIELDS[cls_key](*(v for _, v in fields))
    if isinstance(value, (tuple, list)):
        items = [open_distributions(v) for v in value]
        if all(a is b for a, b in zip(items, value)):
            return value  # nothing opened: the container itself (torch.Size, return_types, ...)
        if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple
            return type(value)(*items)
        return type(value)(items)
    if isinstance(value, dict):
        opened = {k: open_distributions(v) for k, v in value.items()}
        if all(opened[k] is v for k, v in value.items()):
            return value
        return type(value)(opened) if type(value) in (dict, collections.OrderedDict) else opened
    return value

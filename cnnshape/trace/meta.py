"""Helpers every tracer shares: meta inputs, ATen recording, output flattening, attributes."""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import inspect
import linecache
import os
import sys
import sysconfig
import traceback
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import keystr, tree_flatten_with_path

from ..errors import InputError, param
from ..inputs import InputSpec
from . import kernels
from .records import OpCall, TensorMeta

_TORCH_DIR = str(Path(torch.__file__).parent)
_CNNSHAPE_DIR = str(Path(__file__).parent.parent)
#: never the model's code: the CLI's typer and click; the standard library (runpy, importlib) too,
#: but not the packages installed inside it (site-packages: torchvision's models are model code)
_CLI_DIRS = tuple(str(Path(spec.origin).parent) for spec in map(importlib.util.find_spec, ("typer", "click"))
                  if spec is not None and spec.origin)
_STDLIB = sysconfig.get_paths()["stdlib"]

#: Hyper-parameters copied from a leaf module into its node when present and plain.
ATTR_NAMES = (
    "in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
    "output_padding", "padding_mode", "ceil_mode", "count_include_pad", "output_size",
    "in_features", "out_features", "num_features", "normalized_shape", "num_groups",
    "scale_factor", "size", "mode", "align_corners", "start_dim", "end_dim", "dim",
    "num_embeddings", "embedding_dim", "upscale_factor", "downscale_factor", "embed_dim",
    "num_heads", "hidden_size", "input_size", "num_layers",
)


def tensor_meta(t: torch.Tensor) -> TensorMeta:
    return _meta_of(tuple(t.shape), t.dtype)


@functools.lru_cache(maxsize=8192)
def _meta_of(shape: tuple[int, ...], dtype: torch.dtype) -> TensorMeta:
    """One shared record per (shape, dtype): a graph has few distinct ones."""
    return TensorMeta(shape, str(dtype).removeprefix("torch."), dtype.itemsize)


class ForwardInputs(list[torch.Tensor]):
    """The tensors forward is called with, in order: the first ones by position, the last
    ``len(keywords)`` by keyword (``forward(x, *, mask)``, ``forward(**inputs)``). A plain list of
    tensors is all positional."""

    def __init__(self, tensors: Iterable[torch.Tensor] = (), keywords: Iterable[str] = ()) -> None:
        super().__init__(tensors)
        self.keywords = tuple(keywords)


def keywords_of(inputs: list[torch.Tensor]) -> tuple[str, ...]:
    """The names the last inputs are passed by (none for a plain list)."""
    return inputs.keywords if isinstance(inputs, ForwardInputs) else ()


def split_inputs(inputs: list[torch.Tensor]) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """(positional tensors, keyword tensors) of ``inputs``."""
    keywords = keywords_of(inputs)
    cut = len(inputs) - len(keywords)
    return list(inputs[:cut]), dict(zip(keywords, inputs[cut:]))


def call_forward(model: nn.Module, inputs: list[torch.Tensor]) -> Any:
    """``model(*positional, **keywords)`` with ``inputs`` (see :class:`ForwardInputs`)."""
    args, kwargs = split_inputs(inputs)
    return model(*args, **kwargs)


def make_inputs(specs: Iterable[InputSpec], device: str = "meta") -> ForwardInputs:
    specs = tuple(specs)
    tensors = [torch.empty(s.shape, dtype=getattr(torch, s.dtype), device=device) for s in specs]
    return ForwardInputs(tensors, [s.name for s in specs if s.name is not None])


_PLAIN_TYPES = frozenset({int, float, bool, str, type(None)})


def _freeze(value: Any) -> Any:
    if type(value) in _PLAIN_TYPES:
        return value
    if isinstance(value, torch.Tensor):
        return tensor_meta(value)
    if isinstance(value, (list, tuple)):
        if all(type(v) is int for v in value):  # sizes, strides, paddings
            return tuple(value)
        return tuple(_freeze(v) for v in value)
    if isinstance(value, (torch.dtype, torch.device, torch.memory_format, torch.layout)):
        return str(value)
    if isinstance(value, (int, float, bool, str)) or value is None:
        return value
    return repr(value)


def op_name(func: Any) -> str:
    """``aten.convolution.default`` -> ``"aten.convolution"`` (the overload packet)."""
    packet = getattr(func, "overloadpacket", func)
    return str(packet)


def cross_check_default() -> bool:
    """Whether our meta kernels are checked against torch's by default (``CNNSHAPE_CROSS_CHECK=1``,
    as the test suite sets)."""
    return os.environ.get("CNNSHAPE_CROSS_CHECK", "") not in ("", "0")


class OpRecorder(TorchDispatchMode):
    """Records every ATen call that reaches the dispatcher, with frozen arguments. Calls run on
    :mod:`.kernels` where one handles them (on meta tensors), else on torch's kernels;
    ``cross_check`` runs torch's too and raises on any difference."""

    def __init__(self, cross_check: bool = False, state: frozenset[int] = frozenset()) -> None:
        super().__init__()
        self.calls: list[OpCall] = []
        self.cross_check = cross_check
        #: ids of the model's parameters and buffers (as traced), marked in each call (OpCall.state)
        self.state = state

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        """torch's opt-out: otherwise it wraps ``__torch_dispatch__`` in ``torch._disable_dynamo``,
        whose first call imports ``torch._dynamo`` (~1 s). Nothing here runs under torch.compile."""
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        try:
            out = kernels.run(func, args, kwargs, self.cross_check)
        except Exception:
            # torch refused a CPU constant beside meta tensors: again with it on meta (see _onto_meta);
            # checked only after a failure, so the calls that work pay nothing
            if not _strays_beside_meta((*args, *kwargs.values())):
                raise
            args, kwargs = _onto_meta(args), dict(zip(kwargs, _onto_meta(tuple(kwargs.values()))))
            out = kernels.run(func, args, kwargs, self.cross_check)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        self.calls.append(
            OpCall(
                op_name(func),
                _freeze(args),
                tuple((k, _freeze(v)) for k, v in kwargs.items()),
                tuple(tensor_meta(o) for o in outs if isinstance(o, torch.Tensor)),
                getattr(func, "_overloadname", "default"),
                tuple(i for i, a in enumerate(args) if id(a) in self.state) if self.state else (),
            )
        )
        return out

    def take(self) -> tuple[OpCall, ...]:
        calls, self.calls = tuple(self.calls), []
        return calls


# -- tensors that live off meta -------------------------------------------------------------------
# A module-level constant (``MEAN = torch.tensor([...]).view(1, 3, 1, 1)``; ``x - MEAN``) or a plain
# tensor attribute lives on the CPU, with real values, while the analysis runs on meta: torch refuses
# to mix the two ("Tensor on device cpu is not on the expected device meta!"), though the model runs
# fine for real. For the analysis only, such a tensor takes part in a call as a meta tensor of its
# shape, dtype and strides; the constant itself is untouched. Only where a meta tensor is in the
# same call, and only once torch has refused the call: a --verify pass (no meta tensor anywhere)
# runs exactly as the model does. A 0-dim CPU tensor is left as it is: torch accepts it beside
# tensors of any device, as a scalar.


def _stray(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and not value.is_meta and (value.dim() > 0 or value.device.type != "cpu")


def _strays_beside_meta(args: tuple[Any, ...]) -> bool:
    """Whether ``args`` (and the lists among them, as ``aten.cat`` takes) hold a meta tensor and a
    tensor on another device."""
    meta = stray = False
    for arg in args:
        for value in arg if isinstance(arg, (list, tuple)) else (arg,):
            if isinstance(value, torch.Tensor):
                if value.is_meta:
                    meta = True
                elif _stray(value):
                    stray = True
    return meta and stray


def _onto_meta(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` with every off-meta tensor (see :func:`_stray`) replaced by a meta tensor like it."""
    def convert(value: Any) -> Any:
        if _stray(value):
            return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="meta")
        return value

    return tuple(type(arg)(convert(v) for v in arg) if isinstance(arg, (list, tuple)) else convert(arg)
                 for arg in args)


def _keyed_leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Leaves of a nested output with their keys; dataclass instances are opened field by field
    (key ``.field``, like a named tuple's)."""
    out: list[tuple[str, Any]] = []
    for path, leaf in tree_flatten_with_path(value)[0]:
        key = prefix + keystr(path)
        if dataclasses.is_dataclass(leaf) and not isinstance(leaf, type):
            for f in dataclasses.fields(leaf):
                out += _keyed_leaves(getattr(leaf, f.name), f"{key}.{f.name}")
        else:
            out.append((key, leaf))
    return out


def flatten_outputs(value: Any) -> tuple[list[tuple[str, torch.Tensor]], list[tuple[str, Any]]]:
    """Split a (nested) output into keyed tensors and keyed non-tensor leaves."""
    if isinstance(value, torch.Tensor):  # the common case, without pytree's path machinery
        return [("", value)], []
    tensors: list[tuple[str, torch.Tensor]] = []
    others: list[tuple[str, Any]] = []
    for key, leaf in _keyed_leaves(value):
        (tensors if isinstance(leaf, torch.Tensor) else others).append((key, leaf))
    return tensors, others


def tensors_in(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (int, float, bool, str)) or value is None:
        return []
    return [leaf for _, leaf in _keyed_leaves(value) if isinstance(leaf, torch.Tensor)]


def _storage_id(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata  # identity of the storage, also on meta tensors


def new_storage_bytes(outputs: list[torch.Tensor], old: Iterable[torch.Tensor]) -> int:
    """Bytes of the storages behind ``outputs`` that none of ``old`` already uses."""
    seen = {_storage_id(t) for t in old}
    total = 0
    for t in outputs:
        sid = _storage_id(t)
        if sid not in seen:
            seen.add(sid)
            total += t.untyped_storage().nbytes()
    return total


def _plain(value: Any) -> bool:
    """A plain value (a number, string or None), or a list or tuple of them (nested)."""
    if type(value) in _PLAIN_TYPES:  # the exact types first, as nearly every hyper-parameter is
        return True
    if isinstance(value, (tuple, list)):
        for v in value:  # a loop, not all(...): a generator costs more than these few items
            if not _plain(v):
                return False
        return True
    return isinstance(value, (int, float, bool, str)) or value is None


def module_tensors(module: nn.Module) -> list[torch.Tensor]:
    """The parameters and buffers of ``module`` and its submodules (a torch.nn layer has no
    submodules: its own tables are read directly, without the recursive generators)."""
    if not module._modules:
        return [t for table in (module._parameters, module._buffers) for t in table.values() if t is not None]
    return [*module.parameters(), *module.buffers()]


@functools.lru_cache(maxsize=1024)
def _class_attrs(cls: type) -> frozenset[str]:
    """The hyper-parameter names that ``cls`` itself defines (properties, class constants)."""
    return frozenset(name for name in ATTR_NAMES if hasattr(cls, name))


_ATTR_SET = frozenset(ATTR_NAMES)


@functools.lru_cache(maxsize=1024)
def _in_order(names: frozenset[str]) -> tuple[str, ...]:
    """``names`` in the order of :data:`ATTR_NAMES` (a layer's names: one entry per kind of layer)."""
    return tuple(name for name in ATTR_NAMES if name in names)


def module_attrs(module: nn.Module) -> tuple[tuple[str, Any], ...]:
    """The plain hyper-parameters of ``module``, read from its instance dictionary (``getattr``
    on a module goes through ``nn.Module.__getattr__``'s slow miss path for every absent name).
    Only the names the instance or its class has are visited, in :data:`ATTR_NAMES`' order."""
    out = []
    own, on_class = vars(module), _class_attrs(type(module))  # type: ignore[arg-type]  # classes hash
    for name in _in_order(on_class | (own.keys() & _ATTR_SET)):
        value = own[name] if name in own else getattr(module, name, None)
        if value is not None and _plain(value):
            out.append((name, tuple(value) if isinstance(value, list) else value))
    if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
        out.append(("bias", module.bias is not None))
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _is_user_file(filename: str) -> bool:
    if filename.startswith((_TORCH_DIR, _CNNSHAPE_DIR, *_CLI_DIRS, "<")):
        return False
    return not filename.startswith(_STDLIB) or "site-packages" in filename or "dist-packages" in filename


def _frame_text(filename: str, lineno: int, code: str | None) -> str:
    if code is None:
        return _line_text(filename, lineno)
    return f"{filename}:{lineno}: {code.strip()}"


@functools.lru_cache(maxsize=8192)
def _line_text(filename: str, lineno: int) -> str:
    return f"{filename}:{lineno}: {linecache.getline(filename, lineno).strip()}"


def user_frame() -> FrameType | None:
    """The innermost frame on the current stack outside torch and cnnshape (the user's code)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and not _is_user_file(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


def caller_source() -> str | None:
    """``"file:line: code"`` of the innermost frame on the current stack outside torch and cnnshape."""
    frame = user_frame()
    if frame is None:
        return None
    return _frame_text(frame.f_code.co_filename, frame.f_lineno, None)


def exception_source(exc: BaseException) -> str | None:
    """``"file:line: code"`` of the innermost frame of ``exc``'s traceback outside torch and cnnshape."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_user_file(f.filename)]
    if not frames:
        return None
    f = frames[-1]
    return _frame_text(f.filename, f.lineno or 0, f.line)


def input_count_error(model: nn.Module, names: list[str], required: int, given: int,
                      by_keyword: str | None = None) -> InputError:
    """The error for a wrong number of ``--input`` values, worded the same by every tracer;
    ``by_keyword``: the parameters forward also takes by keyword (``*, mask``, ``**inputs``)."""
    sig = f"{type(model).__name__}.forward({', '.join(names)})"
    count = f"{required}" if required == len(names) else f"{required} to {len(names)}"
    flag = param("inputs")
    named = f", and name those it takes by keyword ({by_keyword}): {flag} NAME=SIZES" if by_keyword else ""
    return InputError(
        f"{sig} takes {count} tensor input(s) but {given} {flag} value(s) were given. "
        f"Give one {flag} value per forward argument, in order{named}."
    )


def _signature_text(model: nn.Module, params: list[inspect.Parameter]) -> str:
    shown, star = [], False
    for p in params:
        if p.kind == p.KEYWORD_ONLY and not star:
            shown.append("*")
        star = star or p.kind in (p.VAR_POSITIONAL, p.KEYWORD_ONLY)
        shown.append(f"*{p.name}" if p.kind == p.VAR_POSITIONAL else f"**{p.name}" if p.kind == p.VAR_KEYWORD
                     else p.name if p.default is p.empty else f"{p.name}=...")
    return f"{type(model).__name__}.forward({', '.join(shown)})"


def input_names(model: nn.Module, given: int, keywords: tuple[str, ...] = ()) -> list[str]:
    """Forward's parameter names for ``given`` inputs, the last ``keywords`` of them passed by
    keyword (fx names placeholders so); an :class:`InputError` when forward cannot be called so
    (both tracers check this first)."""
    params = list(inspect.signature(model.forward).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var = next((p for p in params if p.kind == p.VAR_POSITIONAL), None)
    by_position = given - len(keywords)
    if not keywords:
        required = [p for p in positional if p.default is p.empty]
        if given < len(required) or (var is None and given > len(positional)):
            by_keyword = [f"**{p.name}" if p.kind == p.VAR_KEYWORD else p.name
                          for p in params if p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD)]
            raise input_count_error(model, [p.name for p in positional], len(required), given,
                                    ", ".join(by_keyword) or None)
    _check_call(model, params, by_position, keywords)
    names = [p.name for p in positional[:by_position]]
    if var is not None:
        names += [f"{var.name}_{i}" for i in range(by_position - len(names))]
    return names + list(keywords)


def _check_call(model: nn.Module, params: list[inspect.Parameter], by_position: int, keywords: tuple[str, ...]) -> None:
    """An :class:`InputError` unless forward can be called with ``by_position`` tensors and then
    the ``keywords``: the rules of a Python call, told in terms of ``inputs``."""
    flag = param("inputs")
    sig = _signature_text(model, params)
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var = any(p.kind == p.VAR_POSITIONAL for p in params)
    var_keyword = any(p.kind == p.VAR_KEYWORD for p in params)
    if by_position > len(positional) and not var:
        raise InputError(f"{sig} takes at most {len(positional)} input(s) by position but {by_position} "
                         f"{flag} value(s) without a name were given. Name the others: {flag} NAME=SIZES.")
    filled = {p.name for p in positional[:by_position]}
    by_name = {p.name: p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    for key in keywords:
        if key in filled:
            raise InputError(f"{sig}: the input {key!r} is given by position and again as {flag} {key}=...")
        if key not in by_name and not var_keyword:
            names = ", ".join(by_name) or "none"
            raise InputError(f"{sig} has no parameter {key!r} for {flag} {key}=...; the names it takes: {names}.")
    missing = [p.name for p in params if p.default is p.empty and p.name not in filled and p.name not in keywords
               and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        example = ", ".join(f"{flag} {name}=SIZES" for name in missing)
        raise InputError(f"{sig} needs {', '.join(repr(m) for m in missing)}: give {example}.")
    if by_position == 0 and not keywords and var_keyword:
        raise InputError(f"{sig} takes its inputs by keyword: name each, e.g. {flag} x=1,3,224,224.")


class UniqueNames:
    """Hands out node names, suffixing ``_1``, ``_2``, ... on repeats (both tracers name alike)."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def __call__(self, base: str) -> str:
        name, i = base, 1
        while name in self._taken:
            name = f"{base}_{i}"
            i += 1
        self._taken.add(name)
        return name

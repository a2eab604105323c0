"""The eager tracer: run the model on meta tensors and record what actually executes.

Needs no symbolic tracing, so Python control flow on sizes, ``len()``/``int()`` on shapes,
iteration over tensors and shape asserts simply run for the given input shapes.

* Leaf modules (torch.nn layers except containers, as in torch.fx, plus the user's ``leaves``)
  get forward pre/post hooks: one :class:`Node` per call, holding every ATen op that ran inside.
* Everything else is seen through a ``__torch_function__`` mode: each torch function or tensor
  method called outside a leaf becomes a function/method node, scoped to the innermost module
  whose forward is running.
* Edges come from tensor identity: every tensor a node returns is remembered (and kept alive)
  with the node that produced it.

Node names follow the fx tracer's rules, so both tracers give the same rows for a model both
can trace.
"""
from __future__ import annotations

import contextlib
import dis
import functools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

import torch
from torch import nn
from torch.fx.graph import magic_methods
from torch.overrides import TorchFunctionMode
from torch.utils.hooks import RemovableHandle

from ..errors import ShapeError, TraceError
from .diagnose import (
    Failure,
    explain,
    value_dependent_text,
)
from .meta import (
    UniqueNames,
    call_forward,
    caller_source,
    exception_source,
    flatten_outputs,
    keywords_of,
    module_tensors,
    new_storage_bytes,
    tensor_meta,
    tensors_in,
    user_frame,
)
from .modules import call_path, forward_input_names, is_leaf, model_label, module_type_name, node_attrs
from .records import Node, NodeKind, Trace
from .values import KeepingRecorder, distributions_unchecked, open_distributions, value_failure

#: ``x + y`` reaches ``__torch_function__`` as ``Tensor.add`` (``2 / x`` as ``Tensor.__rdiv__``), exactly
#: like ``x.add(y)``; torch.fx records the operator as ``operator.add``, a function. The operator is
#: read from the instruction the user's frame is executing, and named as fx names it.
_OPERATORS = {name.strip("_") for name in magic_methods}
_BINARY = {"+": "add", "-": "sub", "*": "mul", "/": "truediv", "//": "floordiv", "%": "mod", "**": "pow",
           "@": "matmul", "&": "and", "|": "or", "^": "xor", "<<": "lshift", ">>": "rshift"}
_COMPARE = {"<": "lt", "<=": "le", "==": "eq", "!=": "ne", ">": "gt", ">=": "ge"}
_UNARY = {"UNARY_NEGATIVE": "neg", "UNARY_INVERT": "invert", "UNARY_POSITIVE": "pos", "BINARY_SUBSCR": "getitem"}


@functools.lru_cache(maxsize=4096)
def _instructions(code: CodeType) -> dict[int, dis.Instruction]:
    return {i.offset: i for i in dis.get_instructions(code)}


def operator_at(frame: FrameType | None) -> str | None:
    """The fx name of the Python operator ``frame`` is executing (``+``, ``+=`` -> "add"), if any."""
    if frame is None:
        return None
    ins = _instructions(frame.f_code).get(frame.f_lasti)
    if ins is None:
        return None
    if ins.opname == "BINARY_OP":
        return _BINARY.get(ins.argrepr.removesuffix("="))
    if ins.opname == "COMPARE_OP":
        return _COMPARE.get(str(ins.argval).removeprefix("bool(").removesuffix(")"))
    return _UNARY.get(ins.opname)


def _register_hooks(module: nn.Module, pre: Callable[..., Any], post: Callable[..., Any],
                    with_kwargs: bool) -> list[RemovableHandle]:
    """Forward pre/post hooks on ``module``, around the module's own hooks: what those compute (the
    masked weight of torch.nn.utils.prune, a user's pre-hook) belongs to the module's node, as with
    fx, which runs the hooks inside the call. A ScriptModule refuses ``register_forward_*_hook``
    (hooks cannot be compiled into TorchScript), yet when Python calls it, ``nn.Module.__call__``
    runs the hooks in its tables like any module's: torch.nn.Module's own methods fill them."""
    return [nn.Module.register_forward_pre_hook(module, pre, prepend=True, with_kwargs=with_kwargs),
            nn.Module.register_forward_hook(module, post, with_kwargs=with_kwargs)]


def function_name(func: Callable[..., Any], operator: str | None = None) -> tuple[NodeKind, str]:
    """(kind, name) of a callable seen by ``__torch_function__``, named as torch.fx names it;
    ``operator`` is the Python operator the call came from (:func:`operator_at`)."""
    if operator is not None:
        return "function", operator
    name = getattr(func, "__name__", str(func))
    if name == "__get__":  # a tensor property such as x.T: fx records getattr(x, "T")
        return "function", "getattr"
    if name.startswith("__") and name.endswith("__"):
        inner = name.strip("_")
        for candidate in (inner, inner[1:]):  # "rsub" -> "sub"
            if candidate in _OPERATORS:
                return "function", candidate
        return "method", inner
    qualname = getattr(func, "__qualname__", "")
    if qualname.startswith(("TensorBase.", "Tensor.")):
        return "method", name
    return "function", name.strip("_")


_SIZE_READS = ("size", "numel")


def _reads_size(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """``x.shape``, ``x.size(...)``, ``x.numel()``, except ``x.size(0)`` (the batch)."""
    if func == _SHAPE_GETTER:
        return True
    if getattr(func, "__name__", None) not in _SIZE_READS:
        return False
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    return dim != 0


_SHAPE_GETTER = torch._C.TensorBase.shape.__get__  # type: ignore[attr-defined]  # a getset descriptor


@dataclass
class _LeafCall:
    """A leaf module call in progress (between its pre- and post-hook)."""

    module: nn.Module
    path: str  #: where the module is registered (first path)
    called: str  #: the path this call went through
    tensors: list[torch.Tensor]
    source: str | None


class _EagerRecorder(TorchFunctionMode):
    def __init__(self, model: nn.Module, leaves: tuple[type, ...], cross_check: bool = False) -> None:
        super().__init__()
        self.model = model
        self.leaves = leaves
        self.ops = KeepingRecorder(cross_check)
        self.records: list[Node] = []
        self._unique = UniqueNames()
        self.calls: Counter[str] = Counter()
        self.named: Counter[str] = Counter()
        self._paths: dict[str, nn.Module] | None = None
        #: id(tensor) -> (producing node, the tensor itself, kept alive so ids stay unique)
        self.producer: dict[int, tuple[Node, torch.Tensor]] = {}
        self.attributes = {id(t): name for name, t in [*model.named_parameters(), *model.named_buffers()]}
        self.ops.state = frozenset(self.attributes)
        self.scopes: list[str] = []
        self.leaf: _LeafCall | None = None
        self.leaf_depth = 0
        self.internal = False  #: true while a hook runs: its own tensor calls are not the model's
        self.failure: tuple[Failure, BaseException] | None = None
        #: where the forward read a tensor size other than the batch into a Python value
        self.size_reads: list[str] = []

    # -- naming and records -------------------------------------------------------------------

    @property
    def scope(self) -> str:
        return self.scopes[-1] if self.scopes else ""

    def _producers(self, tensors: list[torch.Tensor]) -> list[tuple[Node, torch.Tensor]]:
        """The node behind each tensor that has one; model parameters used directly in a forward
        get an ``attribute`` node on first use (fx's get_attr)."""
        found = []
        for t in tensors:
            if id(t) not in self.producer and id(t) in self.attributes:
                target = self.attributes[id(t)]
                self._add(Node(
                    name=self._unique(target), kind="attribute", target=target,
                    scope=target.rpartition(".")[0],
                    type="Parameter" if isinstance(t, nn.Parameter) else "Tensor",
                    inputs=(), input_metas=(), outputs=(("", tensor_meta(t)),),
                ), [t])
            if id(t) in self.producer:
                found.append((self.producer[id(t)][0], t))
        return found

    def _add(self, node: Node, outputs: list[torch.Tensor]) -> None:
        self.records.append(node)
        for t in outputs:
            self.producer[id(t)] = (node, t)

    def _node(self, *, name: str, kind: NodeKind, target: str, scope: str, type_name: str,
              inputs: list[torch.Tensor], result: Any, old: list[torch.Tensor], **extra: Any) -> None:
        outputs, _ = flatten_outputs(open_distributions(result))
        if not outputs and kind != "output":
            return
        producers = self._producers(inputs)
        out_tensors = [t for _, t in outputs]
        if kind == "module":
            self.calls[target] += 1  # per module (registered path): shared weights
            extra["call_index"] = self.calls[target]
            self.named[name] += 1  # per path called through: row names
            if self.named[name] > 1:
                name = f"{name}#{self.named[name]}"
        new_bytes = 0 if kind == "output" else new_storage_bytes(out_tensors, old)
        node = Node(
            name=self._unique(name), kind=kind, target=target, scope=scope, type=type_name,
            inputs=tuple(n.name for n, _ in producers),
            input_metas=tuple(tensor_meta(t) for _, t in producers),
            outputs=tuple((key, tensor_meta(t)) for key, t in outputs),
            new_bytes=new_bytes, **extra,
        )
        self._add(node, out_tensors)

    def add_input(self, name: str, t: torch.Tensor) -> None:
        with self._own_calls():
            self._node(name=name, kind="input", target=name, scope="", type_name="input",
                       inputs=[], result=t, old=[])

    def add_output(self, result: Any) -> None:
        with self._own_calls():
            self._node(name="output", kind="output", target="output", scope="", type_name="output",
                       inputs=tensors_in(open_distributions(result)), result=result, old=[])

    @contextlib.contextmanager
    def _own_calls(self) -> Iterator[None]:
        """cnnshape's own tensor calls (``t.shape`` in a record) are not the model's."""
        self.internal = True
        try:
            yield
        finally:
            self.internal = False

    # -- module hooks -------------------------------------------------------------------------
    def install(self) -> list[RemovableHandle]:
        """Hooks on every submodule. A TorchScript model is one leaf node (named after its class):
        nothing inside it is seen. The submodules of a TorchScript module get no hooks: TorchScript
        calls them without running Python hooks."""
        if isinstance(self.model, torch.jit.ScriptModule):
            return _register_hooks(self.model, self._leaf_enter(""), self._leaf_exit("", model_label(self.model)), True)
        handles = []
        inside_script: str | None = None  # "path." of the ScriptModule whose submodules are being listed
        for path, module in self.model.named_modules():
            if not path or (inside_script is not None and path.startswith(inside_script)):
                continue
            if isinstance(module, torch.jit.ScriptModule):
                inside_script = f"{path}."
            if is_leaf(module, self.leaves):
                handles += _register_hooks(module, self._leaf_enter(path), self._leaf_exit(path), True)
            else:
                handles += _register_hooks(module, self._scope_enter(path), self._scope_exit, False)
        return handles

    def _called(self, module: nn.Module, path: str) -> str:
        """The path this call of ``module`` (registered at ``path``) went through: its name under
        the module whose forward is running (:func:`~.modules.call_path`)."""
        parent = self.scopes[-1] if self.scopes else ""
        if path.rpartition(".")[0] == parent:
            return path  # the common case
        if self._paths is None:
            self._paths = dict(self.model.named_modules(remove_duplicate=False))
        return call_path(self._paths, parent, module, path)

    def _scope_enter(self, path: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            self.scopes.append(self._called(module, path))
        return hook

    def _scope_exit(self, module: nn.Module, args: Any, output: Any) -> None:
        self.scopes.pop()

    def _leaf_enter(self, path: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, kwargs: Any) -> None:
            self.leaf_depth += 1
            if self.leaf_depth > 1:
                return
            with self._own_calls():
                self.ops.take()
                self.leaf = _LeafCall(module, path, self._called(module, path) if path else path,
                                      tensors_in((args, kwargs)), caller_source())
        return hook

    def _leaf_exit(self, path: str, name: str | None = None) -> Callable[..., None]:
        """``name``: the node's name when it is not ``path`` (a TorchScript model: ``path`` is "")."""
        def hook(module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
            self.leaf_depth -= 1
            if self.leaf_depth > 0:
                return
            calls = self.ops.take()
            call, self.leaf = self.leaf, None
            assert call is not None
            with self._own_calls():
                self._node(
                    name=name or call.called, kind="module", target=path, scope=call.called.rpartition(".")[0],
                    type_name=module_type_name(module), inputs=call.tensors, result=output,
                    old=call.tensors + module_tensors(module),
                    ops=calls, attrs=node_attrs(module), source=call.source,
                )
        return hook

    # -- functional ops -------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if self.leaf_depth or self.internal:
            return func(*args, **kwargs)
        frame = user_frame()
        kind, base = function_name(func, operator_at(frame))
        source = caller_source()
        if source is not None and _reads_size(func, args, kwargs):
            self.size_reads.append(source or base)
        tensors = tensors_in((args, kwargs))
        self.ops.take()
        try:
            result = func(*args, **kwargs)
        except Exception as e:
            self.ops.take()
            name = f"{self.scope}.{base}" if self.scope else base
            self.failure = (Failure(
                name=name, type=base, module=None, inputs=tuple(tensor_meta(t) for t in tensors),
                producers=tuple(self.producer.get(id(t), (None,))[0] for t in tensors),
                source=source,
            ), e)
            raise
        calls = self.ops.take()
        if base == "iter":  # iterating over a tensor: record the slices it yields
            result = tuple(result)
        self._node(
            name=f"{self.scope}.{base}" if self.scope else base, kind=kind, target=base, scope=self.scope,
            type_name=base, inputs=tensors, result=result, old=tensors, ops=calls, source=source,
        )
        return iter(result) if base == "iter" else result

    # -- failures -------------------------------------------------------------------------------
    def where(self) -> str:
        """" in 'layer'": the leaf layer or the module whose forward was running, if any."""
        path = self.leaf.path if self.leaf is not None else self.scope
        return f" in {path!r}" if path else ""

    def explain(self, exc: BaseException) -> str:
        """Why the forward raised ``exc``: the failing function or leaf layer, else the user's line."""
        if self.failure is not None and self.failure[1] is exc:
            return explain(self.failure[0], exc)
        if self.leaf is not None:
            call = self.leaf
            failure = Failure(
                name=call.path, type=module_type_name(call.module), module=call.module,
                inputs=tuple(tensor_meta(t) for t in call.tensors),
                producers=tuple(self.producer.get(id(t), (None,))[0] for t in call.tensors),
                source=call.source,
            )
            return explain(failure, exc)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        where = f" in {self.scope!r}" if self.scope else ""
        at = exception_source(exc)
        return (f"{type(self.model).__name__}.forward failed{where}: {type(exc).__name__}: {first}"
                + (f"\n    at {at}" if at else ""))


def trace_eager(model: nn.Module, inputs: list[torch.Tensor], leaves: tuple[type, ...] = (),
                cross_check: bool = False) -> Trace:
    names = forward_input_names(model, len(inputs), keywords_of(inputs))
    recorder = _EagerRecorder(model, leaves, cross_check)
    handles = recorder.install()
    try:
        # Tensors the forward creates itself (torch.zeros(...), torch.arange(...)) land where the
        # inputs live: meta for the analysis, a real device when --verify runs the model for real.
        device = inputs[0].device if inputs else torch.device("meta")
        with torch.no_grad(), torch.device(device), distributions_unchecked(), recorder.ops, recorder:
            for name, t in zip(names, inputs):
                recorder.add_input(name, t)
            try:
                result = call_forward(model, inputs)
            except Exception as e:
                found = value_failure(e, recorder.ops)
                if found is not None:
                    what, source = found
                    source = source or (recorder.failure[0].source if recorder.failure else None)
                    raise TraceError(value_dependent_text(model_label(model), recorder.where(), what, source, e)) from e
                raise ShapeError(recorder.explain(e)) from e
            recorder.add_output(result)
    finally:
        for handle in handles:
            handle.remove()
    return Trace(nodes=tuple(recorder.records), tracer="eager",
                 size_reads=tuple(dict.fromkeys(recorder.size_reads)))

"""The torch.fx tracer: symbolic tracing, then node-by-node execution on meta tensors.

This is the only module that touches torch.fx.
"""
from __future__ import annotations

import inspect
import operator
from collections import Counter, OrderedDict
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.fx.proxy import Scope
from torch.utils._device import _device_constructors

from ..errors import InternalError, ShapeError, TraceError, param
from . import layers
from .block_records import UNANSWERED, RecordBlocks
from .blocks import SymbolicBlocks, shared_objects
from .diagnose import Failure, explain, in_distributions, value_dependent_text
from .memo import LeafMemo, is_join
from .meta import (
    UniqueNames,
    caller_source,
    exception_source,
    flatten_outputs,
    input_count_error,
    keywords_of,
    module_tensors,
    new_storage_bytes,
    split_inputs,
    tensor_meta,
    tensors_in,
)
from .modules import Submodules, call_path, forward_input_names, model_label, module_type_name, node_attrs
from .records import Node, NodeKind, Trace
from .values import KeepingRecorder, distributions_unchecked, open_distributions, value_failure

#: torch's tensor factories that take ``device=`` (torch.zeros, torch.arange, torch.tensor, ...)
_FACTORIES = frozenset(_device_constructors())


#: argument types fx passes through unchanged (a subset of its ``base_types``)
_PLAIN_ARGS = frozenset({int, float, bool, str, type(None)})


class _Scope(Scope):
    def __copy__(self) -> Scope:
        return Scope(self.module_path, self.module_type)


class _ModuleStack(OrderedDict[str, tuple[str, Any]]):
    def __copy__(self) -> OrderedDict[str, tuple[str, Any]]:
        return OrderedDict(self)


class _Tracer(fx.Tracer):
    """torch.nn layers (except containers) and the user's ``leaves`` stay single nodes."""

    def __init__(self, leaves: tuple[type, ...], blocks: bool = False) -> None:
        super().__init__()
        self.leaves = leaves
        self._copy_blocks = blocks
        self.blocks: SymbolicBlocks | None = None  #: repeated blocks traced once (blocks.py), when ``blocks``
        # fx copies both on every module call and every node (copy.copy: the generic __reduce_ex__
        # path); the same copies, made directly
        self.scope = _Scope("", None)
        self.module_stack = _ModuleStack()

    def create_arg(self, a: Any) -> Any:
        """fx's answer, sooner, for what nearly every argument is: a Proxy (its node), a plain
        value (itself), a plain tuple or list of those. fx first rules out a parameter, a tensor
        constant, a module, a named tuple, an opaque object (none is of these exact types) and
        then answers the same, from its own table for these types; anything else goes to fx."""
        kind = type(a)
        if kind is fx.Proxy:
            return a.node
        if kind in _PLAIN_ARGS:
            return a
        if kind is tuple:
            return tuple(self.create_arg(v) for v in a)
        if kind is list:
            return [self.create_arg(v) for v in a]
        return super().create_arg(a)

    def create_node(self, kind: str, *args: Any, **kwargs: Any) -> fx.Node:
        """Each call node keeps the user's line that made it (``caller_source``: a walk up the
        stack, far cheaper than fx's ``record_stack_traces``, which formats the whole stack)."""
        node = super().create_node(kind, *args, **kwargs)
        if kind.startswith("call_") or kind == "get_attr":
            node.meta["cnnshape_source"] = caller_source()
        return node

    def trace(self, root: Any, concrete_args: dict[str, Any] | None = None) -> fx.Graph:
        if self._copy_blocks and isinstance(root, nn.Module):
            self.blocks = SymbolicBlocks(root)
        return super().trace(root, concrete_args)

    def call_module(self, m: nn.Module, forward: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.blocks is None:
            return super().call_module(m, forward, args, kwargs)
        return self.blocks.call(self, m, self.is_leaf_module(m, ""), forward, args, kwargs, caller_source,
                                lambda f: super(_Tracer, self).call_module(m, f, args, kwargs))

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, fx.Proxy]) -> Any:
        if self.blocks is not None:  # a copied block's get_attr proxies go where fx keeps its own
            self.blocks.attr_cache = parameter_proxy_cache
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        """TorchScript modules too: fx would otherwise record an opaque ``forward`` method call on
        their C++ object, with no module (nor parameters) behind it."""
        if self.leaves and isinstance(m, self.leaves):
            return True
        if isinstance(m, torch.jit.ScriptModule):
            return True
        return super().is_leaf_module(m, module_qualified_name)


def _omitted_defaults(model: nn.Module, given: int | None, keywords: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """Forward's optional parameters that the ``given`` positional inputs do not reach (the
    positional ones beyond them, and every keyword-only one) and no input names (``keywords``),
    with their defaults: traced as constants, so ``if y is not None:`` takes the branch the call
    really takes."""
    if given is None:
        return None
    all_params = inspect.signature(model.forward).parameters.values()
    positional = [p for p in all_params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    keyword_only = [p for p in all_params if p.kind == p.KEYWORD_ONLY]
    return {p.name: p.default for p in [*positional[given:], *keyword_only]
            if p.default is not p.empty and p.name not in keywords} or None


def symbolic_graph(model: nn.Module, leaves: tuple[type, ...] = (), given: int | None = None,
                   keywords: tuple[str, ...] = (), tracer: _Tracer | None = None) -> fx.Graph:
    """Trace ``model`` symbolically (for ``given`` positional inputs, when known); a
    :class:`TraceError` says why that is impossible. The graph is run on ``model`` itself: no
    GraphModule, whose Python code generation costs more than the meta run."""
    if isinstance(model, torch.jit.ScriptModule):
        raise TraceError(
            f"torch.fx cannot trace {model_label(model)}: it is a TorchScript module (torch.jit.script or "
            f"torch.jit.trace). The eager tracer ({param('tracer')}=eager, or auto) analyses it as one node; "
            f"for a row per layer, analyse the model before it is scripted.")
    tracer = tracer or _Tracer(leaves)
    try:
        graph = tracer.trace(model, concrete_args=_omitted_defaults(model, given, keywords))
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if len(first) > 120:  # fx's messages go on with advice on control flow: keep the first sentence
            first = first.split(". ")[0]
        where = exception_source(e)
        at = f" (at {where})" if where else ""
        inside = " (inside torch.distributions)" if in_distributions(e) else ""
        raise TraceError(
            f"torch.fx cannot trace {type(model).__name__}{at}: {type(e).__name__}: {first}{inside}") from e
    return graph


def _base_name(n: fx.Node) -> str:
    if n.op == "call_function":
        return getattr(n.target, "__name__", str(n.target)).strip("_")
    return str(n.target)


def _stack(n: fx.Node) -> tuple[str, ...]:
    """The registered paths of the modules whose forward a node ran in, outermost first (fx names
    each module by its first path, also when it was called through another)."""
    return tuple(str(path) for path, _ in (n.meta.get("nn_module_stack") or {}).values())


def _scope(n: fx.Node) -> str:
    stack = n.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    if n.op == "call_module" and path == n.target:
        return str(n.target).rpartition(".")[0]
    return str(path)


class _MetaRunner(fx.Interpreter):
    """Runs each fx node on meta tensors and emits one :class:`Node` record per tensor-producing node."""

    def __init__(self, graph: fx.Graph, model: nn.Module, device: torch.device, cross_check: bool = False,
                 blocks: SymbolicBlocks | None = None) -> None:
        super().__init__(model, garbage_collect_values=True, graph=graph)
        self.model = model
        self.device = device
        self.recorder = KeepingRecorder(cross_check, blocks.tensors if blocks is not None else shared_objects(model)[2])
        self._memo = LeafMemo(self.recorder)
        self.records: list[Node] = []
        self.by_fx: dict[fx.Node, Node] = {}
        self._unique = UniqueNames()
        self.calls: Counter[str] = Counter()  #: calls per module (registered path): shared weights
        self.named: Counter[str] = Counter()  #: calls per path called through: row names
        self._paths: dict[str, nn.Module] | None = None
        self._submodules = Submodules(model)
        #: copied blocks answered from their first instance's records (trace/block_records.py)
        self._blocks = RecordBlocks(blocks.instances, self) if blocks is not None and blocks.instances else None
        self._shared = blocks.shared if blocks is not None else None  #: ids of modules at two paths, if known
        #: (message, the exception, whether the forward needs tensor values)
        self.failure: tuple[str, BaseException, bool] | None = None

    def call_function(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Tensors the forward creates itself (``torch.zeros(...)``, ``torch.arange(...)``) land
        where the inputs live: meta for the analysis, a real device when --verify replays the
        nodes. (Per call, rather than a ``torch.device`` mode over the whole run: such a mode
        sends every ``torch.nn.functional`` call through torch's slow override path.)"""
        if target in _FACTORIES and kwargs.get("device") is None:
            kwargs = {**kwargs, "device": self.device}
        if not self.recorder.cross_check and is_join(target):
            return self._memo.run(args, ([(target, args, kwargs)], None))  # a plan of one call
        return super().call_function(target, args, kwargs)

    def call_module(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        module = self._submodules.get(target)  # fx's fetch_attr walks the path from the root
        if not type(module).__module__.startswith("torch."):
            with torch.device(self.device):  # a --leaf block: the user's code runs inside
                return module(*args, **kwargs)
        plan = layers.plan(module, args, kwargs)
        if plan is None:
            return module(*args, **kwargs)
        if not self.recorder.cross_check:
            return self._memo.run(args, plan)  # recorded like the forward's own calls, or from its table
        result = layers.run(args, plan)  # dispatched to the recorder like the forward's own calls
        self._cross_check(target, module, args, kwargs, result)
        return result

    def _cross_check(self, target: str, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
                     result: Any) -> None:
        """The layer's own forward must record the same ATen calls and give the same output."""
        ours = self.recorder.take()
        theirs_result = module(*args, **kwargs)
        theirs = self.recorder.take()
        if ours != theirs or flatten_outputs(result)[0][0][1].shape != flatten_outputs(theirs_result)[0][0][1].shape:
            raise InternalError(
                f"cnnshape bug: calling {type(module).__name__} {target!r} directly gives {ours}, its forward "
                f"{theirs}. Please report this with the model.")
        self.recorder.calls.extend(ours)

    def _tensor_args(self, n: fx.Node) -> list[tuple[fx.Node, torch.Tensor]]:
        found: list[tuple[fx.Node, torch.Tensor]] = []

        def visit(arg: fx.Node) -> fx.Node:
            value = self.env.get(arg)
            for t in tensors_in(open_distributions(value)):
                found.append((arg, t))
            return arg

        fx.node.map_arg((n.args, n.kwargs), visit)
        return found

    def run_node(self, n: fx.Node) -> Any:
        if self._blocks is None:
            return self._run_node(n)
        result = self._blocks.before(n)
        if result is UNANSWERED:
            result = self._run_node(n)
        self._blocks.after(n, result)
        return result

    def _run_node(self, n: fx.Node) -> Any:
        tensor_args = self._tensor_args(n)
        module = self._submodules.get(str(n.target)) if n.op == "call_module" else None
        try:
            self.recorder.take()
            # fx's run_node without its per-node context manager (node-meta provenance for nested
            # tracing, which nothing here does): the same two steps
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            result = getattr(self, n.op)(n.target, args, kwargs)
            calls = self.recorder.take()
        except Exception as e:
            self.recorder.take()
            if n.op == "placeholder":
                raise
            failure = Failure(
                name=str(n.target) if module is not None else f"{_scope(n)}.{_base_name(n)}".lstrip("."),
                type=module_type_name(module) if module is not None else _base_name(n),
                module=module,
                inputs=tuple(tensor_meta(t) for _, t in tensor_args),
                producers=tuple(self.by_fx.get(a) for a, _ in tensor_args),
                source=n.meta.get("cnnshape_source"),
            )
            # raised after the Interpreter unwinds, which would append its own text to the message
            found = value_failure(e, self.recorder)
            if found is not None:
                path = str(n.target) if module is not None else _scope(n)  # the module whose code ran
                where = f" in {path!r}" if path else ""
                what, source = found
                self.failure = (value_dependent_text(model_label(self.model), where, what, source or failure.source, e),
                                e, True)
            else:
                self.failure = (explain(failure, e), e, False)
            raise
        self._record(n, module, tensor_args, result, calls)
        return result

    def _called_path(self, n: fx.Node, module: nn.Module) -> str:
        """The path this call of ``module`` went through (:func:`~.modules.call_path`), resolved
        level by level down fx's module stack."""
        stack = _stack(n)
        if stack and stack[-1] != str(n.target):
            stack += (str(n.target),)
        if not stack or all(b.rpartition(".")[0] == a for a, b in zip(("",) + stack, stack)):
            return str(n.target)  # every level called through its registered path: the common case
        if self._shared is not None and all(b.startswith(a + ".") or not a for a, b in zip(("",) + stack, stack)) \
                and not any(id(self._submodules.get(path)) in self._shared for path in stack):
            # each level below the one that called it (through a ModuleList, say), none registered
            # twice: call_path gives each its registered path
            return str(n.target)
        if self._paths is None:
            self._paths = dict(self.model.named_modules(remove_duplicate=False))
        resolved = ""
        for path in stack:
            resolved = call_path(self._paths, resolved, self._paths[path], path)
        return resolved

    def name_row(self, kind: str, target: str, scope: str, type_name: str, called: str = "") -> tuple[str, int]:
        """A record's unique name and call index in this run (a copied block's too: block_records.py): a
        module call by the path ``called`` through (``enc#2``: its second call), else by target or scope."""
        if kind == "module":
            self.calls[target] += 1
            self.named[called] += 1
            count = self.named[called]
            return self._unique(called if count == 1 else f"{called}#{count}"), self.calls[target]
        if kind == "attribute":
            return self._unique(target), 1
        return self._unique(f"{scope}.{type_name}" if scope else type_name), 1

    def _record(self, n: fx.Node, module: nn.Module | None, tensor_args: list, result: Any, calls: tuple) -> None:
        outputs, _ = flatten_outputs(open_distributions(result))
        if not outputs and n.op != "output":
            return
        kind: NodeKind
        attrs: tuple = ()
        scope = _scope(n)
        call_index = 1
        if n.op == "placeholder":
            kind, target, type_name, name = "input", n.target, "input", self._unique(str(n.target))
        elif n.op == "output":
            kind, target, type_name, name = "output", "output", "output", self._unique("output")
        elif n.op == "call_module":
            assert module is not None
            kind, target, type_name = "module", str(n.target), module_type_name(module)
            called = self._called_path(n, module)
            scope = called.rpartition(".")[0]
            name, call_index = self.name_row(kind, target, scope, type_name, called)
            attrs = node_attrs(module)
        elif n.op == "get_attr":
            value = result
            kind, target = "attribute", str(n.target)
            type_name = "Parameter" if isinstance(value, nn.Parameter) else "Tensor"
            scope = target.rpartition(".")[0]
            name, _ = self.name_row(kind, target, scope, type_name)
        else:
            kind = "function" if n.op == "call_function" else "method"
            target = type_name = _base_name(n)
            name, _ = self.name_row(kind, target, scope, type_name)
        inputs_old = [t for _, t in tensor_args]
        if module is not None:
            inputs_old += module_tensors(module)
        out_tensors = [t for _, t in outputs]
        new_bytes = 0 if kind in ("output", "attribute") else new_storage_bytes(out_tensors, inputs_old)
        record = Node(
            name=name,
            kind=kind,
            target=str(target),
            scope=scope,
            type=type_name,
            inputs=tuple(self.by_fx[a].name for a, _ in tensor_args if a in self.by_fx),
            input_metas=tuple(tensor_meta(t) for a, t in tensor_args if a in self.by_fx),
            outputs=tuple((key, tensor_meta(t)) for key, t in outputs),
            ops=calls,
            attrs=attrs,
            source=n.meta.get("cnnshape_source"),
            new_bytes=new_bytes,
            call_index=call_index,
        )
        self.records.append(record)
        self.by_fx[n] = record


def _reads_batch_only(n: fx.Node) -> bool:
    """``x.size(0)``, ``len(x)``, ``x.shape[0]``: the batch size, which no studied axis depends on."""
    if n.op == "call_method":
        dim = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim")
        return isinstance(dim, int) and dim == 0
    if n.target is len:
        return True
    return bool(n.users) and all(u.target is operator.getitem and u.args[1] == 0 for u in n.users)


def size_reads(graph: fx.Graph) -> tuple[str, ...]:
    """Where ``graph`` reads a tensor's size (other than the batch) into a Python value."""
    found = []
    for n in graph.nodes:
        reads = (n.op == "call_method" and n.target in ("size", "numel")) or (
            n.op == "call_function" and (n.target is len or (n.target is getattr and n.args[1:] == ("shape",))))
        if reads and not _reads_batch_only(n):
            found.append(n.meta.get("cnnshape_source") or n.name)
    return tuple(dict.fromkeys(found))


def _bind_inputs(graph: fx.Graph, model: nn.Module, inputs: list[torch.Tensor]) -> list[Any]:
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if keywords_of(inputs):  # by name; the eager tracer's forward_input_names has checked the call
        positional, named = split_inputs(inputs)
        if any(str(n.target).startswith("*") for n in placeholders):
            raise TraceError(f"torch.fx cannot pass inputs by keyword to {model_label(model)}.forward, which takes "
                             f"{next(str(n.target) for n in placeholders if str(n.target).startswith('*'))}; the "
                             f"eager tracer can ({param('tracer')}=eager, or auto)")
        return [positional[i] if i < len(positional) else named[str(n.target)] if str(n.target) in named
                else n.args[0] for i, n in enumerate(placeholders)]
    required = [n for n in placeholders if not n.args]
    if len(inputs) < len(required) or len(inputs) > len(placeholders):
        raise input_count_error(model, [str(n.target) for n in placeholders], len(required), len(inputs))
    return list(inputs) + [n.args[0] for n in placeholders[len(inputs):]]


def trace_fx(model: nn.Module, inputs: list[torch.Tensor], leaves: tuple[type, ...] = (),
             cross_check: bool = False, blocks: bool | None = None) -> Trace:
    """The trace of ``model`` called with ``inputs``; ``blocks``: whether a repeated block is traced
    once and copied (trace/blocks.py), by default whenever the run is not cross-checked."""
    keywords = keywords_of(inputs)
    forward_input_names(model, len(inputs), keywords)  # the same input checks and messages as the eager tracer
    tracer = _Tracer(leaves, blocks=not cross_check if blocks is None else blocks)
    graph = symbolic_graph(model, leaves, len(inputs) - len(keywords), keywords, tracer)
    args = _bind_inputs(graph, model, inputs)
    device = inputs[0].device if inputs else torch.device("meta")
    runner = _MetaRunner(graph, model, device, cross_check, tracer.blocks)
    try:
        with torch.no_grad(), distributions_unchecked(), runner.recorder:
            runner.run(*args)
    except Exception:
        if runner.failure is None:
            raise
        message, cause, needs_values = runner.failure
        raise (TraceError if needs_values else ShapeError)(message) from cause
    finally:
        _let_go(tracer, runner)
    return Trace(nodes=tuple(runner.records), tracer="fx", size_reads=size_reads(graph))


def _let_go(tracer: _Tracer, runner: _MetaRunner) -> None:
    """fx's tracer and interpreter sit in reference cycles (proxies, nodes) only the cyclic collector
    frees: the model they hold would wait for it too. Their references to the model go."""
    tracer.root = tracer.submodule_paths = tracer.blocks = None  # type: ignore[assignment]  # finished with
    runner.module = runner.model = runner.submodules = runner._submodules = runner._blocks = None  # type: ignore[assignment]

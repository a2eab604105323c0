"""Repeated blocks traced once: the fx tracer's fast path for deep networks, symbolic half.

A deep network calls the same block (a ResNet's bottleneck, a NAS cell, a transformer layer) again
and again, each instance built alike and called alike. torch.fx traces every call afresh through
Python: a proxy per operation, ``__torch_function__``, fx's argument checks and its module-call
bookkeeping, about 90 µs a node on a 2-core machine. What a block's ``forward`` puts into the graph
is a function of the block's own state and of how it is called, so a later instance of the same
state, called the same way, gets a copy of the first instance's nodes, with its own module paths
(:class:`SymbolicBlocks`). The meta run then reuses the first instance's records for the copy
(:mod:`.block_records`).

What the copy depends on, and what guards it (each check is below, where it is made):

- the block's state, recursively (:func:`module_key`): its class, every entry of its instance
  dictionary (plain values exactly, with their types; classes and functions by identity), the
  class, shape, strides, dtype, device and ``requires_grad`` of each parameter and buffer, each
  submodule's state; anything else (a tensor attribute, an unregistered module, an object of
  another class, a hook) and the block is traced as usual;
- how it is called (:func:`call_key`): which arguments are proxies (and which are the same proxy),
  the other arguments' plain values;
- where its modules live: no module, parameter or buffer below it registered twice (fx names a
  shared one by its first path), every path the copy would name (nodes, fx's module stack, its call
  counts) under the block's own path, and never a module's second call;
- its inputs: the first instance's nodes reach outside it only through its arguments; a parameter
  it reads becomes its own ``get_attr`` node in the copy, as fx's cache would make one;
- never while cross-checking (the test suite), and tests/test_blocks.py compares graphs and traces
  made with and without copies on every example and on models built to break it.

The one thing no key can see is a ``forward`` whose graph depends on state outside the block
(a global it reads and another call changes). fx's symbolic trace of such a forward is already a
snapshot of one call; with copies, every instance shows the first one's.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import torch.fx as fx
from torch import nn
from torch.fx.node import map_aggregate

from .block_keys import _PLAIN, Keys, NotKeyable, call_key, module_key, shared_objects


@dataclass(frozen=True)
class Ref:
    """In a template's arguments: the block's ``k``-th proxy argument ("input") or its ``k``-th node."""

    where: str  # "input" or "node"
    index: int


@dataclass(frozen=True)
class NodeSpec:
    """One node of a template, its module paths relative to the block's (``".body.0"``)."""

    op: str
    target: Any  #: relative for call_module and get_attr, else the function or method name
    args: Any
    kwargs: Any
    stack: tuple[tuple[str, str, Any], ...]  #: fx's module stack below the block: (key, path, type)
    scope: tuple[str, Any]  #: fx's node_name_to_scope entry: (relative path, type)
    source: str | None
    #: the source is the line that called the block (a torch container's nodes): the copy's caller
    source_is_caller: bool
    #: for a block below this one copied as one node: that block's template
    copy_of: Template | None = None


@dataclass(frozen=True)
class Template:
    """A block's first traced call, to be copied for later instances."""

    path: str
    nodes: tuple[NodeSpec, ...]
    result: Any  #: the forward's return value, its proxies as :class:`Ref`
    calls: tuple[tuple[str, int], ...]  #: fx's call count of each module below the block (relative)
    read: frozenset[int]  #: the proxy arguments its nodes read (by position)
    caller: str | None  #: the line that called the block

    @property
    def single(self) -> bool:
        """Whether a copy can be one node: the block returns one value (a proxy or a plain one), and
        reads no parameter directly (fx's cache would hold the proxy for a later read elsewhere)."""
        return not isinstance(self.result, (tuple, list, dict)) and all(s.op != "get_attr" for s in self.nodes)


@dataclass
class Instance:
    """Where the graph holds a block call: its first call (``node`` is None), or a copy of one in
    a single ``call_module`` node (``node``), whose records the meta run makes (:mod:`.block_records`)."""

    template: Template
    path: str
    inputs: list[fx.Node]  #: the nodes of the proxy arguments, in :func:`call_key` order
    nodes: list[fx.Node] = field(default_factory=list)  #: a first call's nodes
    node: fx.Node | None = None
    stack: list[tuple[str, tuple[str, Any]]] = field(default_factory=list)  #: fx's module stack at the copy
    caller: str | None = None  #: the line that called the copy


class _First:
    """A block's first traced call; its :class:`Template` is made when a second call wants it."""

    def __init__(self, module: nn.Module, path: str, proxies: list[fx.Proxy], depth: int, caller: str | None):
        self.module = module
        self.path = path
        self.proxies = proxies
        self.depth = depth  #: fx's module stack entries above the block's nodes (the block's own included)
        self.caller = caller
        self.calls: Counter[str] = Counter()  #: calls of the modules below it, by path
        self.nodes: list[fx.Node] = []
        self.result: Any = None
        self.template: Template | None = None
        self.made = False
        self.key: int = -1  #: its state's key before it ran

    def made_template(self, tracer: fx.Tracer, blocks: SymbolicBlocks) -> Template | None:
        if not self.made:
            self.made = True
            try:
                # its state as it was before it ran: a forward that sets attributes of its own
                # (``self.cache = x``) is traced every time
                if module_key(self.module, blocks.keys.afresh()) != self.key:
                    raise NotKeyable
                self.template = _template(self, tracer.node_name_to_scope, blocks._single)
            except Exception:  # NotKeyable, or a state that no longer describes (see above)
                self.template = None
            if self.template is not None:
                blocks.instances.append(Instance(self.template, self.path, [p.node for p in self.proxies], self.nodes,
                                                 caller=self.caller))
            self.result = None
        return self.template


def _global_hooks() -> bool:
    """Whether torch has forward hooks for every module (they run during fx's trace)."""
    from torch.nn.modules import module

    return bool(module._global_forward_hooks or module._global_forward_pre_hooks
                or module._global_backward_hooks or module._global_backward_pre_hooks)


def _relative(path: str, base: str) -> str:
    if path == base or path.startswith(base + "."):
        return path[len(base):]
    raise NotKeyable


def _nodes_after(graph: fx.Graph, last: fx.Node | None) -> list[fx.Node]:
    node = last.next if last is not None else next(iter(graph.nodes), None)
    found = []
    root = graph._root  # the sentinel at both ends of fx's node list
    while node is not None and node is not root:
        found.append(node)
        node = node.next
    return found


def place(graph: fx.Graph, template: Template, path: str, inputs: list[fx.Node],
          stack: list[tuple[str, tuple[str, Any]]], caller: str | None) -> tuple[list[fx.Node], list[Instance]]:
    """The template's nodes put into ``graph`` for the block at ``path`` called with ``inputs``
    (fx's module stack above it: ``stack``; the line calling it: ``caller``), as fx puts them; and
    the copies among them made as one node."""
    made: list[fx.Node] = []
    copies: list[Instance] = []

    def resolve(value: Any) -> Any:
        if type(value) is Ref:
            return inputs[value.index] if value.where == "input" else made[value.index]
        return value

    for spec in template.nodes:
        target = path + spec.target if spec.op in ("call_module", "get_attr") else spec.target
        node = graph.create_node(spec.op, target, map_aggregate(spec.args, resolve),
                                 map_aggregate(spec.kwargs, resolve))
        node_stack: OrderedDict[str, tuple[str, Any]] = OrderedDict(stack)
        for key, rel, kind in spec.stack:
            node_stack[path + key] = (path + rel, kind)
        node.meta["nn_module_stack"] = node_stack
        if spec.op.startswith("call_") or spec.op == "get_attr":
            node.meta["cnnshape_source"] = caller if spec.source_is_caller else spec.source
        if spec.copy_of is not None:
            copies.append(Instance(spec.copy_of, str(target), list(node.all_input_nodes), node=node,
                                   stack=list(node_stack.items()), caller=node.meta.get("cnnshape_source")))
        made.append(node)
    return made, copies


class SymbolicBlocks:
    """Per trace: first calls by key, and the instances placed in the graph (see the module's docstring)."""

    def __init__(self, model: nn.Module) -> None:
        self.shared, self.repeated, self.tensors = shared_objects(model)
        self.keys = Keys(self.shared)
        self._firsts: dict[Hashable, _First | None] = {}
        self._recording: list[_First] = []
        #: the first calls with copies, and the copies made as one node
        self.instances: list[Instance] = []
        self._single: dict[fx.Node, Instance] = {}  #: the copies made as one node, by node
        #: fx's cache of ``get_attr`` proxies, once fx has shown it (see ``_Tracer.getattr``)
        self.attr_cache: dict[str, fx.Proxy] | None = None

    def call(self, tracer: fx.Tracer, module: nn.Module, leaf: bool, forward: Callable[..., Any],
             args: tuple[Any, ...], kwargs: dict[str, Any], caller: Callable[[], str | None],
             call_module: Callable[[Callable[..., Any]], Any]) -> Any:
        """``call_module(forward)`` runs fx's own module call with ``forward`` in the middle: for a
        block, its forward traced (and kept as its first call), or its template copied, or neither."""
        path = tracer.path_of_module(module)
        for first in self._recording:  # every module call below a block being recorded
            first.calls[path] += 1
        if leaf or type(module) not in self.repeated or not path or tracer.num_calls.get(path) or _global_hooks():
            return call_module(forward)
        try:
            key = (module_key(module, self.keys), call_key(args, kwargs)[0])
            hash(key)
        except Exception:  # NotKeyable, or a state torch itself cannot describe (an uninitialised parameter)
            return call_module(forward)
        proxies = call_key(args, kwargs)[1]
        if key not in self._firsts:
            return self._record(tracer, module, key, path, proxies, forward, caller, call_module)
        earlier = self._firsts[key]
        template = earlier.made_template(tracer, self) if earlier is not None else None
        if template is None or not self._free(tracer, template, path):
            return call_module(forward)
        return call_module(lambda *a, **k: self._copy(tracer, type(module), template, path, proxies, caller()))

    def _free(self, tracer: fx.Tracer, template: Template, path: str) -> bool:
        """No module the copy calls was called before, no parameter it reads has a proxy yet."""
        if any(tracer.num_calls.get(path + rel) for rel, _ in template.calls):
            return False
        cache = self.attr_cache or {}
        return not any(spec.op == "get_attr" and path + spec.target in cache for spec in template.nodes)

    def _record(self, tracer: fx.Tracer, module: nn.Module, key: tuple[int, Hashable], path: str,
                proxies: list[fx.Proxy],
                forward: Callable[..., Any], caller: Callable[[], str | None],
                call_module: Callable[[Callable[..., Any]], Any]) -> Any:
        last = next(reversed(tracer.graph.nodes), None)
        first = _First(module, path, proxies, len(tracer.module_stack) + 1, caller())
        self._recording.append(first)
        try:
            result = call_module(forward)
        finally:
            self._recording.pop()
        # every module below it called for the first time (fx numbers a later call's stack entry)
        fresh = all(tracer.num_calls.get(p) == n for p, n in first.calls.items())
        if fresh:
            first.key = key[0]
            first.nodes = _nodes_after(tracer.graph, last)
            first.result = result
        self._firsts[key] = first if fresh else None
        return result

    def _copy(self, tracer: fx.Tracer, kind: type, template: Template, path: str, proxies: list[fx.Proxy],
              here: str | None) -> Any:
        """The copy, as one node when the block returns one value, else as the template's nodes."""
        stack = list(tracer.module_stack.items())
        inputs = [p.node for p in proxies]
        if template.single:
            node = tracer.graph.create_node("call_module", path, tuple(inputs), {})
            node.meta["nn_module_stack"] = OrderedDict(stack)
            node.meta["cnnshape_source"] = here
            tracer.node_name_to_scope[node.name] = (path, kind)
            copies = [Instance(template, path, inputs, node=node, stack=stack, caller=here)]
            made = [node]
        else:
            made, copies = place(tracer.graph, template, path, inputs, stack, here)
            for spec, node in zip(template.nodes, made):
                tracer.node_name_to_scope[node.name] = (path + spec.scope[0], spec.scope[1])
                if spec.op == "get_attr" and self.attr_cache is not None:
                    self.attr_cache[str(node.target)] = tracer.proxy(node)
        self.instances += copies
        self._single.update((c.node, c) for c in copies if c.node is not None)
        for rel, count in template.calls:
            tracer.num_calls[path + rel] = count
        for first in self._recording:  # an enclosing block being recorded counts these calls too
            for rel, count in template.calls:
                first.calls[path + rel] += count

        def rebuild(value: Any) -> Any:
            if type(value) is Ref:
                if value.where == "input":
                    return proxies[value.index]
                return tracer.proxy(made[0] if template.single else made[value.index])
            return value

        return _map_result(template.result, rebuild)


def _map_result(value: Any, fn: Callable[[Any], Any]) -> Any:
    kind = type(value)
    if kind in (tuple, list):
        return kind(_map_result(v, fn) for v in value)
    if isinstance(value, tuple) and hasattr(kind, "_fields"):  # a named tuple
        return kind(*(_map_result(v, fn) for v in value))
    if kind is dict:
        return {k: _map_result(v, fn) for k, v in value.items()}
    return fn(value)


def _template(first: _First, scopes: dict[str, tuple[str, Any]], single: dict[fx.Node, Instance]) -> Template:
    """The template of a block's first call; :class:`NotKeyable` when a copy could differ."""
    base = first.path
    nodes = first.nodes
    calls = tuple((_relative(p, base), n) for p, n in first.calls.items())
    index = {node: i for i, node in enumerate(nodes)}
    inputs = {p.node: k for k, p in enumerate(first.proxies)}

    def ref(node: fx.Node) -> Ref:
        if node in index:
            return Ref("node", index[node])
        if node in inputs:
            return Ref("input", inputs[node])
        raise NotKeyable  # the block reaches a node outside it other than through its arguments

    specs = []
    for node in nodes:
        target = _relative(str(node.target), base) if node.op in ("call_module", "get_attr") else node.target
        stack = list((node.meta.get("nn_module_stack") or {}).items())
        if len(stack) < first.depth:
            raise NotKeyable
        inner = tuple((_relative(key, base), _relative(path, base), kind) for key, (path, kind) in
                      stack[first.depth:])
        scope_path, scope_type = scopes[node.name]
        source = node.meta.get("cnnshape_source")
        inside = single.get(node)
        # a template's arguments hold a Ref where fx's hold a node (map_aggregate is typed for nodes)
        to_refs: Any = lambda v: ref(v) if isinstance(v, fx.Node) else v  # noqa: E731
        args, kwargs = map_aggregate((node.args, node.kwargs), to_refs)
        specs.append(NodeSpec(node.op, target, args, kwargs, inner,
                              (_relative(scope_path, base), scope_type), source,
                              source is not None and source == first.caller, inside.template if inside else None))

    def keep(value: Any) -> Any:
        kind = type(value)
        if kind is fx.Proxy:
            return ref(value.node)
        if isinstance(value, fx.Proxy) or kind not in _PLAIN:
            raise NotKeyable
        return value

    read: set[int] = set()
    for spec in specs:
        map_aggregate((spec.args, spec.kwargs),
                      lambda v: read.add(v.index) if type(v) is Ref and v.where == "input" else None)
    return Template(base, tuple(specs), _map_result(first.result, keep), calls, frozenset(read), first.caller)

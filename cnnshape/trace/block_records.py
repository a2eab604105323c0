"""Repeated blocks traced once, the meta run's half: a copied block's records from its first call's.

:mod:`.blocks` puts a later instance of a block into the graph as one node (a copy of the block's
first call). Every ATen call, output layout and byte count of a block follows from its nodes (the
same for both) and from the layouts of what it is called with. So the meta run
(:class:`RecordBlocks`) watches the first call run, keeps its records and how to reproduce the
value it returns, and answers a copy called with inputs of the same layouts from those: each
record renamed the way the usual path names it, the returned value a new meta tensor of the kept
layout (or the input it returned). Any other copy, and any copy on real tensors (``--verify``), is
put back into nodes (:func:`.blocks.place`) and run node by node the usual way.

What guards the equivalence (each check is below, where it is made):

- the conditions of :mod:`.memo`'s table: meta tensors only, no grad mode, no other dispatch or
  function mode, never while cross-checking;
- the inputs' key: class, shape, strides, dtype, offset, flags and storage sharing of each tensor
  the block reads, the type and value of any other value it reads, and which inputs have records;
- the value returned is one of the inputs, or a new tensor whose storage no other value of the
  block, no input and no parameter uses; anything else and copies run node by node;
- every kept record lies below the block's path (target and scope), names each module call by the
  module's own path, and reads only records of the block or of the block's inputs.
"""
from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import torch
import torch.fx as fx

from .blocks import Instance, Ref, place
from .meta import module_tensors, tensors_in
from .records import Node

#: :meth:`RecordBlocks.before`'s answer for a node to run the usual way
UNANSWERED = object()
_MISSING = object()
_META = torch.device("meta")
_PLAIN = frozenset({int, float, bool, str, type(None), torch.Size})


class _Unkept(Exception):
    """The first call cannot answer for its copies."""


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


def _input_key(values: list[Any], recorded: list[bool], read: frozenset[int]) -> Hashable | None:
    """What a block's records depend on in its inputs; ``None`` when a value it reads is neither a
    plain value nor a meta tensor."""
    storages: dict[int, int] = {}
    parts: list[Hashable] = []
    for k, (value, has_record) in enumerate(zip(values, recorded)):
        if k not in read:
            parts.append(("unread", has_record))
        elif isinstance(value, torch.Tensor):
            if not value.is_meta:
                return None
            storage = storages.setdefault(_storage(value), len(storages))
            parts.append((type(value), tuple(value.shape), value.stride(), value.dtype, value.storage_offset(),
                          value.requires_grad, value.is_neg(), value.is_conj(), storage, has_record))
        elif type(value) in _PLAIN:
            parts.append((type(value), value, has_record))
        else:
            return None
    return tuple(parts)


class _Kept:
    """What the meta run kept of a block's first call."""

    def __init__(self) -> None:
        self.valid = True
        self.key: Hashable | None = None
        self.start = 0  #: the run's record count when the first call began
        self.records: tuple[Node, ...] = ()
        self.outside: tuple[str | None, ...] = ()  #: the record names of its inputs' producers
        self.result: int | None = None  #: which record the returned node has
        #: how to reproduce the returned value: ("new", layout) | ("input", k) | ("none", None)
        self.value: tuple[str, Any] = ("none", None)
        self.watch: dict[str, Any] = {}  #: while it runs: its inputs, its values, the storages seen
        self.path = ""  #: the block's path where it ran
        self.caller: str | None = None  #: the line that called it there


class RecordBlocks:
    """The meta run's side of :mod:`.blocks`, for one trace (see the module's docstring)."""

    def __init__(self, instances: list[Instance], runner: Any) -> None:
        self._runner = runner
        self._copies: dict[fx.Node, Instance] = {}
        copied: set[int] = set()
        for instance in instances:
            if instance.node is not None:
                self._copies[instance.node] = instance
                copied.add(id(instance.template))
        #: what was kept, by template and input key: one entry per layout a block was called with
        self._known: dict[tuple[int, Hashable], _Kept] = {}
        #: the calls being watched: their first, result and last nodes
        self._kept_of: dict[int, _Kept] = {}
        self._starts: dict[fx.Node, list[Instance]] = {}
        self._ends: dict[fx.Node, list[Instance]] = {}
        self._results: dict[fx.Node, list[Instance]] = {}
        self._inside: set[fx.Node] = set()
        self._active: list[_Kept] = []
        for instance in instances:
            if instance.node is None and id(instance.template) in copied and instance.nodes:
                self._watch(instance)

    def _watch(self, instance: Instance) -> None:
        """Keep what ``instance``'s nodes record when they run."""
        self._kept_of[id(instance)] = _Kept()
        self._starts.setdefault(instance.nodes[0], []).append(instance)
        self._ends.setdefault(instance.nodes[-1], []).append(instance)
        result = instance.template.result
        if type(result) is Ref and result.where == "node":
            self._results.setdefault(instance.nodes[result.index], []).append(instance)
        self._inside.update(instance.nodes)

    def before(self, n: fx.Node) -> Any:
        """Before ``n`` runs: the value of a copy (its records added), else :data:`UNANSWERED`."""
        for instance in self._starts.get(n, ()):
            self._begin(instance)
        copy = self._copies.get(n)
        if copy is None:
            return UNANSWERED
        key = self._key(copy)
        kept = self._known.get((id(copy.template), key)) if key is not None and _plain_run(self._runner) else None
        if kept is not None and kept.value[0] != "unkept":
            return self._emit(copy, kept)
        return self._expand(copy, watch=key is not None and (id(copy.template), key) not in self._known)

    def after(self, n: fx.Node, value: Any) -> None:
        """After ``n`` ran: what the calls being watched keep of it."""
        if n not in self._inside:
            return
        for instance in self._results.get(n, ()):
            self._kept_of[id(instance)].watch["result"] = value
        runner = self._runner
        for kept in self._active:
            if n not in kept.watch["members"]:
                continue
            kept.watch["held"].append(value)  # alive until the block ends: a freed storage's id is soon another's
            if n.op == "call_module" and n not in self._copies:
                module = runner._submodules.get(str(n.target))
                if runner._called_path(n, module) != str(n.target):
                    kept.valid = False  # called through another path: named by it
        for instance in self._ends.get(n, ()):
            kept = self._kept_of.pop(id(instance))
            if kept in self._active:
                self._active.remove(kept)
                try:
                    if kept.valid:
                        self._end(instance, kept)
                        self._known.setdefault((id(instance.template), kept.key), kept)
                except _Unkept:
                    pass
            kept.watch = {}

    # -- watched calls --------------------------------------------------------------------------

    def _key(self, instance: Instance) -> Hashable | None:
        runner = self._runner
        values = [runner.env.get(node, _MISSING) for node in instance.inputs]
        return _input_key(values, [node in runner.by_fx for node in instance.inputs], instance.template.read)

    def _begin(self, instance: Instance) -> None:
        runner = self._runner
        kept = self._kept_of[id(instance)]
        kept.key = self._key(instance)
        if kept.key is None or not _plain_run(runner):
            return
        values = [runner.env.get(node, _MISSING) for node in instance.inputs]
        kept.start = len(runner.records)
        kept.outside = tuple(runner.by_fx[node].name if node in runner.by_fx else None for node in instance.inputs)
        module = runner._submodules.get(instance.path)
        kept.watch = {"members": frozenset(instance.nodes), "inputs": values, "held": [],
                      "fixed": {_storage(t) for t in [*values, *module_tensors(module)] if isinstance(t, torch.Tensor)}}
        self._active.append(kept)

    def _end(self, instance: Instance, kept: _Kept) -> None:
        runner = self._runner
        template = instance.template
        kept.records = tuple(runner.records[kept.start:])
        names = {name for name in kept.outside if name is not None}
        for record in kept.records:
            where = record.target if record.kind in ("module", "attribute") else record.scope
            if not _below(where, instance.path) or any(name not in names for name in record.inputs):
                raise _Unkept
            names.add(record.name)
        kept.path, kept.caller = instance.path, instance.caller
        result = template.result
        if type(result) is Ref and result.where == "node":
            node = instance.nodes[result.index]
            record = runner.by_fx.get(node)
            kept.result = next((i for i, r in enumerate(kept.records) if r is record), None)
            if record is not None and kept.result is None:
                raise _Unkept
            kept.value = _new_value(kept.watch, kept.watch.get("result", _MISSING))
        elif type(result) is Ref:
            kept.value = ("input", result.index)

    # -- copies ---------------------------------------------------------------------------------

    def _emit(self, copy: Instance, kept: _Kept) -> Any:
        runner = self._runner
        old, new = kept.path, copy.path
        names: dict[str | None, str] = {}
        for name, node in zip(kept.outside, copy.inputs):
            if name is not None:
                names[name] = runner.by_fx[node].name
        made = []
        for record in kept.records:
            if record.kind in ("module", "attribute"):  # (each module called by its own path: _end)
                target = new + record.target[len(old):]
                scope = target.rpartition(".")[0]
            else:
                target = record.target
                scope = new + record.scope[len(old):]
            name, call_index = runner.name_row(record.kind, target, scope, record.type, target)
            source = copy.caller if record.source == kept.caller else record.source
            made.append(Node(
                name=name, kind=record.kind, target=target, scope=scope, type=record.type,
                inputs=tuple(names[i] for i in record.inputs), input_metas=record.input_metas,
                outputs=record.outputs, ops=record.ops, attrs=record.attrs, source=source,
                new_bytes=record.new_bytes, call_index=call_index))
            names[record.name] = name
        runner.records += made
        if kept.result is not None:
            runner.by_fx[copy.node] = made[kept.result]
        how, what = kept.value
        if how == "new":
            shape, stride, dtype = what
            with torch._C._DisableTorchDispatch():  # the output of calls already recorded
                return torch.empty_strided(shape, stride, dtype=dtype, device=_META)
        if how == "input":
            return runner.env.get(copy.inputs[what])
        return None

    def _expand(self, copy: Instance, watch: bool) -> Any:
        """The copy put back into nodes (of a graph of its own) and run node by node; ``watch``: kept
        as the first call with its inputs' layouts (later copies called alike are answered from it)."""
        runner = self._runner
        graph = fx.Graph()
        placeholders = [graph.placeholder(f"input_{k}") for k in range(len(copy.inputs))]
        made, nested = place(graph, copy.template, copy.path, placeholders, copy.stack, copy.caller)
        for instance in nested:
            self._copies[instance.node] = instance  # type: ignore[index]  # a copy as one node has one
        if watch and made:
            self._watch(Instance(copy.template, copy.path, copy.inputs, made, caller=copy.caller))
        for placeholder, node in zip(placeholders, copy.inputs):
            if node in runner.env:
                runner.env[placeholder] = runner.env[node]
            if node in runner.by_fx:
                runner.by_fx[placeholder] = runner.by_fx[node]
        try:
            for node in made:
                runner.env[node] = runner.run_node(node)
            result = copy.template.result
            if type(result) is Ref and result.where == "node":
                if made[result.index] in runner.by_fx:
                    runner.by_fx[copy.node] = runner.by_fx[made[result.index]]
                return runner.env[made[result.index]]
            if type(result) is Ref:
                return runner.env.get(copy.inputs[result.index])
            return result
        finally:
            for node in (*placeholders, *made):
                runner.env.pop(node, None)


def _below(path: str, base: str) -> bool:
    return path == base or path.startswith(base + ".")


def _new_value(watch: dict[str, Any], value: Any) -> tuple[str, Any]:
    """How a copy reproduces the value its block returned: ("new", layout) when it is a new tensor
    whose storage no other value of the block, no input and no parameter uses; else ("unkept", None)."""
    for k, given in enumerate(watch["inputs"]):
        if value is given:
            return "input", k
    if type(value) is not torch.Tensor or not value.is_meta or value.requires_grad or value.storage_offset() \
            or value.is_neg() or value.is_conj():
        return "unkept", None
    storage = _storage(value)
    if storage in watch["fixed"]:
        return "unkept", None
    # another tensor on its storage (a view) would stay one storage in the copy: only the very same
    # tensor object may appear again (an in-place ReLU returns its input)
    if any(_storage(t) == storage and t is not value for held in watch["held"] for t in tensors_in(held)):
        return "unkept", None
    layout = (tuple(value.shape), value.stride(), value.dtype)
    with torch._C._DisableTorchDispatch():
        fresh = torch.empty_strided(*layout[:2], dtype=layout[2], device=_META)
    if fresh.untyped_storage().nbytes() != value.untyped_storage().nbytes():
        return "unkept", None
    return "new", layout


def _plain_run(runner: Any) -> bool:
    """The conditions of :mod:`.memo`'s table: nothing but the recorder can see or change a call."""
    return (not runner.recorder.cross_check and not torch.is_grad_enabled()
            and torch._C._len_torch_dispatch_stack() == 1 and torch._C._len_torch_function_stack() == 0)

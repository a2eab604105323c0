"""Repeated blocks traced once, the meta run's half: a copied block's records from its template's.

:mod:`.blocks` puts into the graph, for a later instance of a block, a copy of the first instance's
nodes under the instance's own paths. Running the copy on meta tensors would give the first
instance's records again, with the new names: every ATen call, output layout and byte count of a
block follows from its nodes (the same) and from the layouts of what it is called with. So the meta
run (:class:`RecordBlocks`) watches the first instance run, keeps its records and how to reproduce
the values that leave it, and answers a copy called with inputs of the same layouts from those:
each record renamed as the usual path names it, the values used after the block new meta tensors
of the kept layouts, the nodes nobody reads after it no value at all.

What guards the equivalence (each check is below, where it is made):

- the same conditions as :mod:`.memo`'s table: meta tensors only, no grad mode, no other dispatch or
  function mode, never while cross-checking;
- the inputs' key: class, shape, strides, dtype, offset, flags and storage sharing of each tensor
  argument, type and value of each other one, and which of them have records;
- a value leaves the copy only as one of its inputs (an in-place result) or as a new tensor whose
  storage nothing else in the block, its inputs or its parameters uses; any other value that a
  later node reads, and the copy runs node by node the usual way;
- each first-instance record named its module call by the module's own path (no call through
  another path), in a scope below the block.
"""
from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import torch
import torch.fx as fx

from .blocks import Instance, Template
from .meta import module_tensors
from .records import Node

#: :meth:`RecordBlocks.copied`'s answer for a node to run the usual way
UNANSWERED = object()
#: an input no longer held by the run (nothing in the block reads it)
_MISSING = object()
#: the value of a copied node that nothing after the block reads: never computed
_UNCOMPUTED = object()
_META = torch.device("meta")
_PLAIN = frozenset({int, float, bool, str, type(None), torch.Size})


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


def _input_key(values: list[Any], has_record: list[bool], read: frozenset[int]) -> Hashable | None:
    """What a block's records depend on in its inputs (those the block reads: ``read``); ``None``
    when one of those is not a plain value nor a meta tensor."""
    storages: dict[int, int] = {}
    parts: list[Hashable] = []
    for k, (value, recorded) in enumerate(zip(values, has_record)):
        if k not in read:
            parts.append(("unread", recorded))
        elif value is _MISSING or value is _UNCOMPUTED:
            return None
        elif isinstance(value, torch.Tensor):
            if not value.is_meta:
                return None
            storage = storages.setdefault(_storage(value), len(storages))
            parts.append((type(value), tuple(value.shape), value.stride(), value.dtype, value.storage_offset(),
                          value.requires_grad, value.is_neg(), value.is_conj(), storage, recorded))
        elif type(value) in _PLAIN:
            parts.append((type(value), value, recorded))
        else:
            return None
    return tuple(parts)


def _arg_nodes(n: fx.Node) -> list[fx.Node]:
    """The nodes among ``n``'s arguments, in the order the runner visits them (with repeats)."""
    found: list[fx.Node] = []
    fx.node.map_arg((n.args, n.kwargs), found.append)
    return found


class _Kept:
    """What the meta run kept of a template's first instance."""

    def __init__(self) -> None:
        self.valid = True
        self.done = False
        self.key: Hashable | None = None
        self.records: list[Node | None] = []
        #: per node: ("new", layout) | ("input", k) | ("plain", value) | None (cannot be reproduced)
        self.values: list[tuple[str, Any] | None] = []
        #: per node: positions in _arg_nodes of the record's inputs
        self.inputs: list[tuple[int, ...]] = []
        #: per node, for function and method records: their scope below the block's path
        self.scopes: list[str] = []


class RecordBlocks:
    """The meta run's side of :mod:`.blocks`, for one trace (see the module's docstring)."""

    def __init__(self, instances: list[Instance], runner: Any) -> None:
        self._runner = runner
        self._kept: dict[int, _Kept] = {}
        #: node -> (instance, index) for the nodes of the copies
        self._copies: dict[fx.Node, tuple[Instance, int]] = {}
        #: node -> [(instance, index)] for the nodes of the first instances (nested blocks: several)
        self._firsts: dict[fx.Node, list[tuple[Instance, int]]] = {}
        self._copying: dict[int, bool] = {}  # id(instance) -> decided at its first node
        self._watch: dict[int, dict[str, Any]] = {}  # id(first instance) -> its inputs, storages seen
        for instance in instances:
            if instance.copy:
                for i, node in enumerate(instance.nodes):
                    self._copies[node] = (instance, i)
            else:
                self._kept[id(instance.template)] = _Kept()
                for i, node in enumerate(instance.nodes):
                    self._firsts.setdefault(node, []).append((instance, i))

    # -- copies ---------------------------------------------------------------------------------

    def copied(self, n: fx.Node) -> Any:
        """The value of ``n`` when it is a node of a copy answered from its template (its record
        added); :data:`UNANSWERED` when ``n`` is to run the usual way."""
        found = self._copies.get(n)
        if found is None:
            return UNANSWERED
        instance, i = found
        if i == 0:
            self._copying[id(instance)] = self._can_copy(instance)
        if not self._copying.get(id(instance)):
            return UNANSWERED
        kept = self._kept[id(instance.template)]
        self._emit(instance, kept, i, n)
        if i == len(instance.nodes) - 1:
            self._copying.pop(id(instance), None)
        if not _read_after(n, instance):
            return _UNCOMPUTED
        how, what = kept.values[i]  # type: ignore[misc]  # checked by _can_copy
        if how == "new":
            shape, stride, dtype = what
            with torch._C._DisableTorchDispatch():
                return torch.empty_strided(shape, stride, dtype=dtype, device=_META)
        if how == "input":
            return instance_inputs(self._runner, instance)[what]
        return what

    def _can_copy(self, instance: Instance) -> bool:
        runner = self._runner
        kept = self._kept.get(id(instance.template))
        if kept is None or not kept.valid or not kept.done or not _plain_run(runner):
            return False
        values = instance_inputs(runner, instance)
        recorded = [node in runner.by_fx for node in instance.inputs]
        if _input_key(values, recorded, instance.template.read) != kept.key:
            return False
        return all(kept.values[i] is not None for i, node in enumerate(instance.nodes) if _read_after(node, instance))

    def _emit(self, instance: Instance, kept: _Kept, i: int, n: fx.Node) -> None:
        template = kept.records[i]
        if template is None:
            return
        runner = self._runner
        call_index = 1
        if template.kind == "module":
            target = str(n.target)
            runner.calls[target] += 1
            call_index = runner.calls[target]
            scope = target.rpartition(".")[0]
            runner.named[target] += 1
            count = runner.named[target]
            name = runner._unique(target if count == 1 else f"{target}#{count}")
        elif template.kind == "attribute":
            target = str(n.target)
            scope = target.rpartition(".")[0]
            name = runner._unique(target)
        else:
            target = template.target
            scope = instance.path + kept.scopes[i]
            name = runner._unique(f"{scope}.{template.type}" if scope else template.type)
        arg_nodes = _arg_nodes(n)
        record = Node(
            name=name, kind=template.kind, target=target, scope=scope, type=template.type,
            inputs=tuple(runner.by_fx[arg_nodes[j]].name for j in kept.inputs[i]),
            input_metas=template.input_metas, outputs=template.outputs, ops=template.ops, attrs=template.attrs,
            source=n.meta.get("cnnshape_source"), new_bytes=template.new_bytes, call_index=call_index)
        runner.records.append(record)
        runner.by_fx[n] = record

    # -- first instances ------------------------------------------------------------------------

    def seen(self, n: fx.Node, value: Any) -> None:
        """After ``n`` ran (either way): what the first instances it belongs to keep of it."""
        for instance, i in self._firsts.get(n, ()):
            kept = self._kept[id(instance.template)]
            if kept.valid:
                try:
                    self._keep(instance, kept, i, n, value)
                except _Unkept:
                    kept.valid = False
            if i == len(instance.nodes) - 1:
                self._watch.pop(id(instance), None)
                kept.done = True

    def _keep(self, instance: Instance, kept: _Kept, i: int, n: fx.Node, value: Any) -> None:
        runner = self._runner
        if i == 0:
            values = instance_inputs(runner, instance)
            kept.key = _input_key(values, [node in runner.by_fx for node in instance.inputs], instance.template.read)
            if kept.key is None or not _plain_run(runner):
                raise _Unkept
            module = runner._submodules.get(instance.path)
            self._watch[id(instance)] = {
                "inputs": values,
                "fixed": {_storage(t) for t in [*values, *module_tensors(module)] if isinstance(t, torch.Tensor)},
                "seen": {},
                "held": [],
            }
        watch = self._watch[id(instance)]
        record = runner.by_fx.get(n)
        kept.records.append(record)
        kept.values.append(self._value(watch, kept, value))
        kept.scopes.append(_scope_below(record, instance.template, n) if record is not None else "")
        if record is None:
            kept.inputs.append(())
            return
        if record.kind == "module" and runner._called_path(n, runner._submodules.get(str(n.target))) != str(n.target):
            raise _Unkept  # called through another path: named by it
        positions: dict[str, int] = {}
        for j, node in enumerate(_arg_nodes(n)):
            if node in runner.by_fx:
                positions.setdefault(runner.by_fx[node].name, j)
        if any(name not in positions for name in record.inputs):
            raise _Unkept
        kept.inputs.append(tuple(positions[name] for name in record.inputs))

    def _value(self, watch: dict[str, Any], kept: _Kept, value: Any) -> tuple[str, Any] | None:
        if value is _UNCOMPUTED:
            return None
        for k, given in enumerate(watch["inputs"]):
            if value is given:
                return "input", k
        if type(value) in _PLAIN:
            return "plain", value
        if not isinstance(value, torch.Tensor):
            return None
        watch["held"].append(value)  # alive until the block ends: a freed storage's id is soon another's
        storage = _storage(value)
        seen: dict[int, int] = watch["seen"]
        if storage in seen:  # a second value on one storage: neither is new
            if seen[storage] >= 0:
                kept.values[seen[storage]] = None
            seen[storage] = -1
            return None
        if (type(value) is not torch.Tensor or not value.is_meta or value.requires_grad or value.storage_offset()
                or value.is_neg() or value.is_conj() or storage in watch["fixed"]):
            seen[storage] = -1
            return None
        layout = (tuple(value.shape), value.stride(), value.dtype)
        with torch._C._DisableTorchDispatch():
            fresh = torch.empty_strided(*layout[:2], dtype=layout[2], device=_META)
        if fresh.untyped_storage().nbytes() != value.untyped_storage().nbytes():
            seen[storage] = -1
            return None
        seen[storage] = len(kept.values)
        return "new", layout


class _Unkept(Exception):
    """The first instance cannot answer for its copies."""


def _scope_below(record: Node, template: Template, n: fx.Node) -> str:
    if record.kind in ("module", "attribute"):
        return ""
    if record.scope != template.path and not record.scope.startswith(template.path + "."):
        raise _Unkept
    return record.scope[len(template.path):]


def instance_inputs(runner: Any, instance: Instance) -> list[Any]:
    """The values of an instance's proxy arguments (``_MISSING`` for one no longer held)."""
    return [runner.env.get(node, _MISSING) for node in instance.inputs]


def _read_after(n: fx.Node, instance: Instance) -> bool:
    """Whether a node outside ``instance`` reads ``n``'s value."""
    return any(user not in instance.members for user in n.users)


def _plain_run(runner: Any) -> bool:
    """The conditions of :mod:`.memo`'s table: nothing but the recorder can see or change a call."""
    return (not runner.recorder.cross_check and not torch.is_grad_enabled()
            and torch._C._len_torch_dispatch_stack() == 1 and torch._C._len_torch_function_stack() == 0)


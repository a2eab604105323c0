"""What a block's symbolic trace depends on, as keys (the fx tracer's block copies, :mod:`.blocks`).

A block's state (:func:`module_key`: its class, its own attributes, its parameters' and buffers'
layouts, its submodules' states) and how it is called (:func:`call_key`) decide what fx puts into
the graph for it. Anything the keys cannot describe exactly raises :class:`NotKeyable`, and the
block is traced as usual.
"""
from __future__ import annotations

import types
from collections import Counter, OrderedDict
from collections.abc import Hashable
from typing import Any

import torch
import torch.fx as fx
from torch import nn

#: values keyed by type and value
_PLAIN = frozenset({int, float, bool, str, bytes, complex, type(None), torch.dtype, torch.device, torch.layout,
                    torch.memory_format, torch.Size})
#: values keyed by identity (the same object behaves the same)
_BY_IDENTITY = (type, types.FunctionType, types.BuiltinFunctionType)
#: entries of a module's instance dictionary that must be empty: what fx would run besides forward
_MUST_BE_EMPTY = frozenset({
    "_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs",
    "_forward_hooks_always_called", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks",
    "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
})


#: the entries every module's instance dictionary has (nn.Module.__init__'s)
_STANDARD = frozenset(vars(nn.Module()))


class NotKeyable(Exception):
    """Something the key cannot describe exactly: the block is traced as usual."""


def _value_key(value: Any) -> Hashable:
    kind = type(value)
    if kind in _PLAIN:
        return kind, value
    if kind is tuple or kind is list:
        for v in value:  # sizes, strides, paddings: plain items, the common case
            if type(v) not in _PLAIN:
                return kind, tuple(_value_key(v) for v in value)
        return kind, value if kind is tuple else tuple(value), tuple(map(type, value))
    if kind in (set, frozenset) or (isinstance(value, tuple) and hasattr(kind, "_fields")):
        return kind, tuple(_value_key(v) for v in value)
    if kind is dict or kind is OrderedDict:
        return kind, tuple((_value_key(k), _value_key(v)) for k, v in value.items())
    if isinstance(value, _BY_IDENTITY):
        return "object", value
    raise NotKeyable


def _tensors_key(table: dict[str, torch.Tensor | None] | None, shared: frozenset[int]) -> Hashable:
    if not table:
        return ()
    parts: list[Hashable] = []
    for name, t in table.items():
        if t is None:
            parts.append((name, None))
            continue
        if id(t) in shared:
            raise NotKeyable
        parts.append((name, type(t), t.shape, t.stride(), t.dtype, t.is_meta, t.requires_grad))
    return tuple(parts)


class Keys:
    """One trace's table of module states: each module's read once (when the first block above it is
    called), each distinct state numbered, so that comparing two blocks never walks their trees
    again. The modules are held, so that an id stays theirs while the table lives."""

    def __init__(self, shared: frozenset[int], states: dict[Hashable, int] | None = None) -> None:
        self.shared = shared  #: ids of the modules, parameters and buffers registered at more than one path
        self.states = {} if states is None else states
        self.modules: dict[int, tuple[nn.Module, int | None]] = {}

    def afresh(self) -> Keys:
        """A table that numbers states as this one does, but reads every module again."""
        return Keys(self.shared, self.states)


def module_key(module: nn.Module, keys: Keys) -> int:
    """Everything of ``module``'s state that its symbolic trace can depend on (see the module's
    docstring), as a number: two modules get the same number exactly when their states are alike.
    :class:`NotKeyable` when some of it cannot be described."""
    found = keys.modules.get(id(module))
    if found is not None:
        if found[1] is None:
            raise NotKeyable
        return found[1]
    keys.modules[id(module)] = (module, None)  # until its state is complete
    if id(module) in keys.shared:
        raise NotKeyable
    own = vars(module)
    if any(map(own.get, _MUST_BE_EMPTY)):
        raise NotKeyable
    children = own.get("_modules")
    non_persistent = own.get("_non_persistent_buffers_set")
    parts: list[Any] = [
        type(module), own.get("training"), own.get("_is_full_backward_hook"),
        tuple(sorted(non_persistent)) if non_persistent else (),
        tuple((k, None if m is None else module_key(m, keys)) for k, m in children.items()) if children else (),
        _tensors_key(own.get("_parameters"), keys.shared), _tensors_key(own.get("_buffers"), keys.shared),
    ]
    # the module's own attributes (hyper-parameters...), in the order they were set: a class sets
    # them in one order, and another order only makes two states differ that could have matched
    for name, value in own.items():
        if name not in _STANDARD:
            kind = type(value)
            parts.append((name, kind, value) if kind in _PLAIN else (name, _value_key(value)))
    number = keys.states.setdefault(tuple(parts), len(keys.states))
    keys.modules[id(module)] = (module, number)
    return number


def call_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Hashable, list[fx.Proxy]]:
    """The key of a call's arguments, and its proxies in order of first appearance (a proxy is
    keyed by that position: which arguments are the same value is part of the key)."""
    proxies: list[fx.Proxy] = []
    positions: dict[fx.Node, int] = {}

    def key(value: Any) -> Hashable:
        kind = type(value)
        if kind is fx.Proxy:
            node = value.node
            if node not in positions:
                positions[node] = len(proxies)
                proxies.append(value)
            return "proxy", positions[node]
        if kind in (tuple, list):
            return kind, tuple(key(v) for v in value)
        if kind is dict:
            return kind, tuple((k, key(v)) for k, v in value.items())
        return _value_key(value)

    return (key(args), key(kwargs)), proxies


def shared_objects(model: nn.Module) -> tuple[frozenset[int], frozenset[type], frozenset[int]]:
    """Ids of the modules, parameters and buffers of ``model`` registered at more than one path,
    the classes of more than one of its modules (a block that can repeat is of one of them), and
    the ids of all its parameters and buffers (what the recorder marks in each call: OpCall.state)."""
    seen: set[int] = set()
    shared: set[int] = set()
    tensors: set[int] = set()
    classes: Counter[type] = Counter()
    stack = [model]  # every path, as named_modules(remove_duplicate=False) walks them, without the names
    while stack:
        module = stack.pop()
        stack.extend(m for m in module._modules.values() if m is not None)
        classes[type(module)] += 1
        for obj in (module, *module._parameters.values(), *module._buffers.values()):
            if obj is None:
                continue
            if id(obj) in seen:
                shared.add(id(obj))
            seen.add(id(obj))
            if obj is not module:
                tensors.add(id(obj))
    return frozenset(shared), frozenset(kind for kind, count in classes.items() if count > 1), frozenset(tensors)

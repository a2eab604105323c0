"""What both tracers know about modules: which are leaves, TorchScript modules, the names and
hyper-parameters a node shows, the forward's input names."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .meta import ATTR_NAMES, input_count_error, input_names, module_attrs


def is_leaf(module: nn.Module, leaves: tuple[type, ...]) -> bool:
    """The fx leaf rule: classes from torch.nn (except Sequential and the containers), and ``leaves``;
    also TorchScript modules, whose forward runs as one compiled unit."""
    if leaves and isinstance(module, leaves):
        return True
    if isinstance(module, torch.jit.ScriptModule):
        return True
    from_torch = type(module).__module__.startswith(("torch.nn", "torch.ao.nn"))
    return from_torch and not isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict))


# -- TorchScript modules (shared with the fx tracer) -------------------------------------------------
# A ScriptModule (torch.jit.script, torch.jit.trace) runs its forward, and every submodule call in it,
# inside TorchScript: no Python hook or __torch_function__ sees what happens there, but each ATen op
# still reaches the dispatcher, so the recorder gets them all. Such a module is one node.

def _script_is_torch_layer(module: torch.jit.ScriptModule) -> bool:
    """A scripted torch.nn layer (not a container, not the user's own class)."""
    qualified = module._c._type().qualified_name()  # "__torch__.torch.nn.modules.linear.Linear"
    return qualified.startswith("__torch__.torch.nn.") and not any(True for _ in module.children())


def model_label(model: nn.Module) -> str:
    """The model's class name, for a TorchScript model the name of the class it was scripted from."""
    if isinstance(model, torch.jit.ScriptModule):
        return str(getattr(model, "original_name", type(model).__name__))
    return type(model).__name__


def module_type_name(module: nn.Module) -> str:
    """The class name a node shows: a scripted torch.nn layer by its own name ("Linear"), any other
    scripted module as "Name (TorchScript)", everything else by its class."""
    if not isinstance(module, torch.jit.ScriptModule):
        return type(module).__name__
    name = model_label(module)
    return name if _script_is_torch_layer(module) else f"{name} (TorchScript)"


def node_attrs(module: nn.Module) -> tuple[tuple[str, Any], ...]:
    """:func:`~.meta.module_attrs`, also for a scripted torch.nn layer, whose hyper-parameters are
    TorchScript attributes rather than Python ones."""
    if not isinstance(module, torch.jit.ScriptModule):
        return module_attrs(module)
    if not _script_is_torch_layer(module):
        return ()
    out: list[tuple[str, Any]] = []
    for name in ATTR_NAMES:
        if module._c.hasattr(name):
            value = getattr(module, name)
            if isinstance(value, list):
                value = tuple(value)
            if isinstance(value, (int, float, bool, str, tuple)) and all(
                    isinstance(v, (int, float, bool, str)) for v in (value if isinstance(value, tuple) else ())):
                out.append((name, value))
    if module._c.hasattr("bias") and (module._c.hasattr("out_features") or module._c.hasattr("out_channels")):
        out.append(("bias", module.bias is not None))
    return tuple(out)


def forward_input_names(model: nn.Module, given: int, keywords: tuple[str, ...] = ()) -> list[str]:
    """:func:`~.meta.input_names`, also for a TorchScript model, whose forward may carry no Python
    signature (torch.jit.trace): its TorchScript schema names the arguments."""
    if not isinstance(model, torch.jit.ScriptModule) or keywords:
        return input_names(model, given, keywords)
    forward: Any = model.forward  # a torch.ScriptMethod
    arguments = list(forward.schema.arguments)[1:]  # self first
    names = [a.name for a in arguments]
    required = sum(1 for a in arguments if not a.has_default_value())
    if not required <= given <= len(arguments):
        raise input_count_error(model, names, required, given)
    return names[:given]


def call_path(modules: dict[str, nn.Module], parent: str, module: nn.Module, registered: str) -> str:
    """The path a call of ``module`` went through: its attribute name under ``parent`` (the path of
    the module whose forward made the call) when that module holds it directly, else
    ``registered`` (its first path). A module registered under two containers and called through
    both is thus two paths (``a.0``, ``b.0``), and its costs go to the container that called it.
    ``modules``: every path of the model, duplicates included (``named_modules(remove_duplicate=False)``)."""
    if registered.rpartition(".")[0] == parent:
        return registered  # the common case
    holder = modules.get(parent)
    if holder is not None:
        for name, child in holder._modules.items():
            if child is module:
                return f"{parent}.{name}" if parent else name
    return registered


class Submodules:
    """``model.get_submodule(path)`` for many paths of one model, each module reached from its
    parent's (remembered) entry: one step per path, where ``get_submodule`` walks from the root
    (a deep network's paths are long). Below a TorchScript module, which refuses
    ``get_submodule``, by attribute; ``""`` is the model itself."""

    def __init__(self, model: nn.Module) -> None:
        self._found: dict[str, nn.Module] = {"": model}

    def get(self, path: str) -> nn.Module:
        found = self._found.get(path)
        if found is not None:
            return found
        owner, _, atom = path.rpartition(".")
        parent = self.get(owner)
        if isinstance(parent, torch.jit.ScriptModule):
            module = getattr(parent, atom)
        else:
            child = parent._modules.get(atom)
            module = child if child is not None else parent.get_submodule(atom)  # torch's error
        self._found[path] = module
        return module

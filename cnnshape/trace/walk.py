"""One walk of a model's module tree, shared by the stages that each walked it, and the train/eval
switch without torch's recursion.

``nn.Module.named_modules`` recurses through one generator per module: on a network of thousands
of blocks each walk costs about ten milliseconds, and an analysis walked the tree several times
(the meta copies, the modes saved, ``train()``, the graph's class names, the parameter totals).
:func:`module_paths` is torch's walk, made once and kept on the graph; :func:`unique_modules`
derives ``model.modules()`` from it; :func:`set_training` and :func:`set_modes` switch modes by
writing each module's flag, where ``train()`` would call back into Python per module. A model whose
classes change how torch walks or switches them gets torch's own calls.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

#: the methods whose behaviour :func:`unique_modules` and :func:`set_training` reproduce
_WALK = ("named_modules", "modules", "named_children", "children", "train")


def plain_walk(types: Iterable[type]) -> bool:
    """Whether every class in ``types`` walks and switches mode as ``nn.Module`` does: no override
    of those methods, of the identity a walk deduplicates by, and no TorchScript module (whose
    submodules live in TorchScript)."""
    return all(
        not issubclass(t, torch.jit.ScriptModule)
        and t.__hash__ is object.__hash__ and t.__eq__ is object.__eq__
        and all(getattr(t, name) is getattr(nn.Module, name) for name in _WALK)
        for t in set(types)
    )


def module_paths(model: nn.Module) -> dict[str, nn.Module]:
    """``dict(model.named_modules(remove_duplicate=False))``: every qualified path (a module
    registered twice has two) -> the module, in torch's order."""
    return dict(model.named_modules(remove_duplicate=False))


def unique_modules(paths: dict[str, nn.Module], model: nn.Module) -> list[nn.Module]:
    """``list(model.modules())`` from ``module_paths(model)``: each module once, where its first
    path puts it (torch skips a repeat and everything below it, which its first visit reached)."""
    if not plain_walk(type(m) for m in paths.values()):
        return list(model.modules())
    return list({id(m): m for m in paths.values()}.values())


def _plain_flag(t: type) -> bool:
    """Whether setting ``training`` on an instance of ``t`` only stores it in the instance's
    ``__dict__``: ``nn.Module.__setattr__`` does that for a bool (it is no parameter, buffer or
    module), unless the class defines its own ``__setattr__`` or a ``training`` attribute."""
    return t.__setattr__ is nn.Module.__setattr__ and not hasattr(t, "training")


def set_modes(modes: Iterable[tuple[nn.Module, bool]]) -> None:
    """``module.training = mode`` for each pair, written straight into the instance (an attribute
    set through ``nn.Module.__setattr__`` takes microseconds, thousands of times per analysis)
    where that is all the assignment would do, and skipped where the flag already has the value."""
    plain: dict[type, bool] = {}
    for m, mode in modes:
        t = type(m)
        direct = plain.get(t)
        if direct is None:
            direct = plain[t] = _plain_flag(t)
        if not direct:
            m.training = mode
        elif m.__dict__.get("training") is not mode:
            m.__dict__["training"] = mode


def set_training(model: nn.Module, modules: list[nn.Module], mode: bool) -> None:
    """``model.train(mode)``, given ``modules``, every module the model holds (``model.modules()``):
    ``nn.Module.train`` sets ``training`` on the module and recurses into its children, which
    reaches exactly those; a class of its own ``train`` gets torch's call."""
    if plain_walk(type(m) for m in modules):
        set_modes((m, mode) for m in modules)
    else:
        model.train(mode)

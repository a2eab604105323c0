"""Parameters: each node's own, shared ones marked, and the model totals (shared counted once)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..frozen import fast_init
from ..graph import ModelGraph
from ..trace.modules import Submodules
from ..trace.records import Node
from ..trace.walk import unique_modules


@fast_init
@dataclass(frozen=True)
class NodeParams:
    #: the layer's own parameter count, bias included (also when shared)
    params: int
    #: how many of them are counted for the first time at this node (0 for a repeat)
    new_params: int
    trainable: int
    #: name of the node that first counted the shared parameters, when there are any
    shared_with: str | None


@dataclass(frozen=True)
class ParamTotals:
    params: int
    trainable_params: int
    non_trainable_params: int
    buffers: int
    param_bytes: int
    buffer_bytes: int
    #: parameters of the model that no traced node uses
    unused_params: int


def _node_tensors(modules: _Modules, node: Node) -> list[torch.Tensor]:
    if node.kind == "module":
        return _parameters(modules.get(node.target))
    if node.kind == "attribute":
        owner, _, attr = node.target.rpartition(".")
        value = getattr(modules.get(owner), attr)
        return [value] if isinstance(value, nn.Parameter) else []
    return []


class _Modules:
    """The graph's module at a path: read from the table of its one walk (:attr:`ModelGraph.paths`),
    or reached from the root where the table lacks the path (a module below a TorchScript one)."""

    def __init__(self, graph: ModelGraph) -> None:
        self._paths = graph.paths
        self._walk = Submodules(graph.model)

    def get(self, path: str) -> nn.Module:
        found = self._paths.get(path)
        return found if found is not None else self._walk.get(path)


def _parameters(module: nn.Module) -> list[torch.Tensor]:
    """``list(module.parameters())``; for a module without submodules (every torch.nn layer) read
    from its own table, without torch's recursive generators, each parameter once as there."""
    if module._modules or isinstance(module, torch.jit.ScriptModule):
        return list(module.parameters())
    return list({id(p): p for p in module._parameters.values() if p is not None}.values())


#: the methods through which ``model.parameters()`` and ``model.buffers()`` reach the tables
_WALK = ("parameters", "buffers", "named_parameters", "named_buffers", "_named_members", "named_modules", "modules")


def _members(model: nn.Module, modules: list[nn.Module] | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``list(model.parameters()), list(model.buffers())``, deduplicated as torch does, in one walk
    of the modules instead of two (torch walks the whole tree once per call: a deep model has tens of
    thousands of modules); ``modules``: ``list(model.modules())`` where the caller has it. Only where
    every module uses ``nn.Module``'s own walk: a model that overrides one of those methods, or holds
    a TorchScript module, gets torch's calls."""
    modules = list(model.modules()) if modules is None else modules
    types = {type(m) for m in modules}
    plain = all(getattr(t, name) is getattr(nn.Module, name) for t in types for name in _WALK)
    if not plain or any(issubclass(t, torch.jit.ScriptModule) for t in types):
        return list(model.parameters()), list(model.buffers())
    params: dict[int, torch.Tensor] = {}
    buffers: dict[int, torch.Tensor] = {}
    for m in modules:
        for table, own in ((params, m._parameters), (buffers, m._buffers)):
            for value in own.values():
                if value is not None and id(value) not in table:  # torch: skip None, each tensor once
                    table[id(value)] = value
    return list(params.values()), list(buffers.values())


def submodule(model: nn.Module, path: str) -> nn.Module:
    """``model.get_submodule(path)``, also below a TorchScript module (which refuses
    ``get_submodule``); ``""`` is the model itself (a TorchScript model is one node)."""
    module = model
    for part in path.split(".") if path else ():
        module = module.get_submodule(part) if not isinstance(module, torch.jit.ScriptModule) else getattr(module, part)
    return module


def analyse_params(graph: ModelGraph) -> tuple[dict[str, NodeParams], ParamTotals]:
    first_owner: dict[int, str] = {}
    per_node: dict[str, NodeParams] = {}
    modules = _Modules(graph)
    # (numel, requires_grad) of each tensor, read from torch once: the totals read every
    # parameter again, and each read is a call into torch
    sizes: dict[int, tuple[int, bool]] = {}
    for node in graph.nodes:
        if node.kind != "module" and node.kind != "attribute":
            continue  # _node_tensors has none for them
        tensors = _node_tensors(modules, node)
        if not tensors:
            continue
        shared_with = None
        count = new_count = trainable = 0
        for p in tensors:
            size = sizes.get(id(p))
            if size is None:
                size = sizes[id(p)] = (p.numel(), p.requires_grad)
            n = size[0]
            count += n
            trainable += n if size[1] else 0
            owner = first_owner.get(id(p))
            if owner is None:
                first_owner[id(p)] = node.name
                new_count += n
            elif shared_with is None:
                shared_with = owner
        per_node[node.name] = NodeParams(params=count, new_params=new_count, trainable=trainable,
                                         shared_with=shared_with)
    params, buffers = _members(graph.model, unique_modules(graph.paths, graph.model) if graph.paths else None)
    numels = [sizes[id(p)][0] if id(p) in sizes else p.numel() for p in params]
    total = sum(numels)
    buffer_numels = [b.numel() for b in buffers]
    trainable = sum(n for n, p in zip(numels, params) if p.requires_grad)
    used = sum(n for n, p in zip(numels, params) if id(p) in first_owner)
    totals = ParamTotals(
        params=total,
        trainable_params=trainable,
        non_trainable_params=total - trainable,
        buffers=sum(buffer_numels),
        param_bytes=sum(n * p.element_size() for n, p in zip(numels, params)),
        buffer_bytes=sum(n * b.element_size() for n, b in zip(buffer_numels, buffers)),
        unused_params=total - used,
    )
    return per_node, totals


def _pruned_count(method: object, mask: torch.Tensor) -> int | None:
    """How many entries ``method`` (one torch.nn.utils.prune method, its hook on the module) set
    to zero, read from ``mask``'s values, or on meta (no values) from the method's ``amount`` where
    that fixes the count; None when it does not (a custom mask, iterative pruning on meta)."""
    if mask.device.type != "meta":
        return int(mask.numel() - torch.count_nonzero(mask))
    from torch.nn.utils import prune

    amount = getattr(method, "amount", None)
    if amount is None:
        return None

    def to_prune(size: int) -> int:  # torch's prune._compute_nparams_toprune: an int, or a fraction rounded
        return amount if isinstance(amount, int) else round(amount * size)

    if isinstance(method, (prune.L1Unstructured, prune.RandomUnstructured)):
        return to_prune(mask.numel())  # the k smallest (or k random) of a mask of ones
    if isinstance(method, (prune.LnStructured, prune.RandomStructured)):
        dim = method.dim % mask.dim()  # whole slices along dim
        return to_prune(mask.shape[dim]) * (mask.numel() // mask.shape[dim])
    return None


def pruning_note(model: nn.Module) -> str | None:
    """A note for a model pruned with ``torch.nn.utils.prune``, None for any other.

    Pruning keeps the dense tensor as the parameter ``<name>_orig`` and the mask as the buffer
    ``<name>_mask``; ``<name>`` becomes a plain attribute, their product, recomputed before each
    forward. cnnshape counts parameters as ``sum(p.numel() for p in model.parameters())`` does (the
    ``_orig`` tensors, masked entries included) and MACs for the dense computation that runs. The
    note says how many entries the masks zero: counted from the masks' values, or on the meta
    device (no values) from the pruning amount where that fixes it (L1/random, unstructured or
    structured, applied once)."""
    from torch.nn.utils import prune

    names: list[str] = []
    total = 0
    masked: int | None = 0
    for path, module in model.named_modules():
        for hook in module._forward_pre_hooks.values():
            if not isinstance(hook, prune.BasePruningMethod):
                continue
            tensor = hook._tensor_name
            mask = module._buffers.get(f"{tensor}_mask")
            if mask is None:
                continue
            names.append(f"{path}.{tensor}" if path else tensor)
            total += mask.numel()
            count = _pruned_count(hook, mask)
            masked = None if masked is None or count is None else masked + count
    if not names:
        return None
    listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    zeros = (f"{masked:,} of their {total:,} weights are masked to zero" if masked is not None else
             f"which of their {total:,} weights are masked is not known on the meta device (the masks have "
             f"no values)")
    kept = ", ".join(dict.fromkeys(f"{n.rpartition('.')[2]}_orig" for n in names))
    return (f"pruned with torch.nn.utils.prune ({listed}): parameters are counted as torch counts them, "
            f"the dense {kept} of each pruned tensor (its mask is a buffer), and MACs for the dense "
            f"computation; {zeros}")

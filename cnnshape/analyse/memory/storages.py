"""Storages seen at the dispatcher: which ATen call read and wrote which (for the liveness walk),
and which are alive at each moment (for autograd's backward on meta, and for the measured
reference on a real device). A storage is told by its identity (``_cdata``) and its lifetime by a
finalizer on it: nothing here keeps a tensor alive."""
from __future__ import annotations

import contextlib
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ...trace.meta import OpRecorder, op_name, tensors_in
from .liveness import RELEASE, RETURN, Access, Written


def storage_key(t: torch.Tensor) -> int:
    return int(t.untyped_storage()._cdata)


def storage_bytes(tensors: Iterable[torch.Tensor]) -> dict[int, int]:
    """Identity -> bytes of the storages behind ``tensors``, each once."""
    return {storage_key(t): t.untyped_storage().nbytes() for t in tensors}


def _short(func: Any) -> str:
    return "release" if func is None else op_name(func).removeprefix("aten.").rstrip("_") or "op"


class Layers:
    """The layer each ATen call runs in, named as the report's rows are: a leaf module by its path
    (``layer1.0.conv1``, ``relu#2`` for a second call), an op in a container's own forward by the
    container's path and the op (``layer1.0.add``)."""

    def __init__(self, model: nn.Module) -> None:
        self.names: dict[int, str] = {}
        for name, m in model.named_modules(remove_duplicate=False):
            self.names.setdefault(id(m), name)
        self.stack: list[tuple[str, bool]] = []
        self.calls: Counter[str] = Counter()
        #: called at a module's return with its label and the storages of its tensor arguments
        self.on_return: Callable[[str, tuple[tuple[int, int], ...]], None] | None = None

    def label(self, func: Any) -> str:
        if self.stack and self.stack[-1][1]:
            return self.stack[-1][0]
        scope = self.stack[-1][0] if self.stack else ""
        return f"{scope}.{_short(func)}" if scope else _short(func)

    @contextlib.contextmanager
    def hooked(self) -> Iterator[None]:
        def pre(module: nn.Module, _args: Any) -> None:
            leaf = not module._modules
            path = self.names.get(id(module), type(module).__name__)
            if not path and leaf:  # the model itself is one layer
                path = type(module).__name__
            self.calls[path] += 1
            k = self.calls[path]
            self.stack.append((path if k == 1 or not leaf else f"{path}#{k}", leaf))

        def post(module: nn.Module, args: Any, _out: Any) -> None:
            if self.stack:
                label = self.stack.pop()[0]
                if self.on_return is not None:
                    self.on_return(label, tuple((storage_key(t), t.untyped_storage().nbytes())
                                                for t in tensors_in(args)))

        handles = [nn.modules.module.register_module_forward_pre_hook(pre),
                   nn.modules.module.register_module_forward_hook(post)]
        try:
            yield
        finally:
            for h in handles:
                h.remove()


class StorageRecorder(OpRecorder):
    """Runs every ATen call on meta tensors as the tracers do, and keeps what it read and wrote;
    ``plain``: by torch's kernels only (under a fake-tensor mode, which cnnshape's kernels don't serve)."""

    def __init__(self, layers: Layers, plain: bool = False) -> None:
        super().__init__()
        self.layers = layers
        self.plain = plain
        self.accesses: list[Access] = []
        layers.on_return = self._returned
        self.closed = False
        #: storages of leaf tensors that require grad (parameters): autocast caches their casts
        self.cacheable: set[int] = set()
        #: the casts autocast keeps until its region ends
        self.cached: set[int] = set()

    def _returned(self, label: str, reads: tuple[tuple[int, int], ...]) -> None:
        """A module call's arguments are held by its caller and its own frame until it returns,
        however early their last ATen reader ran: a read when it returns."""
        if reads and not self.closed:
            self.accesses.append(Access(label, RETURN, reads, ()))

    def _released(self, key: int, nbytes: int) -> None:
        """The forward's Python code dropped the last tensor on a storage: it is alive until
        here, however early its last reader ran (``x = relu(conv(x))`` holds the old ``x``
        until ``relu`` returns)."""
        if not self.closed:
            self.accesses.append(Access(self.layers.label(None), RELEASE, ((key, nbytes),), ()))

    def close(self) -> list[Access]:
        """The accesses recorded; later releases (the outputs, when the caller drops them) are not."""
        self.closed = True
        return self.accesses

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if self.plain:
            out = func(*args, **(kwargs or {}))
        else:
            out = super().__torch_dispatch__(func, types, args, kwargs)
            self.calls.clear()  # the OpCall records are not needed here
        reads = tuple((storage_key(t), t.untyped_storage().nbytes()) for t in tensors_in((args, kwargs or {})))
        writes = tuple(Written(storage_key(t), t.untyped_storage().nbytes(), tuple(t.shape),
                               str(t.dtype).removeprefix("torch."))
                       for t in tensors_in(out))
        self.accesses.append(Access(self.layers.label(func), op_name(func), reads, writes))
        read = {sid for sid, _ in reads}
        for t in tensors_in(out):
            storage = t.untyped_storage()
            if int(storage._cdata) not in read:  # a new storage: note when Python frees it
                read.add(int(storage._cdata))
                weakref.finalize(storage, self._released, int(storage._cdata), storage.nbytes())
        if self.cacheable and reads and reads[0][0] in self.cacheable and op_name(func) == "aten._to_copy":
            self.cached.update(w.storage for w in writes)
        return out


class LiveStorages(TorchDispatchMode):
    """The bytes of the storages alive, from the ATen call that makes each until no tensor uses
    it (a finalizer on the storage tells: torch keeps a storage's Python object as long as the
    storage lives), and their peak. Storages made before (weights, inputs) are counted from
    :meth:`hold`. The peak is taken when each call has made its outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def _add(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = int(storage._cdata)
        if key in self.live:
            return
        self.live[key] = storage.nbytes()
        self.current += self.live[key]
        weakref.finalize(storage, self._free, key)

    def hold(self, tensors: Iterable[torch.Tensor]) -> None:
        """Count these tensors' storages as alive (those already counted once)."""
        for t in tensors:
            self._add(t)
        self.peak = max(self.peak, self.current)

    def now(self) -> int:
        """Bytes alive now."""
        return self.current

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in tensors_in(out):
            self._add(t)
        self.peak = max(self.peak, self.current)
        return out

"""The inference peak by tensor liveness, from the storages each ATen call read and wrote.

A storage is allocated by the call whose output it is, unless that call also read it (a view or
an in-place op: the base's storage is shared); it is freed after the last call that reads it.
Storages no call made (parameters, buffers, inputs, constants) are resident throughout; the
storages of the model's outputs live to the end. A module's tensor arguments live at least until
the module returns (its caller and its own frame hold them, as ``DenseLayer.forward(x)`` holds
``x`` after its first layer read it): the recorder adds a read there (``RETURN``); and so is
every storage until the forward's Python code drops it (``x = relu(conv(x))`` holds the old
``x`` until ``relu`` returns), which the recorder sees on meta (``RELEASE``).
Torch-free: the walk reads plain records.
"""
from __future__ import annotations

from dataclasses import dataclass

from .records import InferenceMemory, LayerMemory, LiveTensor

#: the op of an :class:`Access` that marks a module call's return (its arguments' last use)
RETURN = "return"
#: the op of an :class:`Access` that marks where the forward's Python code dropped a storage
RELEASE = "release"


@dataclass(frozen=True)
class Written:
    """One output of a call: its storage's identity and size, and the first shape seen in it."""

    storage: int
    nbytes: int
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class Access:
    """One ATen call: where it ran (the innermost module path), which storages it read and wrote."""

    layer: str
    op: str
    reads: tuple[tuple[int, int], ...]  #: (storage identity, bytes) of every tensor argument
    writes: tuple[Written, ...]


@dataclass
class _Life:
    born: int  # index of the call that made it; -1: resident
    last: int  # index of its last reader
    nbytes: int
    made_by: LiveTensor | None


def _lives(accesses: list[Access], resident: dict[int, int], outputs: set[int]) -> list[_Life]:
    end = len(accesses)
    current: dict[int, _Life] = {}  # storage identity -> its allocation now (identities are reused)
    lives: list[_Life] = []
    for sid, nbytes in resident.items():
        current[sid] = _Life(-1, end, nbytes, None)
        lives.append(current[sid])
    for i, a in enumerate(accesses):
        read = set()
        for sid, nbytes in a.reads:
            read.add(sid)
            if sid not in current:  # a tensor no call made: a constant the forward holds
                current[sid] = _Life(-1, end, nbytes, None)
                lives.append(current[sid])
            current[sid].last = max(current[sid].last, i)
        for w in a.writes:
            if w.storage in read:
                continue  # a view of, or an in-place write to, a storage it read
            life = _Life(i, i, w.nbytes, LiveTensor(a.layer, a.op, w.shape, w.dtype, w.nbytes))
            current[w.storage] = life
            lives.append(life)
            read.add(w.storage)  # a call returning the same new storage twice made it once
    for sid in outputs:
        if sid in current:
            current[sid].last = end
    return lives


def inference_peak(accesses: list[Access], resident: dict[int, int], outputs: set[int],
                   weight_bytes: int, input_bytes: int) -> InferenceMemory:
    """Walk ``accesses`` in order; ``resident``: storages alive throughout (identity -> bytes),
    ``outputs``: the storages of the forward's outputs."""
    lives = _lives(accesses, resident, outputs)
    n = len(accesses)
    born = [0] * (n + 1)
    freed_after = [0] * (n + 1)
    base = 0
    for life in lives:
        if life.born < 0:
            base += life.nbytes
        else:
            born[life.born] += life.nbytes
            freed_after[min(life.last, n)] += life.nbytes
    live_during, live_after = [], []
    live = base
    for i in range(n):
        live += born[i]
        live_during.append(live)  # the call's inputs are still there when its outputs are made
        live -= freed_after[i]
        live_after.append(live)
    at = max(range(n), key=live_during.__getitem__) if n else -1
    peak = live_during[at] if n else base
    alive = sorted((life.made_by for life in lives
                    if life.made_by is not None and life.born <= at <= life.last),
                   key=lambda t: -t.bytes)
    layers: list[LayerMemory] = []
    for i, a in enumerate(accesses):
        if a.op in (RETURN, RELEASE):  # frees only: what is alive after the row that ran last
            if layers:
                layers[-1] = LayerMemory(layers[-1].name, live_after[i], layers[-1].peak_bytes)
            continue
        if layers and layers[-1].name == a.layer and accesses[i - 1].layer == a.layer:
            last = layers[-1]
            layers[-1] = LayerMemory(a.layer, live_after[i], max(last.peak_bytes, live_during[i]))
        else:
            layers.append(LayerMemory(a.layer, live_after[i], live_during[i]))
    return InferenceMemory(
        peak_bytes=peak, peak_at=accesses[at].layer if n else "", weight_bytes=weight_bytes,
        input_bytes=input_bytes, alive=tuple(alive), layers=tuple(layers),
    )

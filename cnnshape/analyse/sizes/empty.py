"""When an empty tensor (a 0-sized dim) rejects a size, for both engines and the re-traces.

torch computes on empty tensors without complaint on meta (a pooling window larger than its input
gives a 0-wide map, an adaptive pool then makes it 1x1 again), where a real device would raise or
return nothing meaningful. A size is therefore rejected when, besides the model raising,

- an op computes an empty result from non-empty tensors (the map vanished), except a *selection*:
  slicing or splitting that selects nothing is ordinary Python (``mask[0:-7] = count`` on a 7-wide
  map, as Swin's attention mask does at some sizes, is empty and harmless), and so is expanding a
  value to such an empty slice;
- an op computes a non-empty result from an empty tensor (an adaptive pool or a mean over nothing),
  except a concatenation (the empty part adds nothing), an in-place write (``fill_`` into an empty
  slice) and a ``new_*`` factory (which reads only the dtype);
- an output of the model is empty.

Only an op's main (first) result counts, and only for ops that take tensors: batch norm's empty
``save_mean``/``save_invstd`` side results in eval mode are bookkeeping. Works on int sizes and on
torch's symbolic sizes alike (``d < 1`` then records a guard).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

#: ops that select part of a tensor, or broadcast one to a given shape: selecting nothing is not an
#: error (``mask[0:-7] = count`` expands the count to the empty slice)
SELECTIONS = frozenset({
    "slice", "select", "narrow", "split", "split_with_sizes", "unsafe_split", "unsafe_split_with_sizes",
    "tensor_split", "unbind", "chunk", "index", "index_select", "masked_select", "take", "as_strided", "diagonal",
    "expand", "expand_as", "broadcast_to",
})
#: ops that may join an empty tensor into a non-empty one
JOINS = frozenset({"cat", "concat", "concatenate", "stack", "hstack", "vstack"})

Shape = Sequence[Any]


def is_empty(shape: Shape) -> bool:
    return any(d < 1 for d in shape)


def empty_rejects(op: str, inputs: Sequence[Shape], result: Shape | None,
                  empty: Callable[[Shape], bool] = is_empty) -> str | None:
    """Why the call ``op`` (``"aten.slice"`` or ``"slice"``) of tensors shaped ``inputs`` with
    main result ``result`` rejects the size, or None."""
    if not inputs or result is None:
        return None
    name = op.rsplit(".", 1)[-1]
    if empty(result):
        if name in SELECTIONS or any(empty(s) for s in inputs):
            return None
        return f"{op} computes an empty tensor ({_shape(result)}) from non-empty ones"
    if name in JOINS or name.endswith("_") or name.startswith("new_"):
        return None
    source = next((s for s in inputs if empty(s)), None)
    if source is not None:
        return f"{op} computes a {_shape(result)} tensor from an empty one ({_shape(source)})"
    return None


def _shape(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)

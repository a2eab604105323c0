"""The symbolic engine's answer for one axis, as the same record the layer arithmetic gives:
the accepted sizes fitted to the same rule records, the output dims as formulas, and which engine
answered (:attr:`AxisSizes.engine`)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .records import MAX_UP_TO, MIN_UP_TO, SYMBOLIC, AxisSizes, SizeFormula, fit_rule
from .symbolic import SymbolicFailure, explore, output_formulas

if TYPE_CHECKING:
    from ...graph import ModelGraph


def symbolic_axis(graph: ModelGraph, axis: int, symbol: str, arithmetic: str) -> AxisSizes:
    """``axis`` by torch's symbolic shapes, for sizes 1..max(512, 2 × given); ``arithmetic`` says
    why the layer arithmetic did not answer. Raises :class:`SymbolicFailure` when torch cannot."""
    inputs = [n.outputs[0][1] for n in graph.nodes if n.kind == "input" and n.outputs]
    given = inputs[0].shape[axis]
    up_to = min(MAX_UP_TO, max(MIN_UP_TO, 2 * given))
    found = explore(graph.model, inputs, axis, given, up_to)
    if found.verdict[given].error is not None:
        raise SymbolicFailure(f"it says the traced size {given} fails ({found.verdict[given].error})")
    ok = [s for s in found.accepted() if s <= up_to]
    accepted = fit_rule(ok, up_to, 1)
    output = next((n for n in graph.nodes if n.kind == "output"), None)
    outputs = tuple(SizeFormula(output.name, key, dim, text) for key, dim, text in output_formulas(found, given, symbol)
                    ) if output is not None else ()
    covered = len(found.verdict) - found.forwards
    traces = f"{len(found.paths)} symbolic trace{'s' if len(found.paths) > 1 else ''}"
    note = (f"torch's symbolic shapes ({traces} covered {covered} of the sizes 1..{up_to}, a meta forward pass "
            f"each the other {found.forwards})")
    return AxisSizes(axis, symbol, given, ok[0], accepted, None, outputs, (), engine=SYMBOLIC, engine_note=note,
                     arithmetic_reason=arithmetic)

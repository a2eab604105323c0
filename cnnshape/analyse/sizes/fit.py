"""Which sizes are accepted: the expressions evaluated at every size up to a bound, an arithmetic
rule fitted and verified against all of them, and (given a re-tracer) checked by re-traces."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ...errors import CnnshapeError, ConfigError, InternalError
from .expr import Expr, Fixed, evaluate
from .flow import Flow, build_flow
from .records import Accepted, AxisSizes, SizeReport, axis_symbol, default_axes
from .text import Formulas, formulas

if TYPE_CHECKING:
    from ...graph import ModelGraph

#: sizes are always evaluated at least up to this bound
MIN_UP_TO = 512
#: and never beyond this one (a rule whose period needs more is reported as a set); a traced size
#: above it is checked on its own against the rule fitted below it
MAX_UP_TO = 1 << 14


def _fit(accepted: list[int], up_to: int, period: int) -> Accepted:
    lo = accepted[0]
    step = math.gcd(*(s - lo for s in accepted[1:])) if len(accepted) > 1 else 1
    step = step or 1
    hi = None if accepted[-1] > up_to - step - period else accepted[-1]
    rule = Accepted("arithmetic", minimum=lo, step=step, offset=lo % step, maximum=hi)
    if [s for s in range(1, up_to + 1) if rule.contains(s)] == accepted:
        return rule
    return Accepted("set", sizes=tuple(accepted), up_to=up_to)


#: ``retrace(axis, size)``: the model traced again with the first input's ``axis`` at ``size`` (the
#: other dims as traced), or the error message when the model rejects that size
Retrace = Callable[[int, int], "ModelGraph | str"]

PYTHON_VALUES = ("cannot characterise: the model's sizes depend on the input through Python values "
                 "(e.g. x.shape used in view/interpolate/control flow)")


def analyse_axis(graph: ModelGraph, axis: int, layers: bool = False, retrace: Retrace | None = None,
                 probes: int = 3) -> AxisSizes:
    """``retrace`` (when given) checks the rule and formulas derived from this one trace against
    up to ``probes`` other traces; on any disagreement the axis is reported as not characterised.
    A traced size above :data:`MAX_UP_TO` is evaluated on its own: the rule fitted to the sizes up
    to the bound stands when it accepts that size, else the axis is not characterised."""
    first = next(n for n in graph.nodes if n.kind == "input")
    shape = first.outputs[0][1].shape
    symbol, given = axis_symbol(axis, len(shape)), shape[axis]
    flow = build_flow(graph, axis)
    if flow.reason:
        return AxisSizes(axis, symbol, given, None, None,
                         f"cannot characterise the accepted sizes: {flow.reason}", (), ())
    exprs = flow.exprs
    period = math.lcm(*(e.period[0] for e in exprs))
    has_bound = any(isinstance(e, Fixed) for e in exprs)
    up_to = min(MAX_UP_TO, max(MIN_UP_TO, 2 * given) + 4 * period)
    while True:
        table = {s: evaluate(exprs, s) for s in range(1, up_to + 1)}
        ok = [s for s, vals in table.items() if all(v is not None for v in vals)]
        if not (has_bound and ok and ok[-1] > up_to - 2 * period and up_to < MAX_UP_TO):
            break
        up_to = min(MAX_UP_TO, 4 * up_to)
    _check_traced(graph, flow, table[given] if given <= up_to else evaluate(exprs, given), given, symbol)
    accepted = _fit(ok, up_to, period) if ok else None
    if given > up_to and (accepted is None or not accepted.contains(given)):
        return AxisSizes(axis, symbol, given, None, None, _above_the_bound(given, up_to, accepted), (), ())
    if accepted is None:  # the traced size is accepted, so this means the rules are wrong
        raise InternalError(f"{symbol}: no size accepted although {given} traced")
    if retrace is not None:
        differs = _validate(graph, flow, table, ok, given, axis, retrace, probes)
        if differs:
            return AxisSizes(axis, symbol, given, None, None, f"{PYTHON_VALUES} — {differs}", (), ())
    texts = Formulas(ok, table, symbol)
    output = next((n for n in graph.nodes if n.kind == "output"), None)
    outputs = tuple(formulas(output.name, flow.shapes.get(output.name, []), texts)) if output else ()
    per_layer = tuple(f for n in graph.nodes if n.kind not in ("input", "output")
                      for f in formulas(n.name, flow.shapes.get(n.name, []), texts)) if layers else ()
    return AxisSizes(axis, symbol, given, ok[0], accepted, None, outputs, per_layer)


def _above_the_bound(given: int, up_to: int, accepted: Accepted | None) -> str:
    """Why a traced size above the evaluated range gets no rule: no size up to the bound is
    accepted, or the rule fitted to them rejects it (its period is too long to fit below the bound)."""
    found = (f"the rule found up to {up_to:,} ({accepted.words()}) does not accept it" if accepted is not None
             else f"no size up to {up_to:,} is accepted")
    return (f"cannot characterise the accepted sizes: sizes are evaluated up to {up_to:,} and the given "
            f"{given:,} is above; {found}")


def _probe_sizes(ok: list[int], up_to: int, given: int) -> list[int]:
    """The sizes to re-trace, most telling first: twice the given size when the rule rejects it
    (else another rejected size), the smallest accepted size, the accepted size nearest 2×given."""
    accepted = set(ok)
    rejected = [s for s in range(ok[0] + 1, up_to + 1) if s not in accepted] or list(range(ok[0] - 1, 0, -1))
    reject = 2 * given if 2 * given not in accepted else rejected[0] if rejected else None
    near = min((s for s in ok if s != given), key=lambda s: (abs(s - 2 * given), s), default=None)
    chosen = [s for s in (reject, ok[0], near) if s is not None and s != given and s <= up_to]
    return list(dict.fromkeys(chosen))


def _validate(graph: ModelGraph, flow: Flow, table: dict[int, list[int | None]], ok: list[int], given: int,
              axis: int, retrace: Retrace, probes: int) -> str | None:
    """Re-traces at a few sizes; says where the model differs from what the expressions predict
    (sizes reaching layers as Python values look constant in one trace), None when all agree."""
    up_to = max(table)
    for s in _probe_sizes(ok, up_to, given)[:probes]:
        other = retrace(axis, s)
        vals = table[s]
        if isinstance(other, str):
            if s in ok:
                return f"the model fails at size {s}, which the rule accepts ({_first_line(other)})"
            continue
        if s not in ok:
            failing = next((e for e in flow.exprs if vals[e.id] is None), None)
            where = failing.node if failing is not None else "?"
            return f"layer {where} differs at size {s}: the rule rejects it but the model runs"
        names, other_names = [n.name for n in graph.nodes], [n.name for n in other.nodes]
        if names != other_names:
            at = next((i for i, (a, b) in enumerate(zip(names, other_names)) if a != b), min(len(names),
                                                                                           len(other_names)))
            where = names[at] if at < len(names) else other_names[at]
            return f"layer {where} differs at size {s}: the traced graph changes"
        for node in other.nodes:
            for (key, meta), (_, shape) in zip(node.outputs, flow.shapes.get(node.name, [])):
                want = tuple(vals[d.id] if isinstance(d, Expr) else d for d in shape)
                if want != meta.shape:
                    return (f"layer {node.name} differs at size {s}: output{key} is "
                            f"{'x'.join(map(str, meta.shape))}, the formulas give {'x'.join(map(str, want))}")
    return None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "error"
    return line if len(line) <= 160 else line[:157] + "..."


def _check_traced(graph: ModelGraph, flow: Flow, vals: list[int | None], given: int, symbol: str) -> None:
    """At the traced size, every expression must give the size the meta execution produced."""
    for node in graph.nodes:
        for (key, meta), (_, shape) in zip(node.outputs, flow.shapes.get(node.name, [])):
            got = tuple(vals[d.id] if isinstance(d, Expr) else d for d in shape)
            if got != meta.shape:
                raise InternalError(
                    f"size arithmetic for {node.name}{key} gives {got} at {symbol}={given} "
                    f"but the traced shape is {meta.shape}")



def analyse_sizes(graph: ModelGraph, model: str, axes: Sequence[int] | None = None,
                  layers: bool = False, retrace: Retrace | None = None, probes: int = 3) -> SizeReport:
    """The accepted sizes of each studied axis of the first input (default: its spatial axes),
    validated by ``probes`` re-traces per axis when ``retrace`` is given."""
    first = next((n for n in graph.nodes if n.kind == "input" and n.outputs), None)
    if first is None:
        raise ConfigError("the model takes no tensor input, so it has no input sizes to study")
    shape = first.outputs[0][1].shape
    chosen = default_axes(shape) if axes is None else tuple(axes)
    for axis in chosen:
        if not 0 <= axis < len(shape):
            raise ConfigError(
                f"--axis {axis}: the first input {'x'.join(map(str, shape))} has dims 0..{len(shape) - 1}")
    return SizeReport(model, shape, tuple(analyse_axis(graph, a, layers, retrace, probes) for a in chosen))


def minimum_note(graph: ModelGraph) -> str | None:
    """One line for the summary footer: the accepted sizes of each spatial axis by the layer
    arithmetic of this one trace, without the re-traces with which ``cnnshape sizes`` validates
    it. A model that reads tensor sizes into Python values (which one trace sees as constants)
    gets no rule, only where it reads them."""
    first = next((n for n in graph.nodes if n.kind == "input" and n.outputs), None)
    if first is None or not default_axes(first.outputs[0][1].shape):
        return None
    reads = graph.trace.size_reads
    if reads:
        more = f" and {len(reads) - 1} more place(s)" if len(reads) > 1 else ""
        return (f"accepted input sizes: not derived from one trace, the model reads tensor sizes into Python "
                f"values (at {reads[0]}{more}); `cnnshape sizes` re-traces to find them")
    try:
        report = analyse_sizes(graph, "")
    except CnnshapeError as e:  # the summary still stands; the footer says why this line is missing
        return f"accepted input sizes not determined: {e}"
    except Exception as e:  # a bug in the size analysis must not take the summary down with it
        return f"accepted input sizes not determined: cnnshape bug ({type(e).__name__}: {e}); please report it"
    parts = [f"{a.symbol}: {a.accepted.words()}" if a.accepted is not None else f"{a.symbol}: not characterised"
             for a in report.axes]
    return "accepted input sizes: " + "; ".join(parts) + " (layer arithmetic; `cnnshape sizes` validates)"

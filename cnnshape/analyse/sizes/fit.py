"""Which sizes are accepted: the expressions evaluated at every size up to a bound, an arithmetic
rule fitted and verified against all of them, and (given a re-tracer) checked by re-traces."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from ...errors import CnnshapeError, ConfigError, InternalError, param
from ...trace.records import OpCall, TensorMeta
from .empty import empty_rejects, is_empty
from .expr import Expr, Fixed, evaluate, evaluate_table
from .flow import Flow, SharedTemplates, Transfers, build_flow
from .records import MAX_UP_TO, MIN_UP_TO, Accepted, AxisSizes, SizeReport, axis_symbol, default_axes, fit_rule
from .text import Formulas, formulas

if TYPE_CHECKING:
    from ...graph import ModelGraph

#: ``retrace(axis, size)``: the model traced again with the first input's ``axis`` at ``size`` (the
#: other dims as traced), or the error message when the model rejects that size
Retrace = Callable[[int, int], "ModelGraph | str"]

PYTHON_VALUES = ("cannot characterise: the model's sizes depend on the input through Python values "
                 "(e.g. x.shape used in view/interpolate/control flow)")


def analyse_axis(graph: ModelGraph, axis: int, layers: bool = False, retrace: Retrace | None = None,
                 probes: int = 3, symbolic: bool = True, transfers: Transfers | None = None) -> AxisSizes:
    """The layer arithmetic's answer for ``axis``. With ``symbolic`` set, torch's symbolic shapes
    (:mod:`.symbolic`) answer instead where the arithmetic cannot characterise the axis, and where
    the model reads tensor sizes into Python values: one trace sees those as constants, and the
    re-traces that validate the arithmetic probe only a few sizes (a check ``if x.shape[-1] > 100``
    passes them all). There the arithmetic's rule stands, with its per-layer formulas, where the
    symbolic engine finds the same sizes, or cannot answer (the note says so). ``transfers``
    (:class:`.flow.Transfers`) may be shared by the analyses of one graph's axes."""
    answer = _arithmetic_axis(graph, axis, layers, retrace, probes, transfers)
    reads = graph.trace.size_reads
    if not symbolic or answer.given > MAX_UP_TO or (answer.reason is None and not reads):
        return answer
    from .fallback import symbolic_axis  # torch's symbolic machinery: only now
    from .symbolic import SymbolicFailure

    why = answer.reason
    if why is None:
        assert answer.accepted is not None
        why = (f"its rule ({answer.accepted.words()}) rests on one trace of a model that reads tensor sizes into "
               f"Python values (at {reads[0]}), checked by re-traces at a few sizes only")
    try:
        checked = symbolic_axis(graph, axis, answer.symbol, why)
    except SymbolicFailure as e:
        if answer.reason is not None:
            return replace(answer, reason=f"{answer.reason}; torch's symbolic shapes could not either: {e}")
        return replace(answer, engine_note=f"torch's symbolic shapes could not check it: {e}")
    if answer.accepted is not None and checked.accepted is not None and _same(answer.accepted, checked.accepted,
                                                                              max(MIN_UP_TO, 2 * answer.given)):
        # the arithmetic's rule holds: keep it, with its per-layer formulas
        return replace(answer, engine_note=f"checked by {checked.engine_note}")
    return checked


def _same(a: Accepted, b: Accepted, up_to: int) -> bool:
    return all(a.contains(s) == b.contains(s) for s in range(1, up_to + 1))


def _arithmetic_axis(graph: ModelGraph, axis: int, layers: bool, retrace: Retrace | None, probes: int,
                     transfers: Transfers | None = None) -> AxisSizes:
    """``retrace`` (when given) checks the rule and formulas derived from this one trace against
    up to ``probes`` other traces; on any disagreement the axis is reported as not characterised.
    A traced size above :data:`MAX_UP_TO` is evaluated on its own: the rule fitted to the sizes up
    to the bound stands when it accepts that size, else the axis is not characterised."""
    first = next(n for n in graph.nodes if n.kind == "input")
    shape = first.outputs[0][1].shape
    symbol, given = axis_symbol(axis, len(shape)), shape[axis]
    flow = build_flow(graph, axis, transfers)
    if flow.reason:
        return AxisSizes(axis, symbol, given, None, None,
                         f"cannot characterise the accepted sizes: {flow.reason}", (), (), engine=None)
    exprs = flow.exprs
    period = math.lcm(*(e.period[0] for e in exprs))
    has_bound = any(isinstance(e, Fixed) for e in exprs)
    up_to = min(MAX_UP_TO, max(MIN_UP_TO, 2 * given) + 4 * period)
    while True:
        table = evaluate_table(exprs, range(1, up_to + 1))
        ok = [s for s, vals in table.items() if None not in vals]
        if not (has_bound and ok and ok[-1] > up_to - 2 * period and up_to < MAX_UP_TO):
            break
        up_to = min(MAX_UP_TO, 4 * up_to)
    _check_traced(graph, flow, table[given] if given <= up_to else evaluate(exprs, given), given, symbol)
    accepted = fit_rule(ok, up_to, period) if ok else None
    if given > up_to and (accepted is None or not accepted.contains(given)):
        return AxisSizes(axis, symbol, given, None, None, _above_the_bound(given, up_to, accepted), (), (),
                         engine=None)
    if accepted is None:  # the traced size is accepted, so this means the rules are wrong
        raise InternalError(f"{symbol}: no size accepted although {given} traced")
    if retrace is not None:
        differs = _validate(graph, flow, table, ok, given, axis, retrace, probes)
        if differs:
            return AxisSizes(axis, symbol, given, None, None, f"{PYTHON_VALUES} — {differs}", (), (), engine=None)
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


def _validate(graph: ModelGraph, flow: Flow, table: Mapping[int, Sequence[int | None]], ok: list[int], given: int,
              axis: int, retrace: Retrace, probes: int) -> str | None:
    """Re-traces at a few sizes; says where the model differs from what the expressions predict
    (sizes reaching layers as Python values look constant in one trace), None when all agree."""
    up_to = max(table)
    for s in _probe_sizes(ok, up_to, given)[:probes]:
        other = retrace(axis, s)
        vals = table[s]
        failure = other if isinstance(other, str) else empty_tensor(other)
        if failure is not None:
            if s in ok:
                return f"the model fails at size {s}, which the rule accepts ({_first_line(failure)})"
            continue
        assert not isinstance(other, str)
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


def empty_tensor(graph: ModelGraph) -> str | None:
    """Where a trace made or read an empty tensor in a way that rejects its size (:mod:`.empty`):
    torch runs on a 0-wide map without raising, but the size is no more accepted than when it raises."""
    for node in graph.nodes:
        for call in node.ops:
            result = call.outputs[0].shape if call.outputs else None
            why = empty_rejects(call.op, [m.shape for m in _metas(call)], result)
            if why:
                return f"{node.name}: {why}"
        if node.kind == "output" and any(is_empty(m.shape) for _, m in node.outputs):
            return "an output of the model is empty"
    return None


def _metas(call: OpCall) -> list[TensorMeta]:
    def walk(value: object) -> list[TensorMeta]:
        if isinstance(value, TensorMeta):
            return [value]
        if isinstance(value, tuple):
            return [m for v in value for m in walk(v)]
        return []
    return walk(call.args) + walk(tuple(v for _, v in call.kwargs))


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "error"
    return line if len(line) <= 160 else line[:157] + "..."


def _check_traced(graph: ModelGraph, flow: Flow, vals: Sequence[int | None], given: int, symbol: str) -> None:
    """At the traced size, every expression must give the size the meta execution produced. Only
    the flow's :attr:`~.flow.Flow.firsts` are compared: every other node repeats one of them that
    comes earlier (the same output metas and shapes), so it fails only where that one failed first."""
    at: dict[int, tuple[int | None, ...]] = {}  # id(shape) -> its values: the flow shares equal shapes
    nodes = graph.nodes
    for i in flow.firsts:
        node = nodes[i]
        for (key, meta), (_, shape) in zip(node.outputs, flow.shapes.get(node.name, [])):
            got = at.get(id(shape))
            if got is None:  # the flow holds every shape, so their ids stay theirs during this loop
                got = at[id(shape)] = tuple([vals[d.id] if isinstance(d, Expr) else d for d in shape])
            if got != meta.shape:
                raise InternalError(
                    f"size arithmetic for {node.name}{key} gives {got} at {symbol}={given} "
                    f"but the traced shape is {meta.shape}")


def analyse_sizes(graph: ModelGraph, model: str, axes: Sequence[int] | None = None,
                  layers: bool = False, retrace: Retrace | None = None, probes: int = 3,
                  symbolic: bool = True) -> SizeReport:
    """The accepted sizes of each studied axis of the first input (default: its spatial axes),
    validated by ``probes`` re-traces per axis when ``retrace`` is given; an axis the layer
    arithmetic cannot characterise goes to torch's symbolic shapes when ``symbolic`` is set."""
    first = next((n for n in graph.nodes if n.kind == "input" and n.outputs), None)
    if first is None:
        raise ConfigError("the model takes no tensor input, so it has no input sizes to study")
    shape = first.outputs[0][1].shape
    chosen = default_axes(shape) if axes is None else tuple(axes)
    for axis in chosen:
        if not 0 <= axis < len(shape):
            raise ConfigError(
                f"{param('axes')} {axis}: the first input {'x'.join(map(str, shape))} has dims 0..{len(shape) - 1}")
    transfers = Transfers()  # the node templates of this graph, for all its axes
    return SizeReport(model, shape, tuple(analyse_axis(graph, a, layers, retrace, probes, symbolic, transfers)
                                          for a in chosen))


def minimum_sizes(graph: ModelGraph, shared: SharedTemplates | None = None) -> tuple[tuple[str, int | None], ...]:
    """``(symbol, minimum)`` of each spatial axis: what ``analyse_sizes(graph, "", symbolic=False)``
    gives in its axes' ``symbol`` and ``minimum`` (and raises where it raises), for a scan's record,
    which keeps only those. ``shared`` (:class:`.flow.SharedTemplates`) may hold the node templates
    of the graphs analysed before (a scan worker's): the same answers, the rules run less often.

    It skips what the minimum does not need. A traced size up to :data:`MAX_UP_TO` is within the
    evaluated range, where the analysis's smallest accepted size is the first size without an
    invalid expression: the range grows only when that size exists, and only by larger sizes, and
    when none exists the analysis raises (below, as it does). So the sizes are evaluated from 1 in
    growing chunks up to the first accepted one, not all of them; the traced size is checked as
    the analysis checks it, and first, as there; no formula is written. A larger traced size takes
    the analysis's own path."""
    first = next((n for n in graph.nodes if n.kind == "input" and n.outputs), None)
    if first is None:
        raise ConfigError("the model takes no tensor input, so it has no input sizes to study")
    transfers = Transfers(shared)
    lead = next(n for n in graph.nodes if n.kind == "input")  # the one the flow studies, as _arithmetic_axis
    found = []
    for axis in default_axes(first.outputs[0][1].shape):
        shape = lead.outputs[0][1].shape
        symbol, given = axis_symbol(axis, len(shape)), shape[axis]
        if given > MAX_UP_TO:
            found.append((symbol, _arithmetic_axis(graph, axis, False, None, 3, transfers).minimum))
            continue
        flow = build_flow(graph, axis, transfers)
        if flow.reason:
            found.append((symbol, None))
            continue
        exprs = flow.exprs
        up_to = min(MAX_UP_TO, max(MIN_UP_TO, 2 * given) + 4 * math.lcm(*(e.period[0] for e in exprs)))
        _check_traced(graph, flow, evaluate(exprs, given), given, symbol)
        found.append((symbol, _first_accepted(exprs, up_to, symbol, given)))
    return tuple(found)


def _first_accepted(exprs: Sequence[Expr], up_to: int, symbol: str, given: int) -> int:
    """The smallest size in 1..up_to at which every expression is valid, evaluated in chunks of
    growing length; none raises as :func:`_arithmetic_axis` does."""
    start, chunk = 1, 16
    while start <= up_to:
        stop = min(up_to, start + chunk - 1)
        for s, vals in evaluate_table(exprs, range(start, stop + 1)).items():
            if None not in vals:
                return s
        start, chunk = stop + 1, 4 * chunk
    raise InternalError(f"{symbol}: no size accepted although {given} traced")


def minimum_note(graph: ModelGraph) -> str | None:
    """One line for the summary footer: the accepted sizes of each spatial axis by the layer
    arithmetic of this one trace, without the re-traces with which ``cnnshape sizes`` validates
    it. A model that reads tensor sizes into Python values (which one trace sees as constants)
    gets no rule, only where it reads them. Never torch's symbolic shapes (seconds, and torch._dynamo
    imported): ``cnnshape sizes`` uses them where this arithmetic has no rule."""
    first = next((n for n in graph.nodes if n.kind == "input" and n.outputs), None)
    if first is None or not default_axes(first.outputs[0][1].shape):
        return None
    reads = graph.trace.size_reads
    if reads:
        more = f" and {len(reads) - 1} more place(s)" if len(reads) > 1 else ""
        return (f"accepted input sizes: not derived from one trace, the model reads tensor sizes into Python "
                f"values (at {reads[0]}{more}); `cnnshape sizes` finds them with torch's symbolic shapes")
    try:
        report = analyse_sizes(graph, "", symbolic=False)
    except CnnshapeError as e:  # the summary still stands; the footer says why this line is missing
        return f"accepted input sizes not determined: {e}"
    except Exception as e:  # a bug in the size analysis must not take the summary down with it
        return f"accepted input sizes not determined: cnnshape bug ({type(e).__name__}: {e}); please report it"
    parts = [f"{a.symbol}: {a.accepted.words()}" if a.accepted is not None else f"{a.symbol}: not characterised"
             for a in report.axes]
    tries = any(a.accepted is None and a.given <= MAX_UP_TO for a in report.axes)
    how = "layer arithmetic; `cnnshape sizes` validates" + (
        " and tries torch's symbolic shapes where it has no rule" if tries else "")
    return "accepted input sizes: " + "; ".join(parts) + f" ({how})"

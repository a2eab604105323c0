"""The second engine: accepted sizes by torch's own symbolic shapes, for the axes the layer
arithmetic cannot characterise (sizes read into Python values, ops without a size rule).

The model runs on fake tensors (``FakeTensorMode`` over a ``ShapeEnv``) whose studied dim is a
symbol ``s`` hinted at one concrete size. Every decision taken on that size, by the model's Python
(``torch._assert(h == 224)``, ``if window >= pad_H``, ``while x.shape[-1] > 8``) or by torch's
kernels (a window larger than its input, broadcasting's "is it 1?"), is recorded as a *guard*, a
sympy predicate of ``s``; so is, here, the rule that every op's output is at least 1 along every
dim. Every size at which a trace's guards hold takes the same path through the model and gets the
same verdict (it runs, or it raises), so one trace answers a whole region of sizes. The trace at
the working example's size usually covers most sizes; a size no region covers is decided by a
plain meta forward pass at that size, or by a new trace once such passes have cost as much as one.
Every size 1..N is decided exactly, and each region's verdict is confirmed by meta forward passes
at its smallest, its largest and its hinted size. Output dims come out as sympy expressions of ``s``.

torch._subclasses and torch.fx.experimental (and with them torch._dynamo, about a second) are
imported here only, lazily: nothing imports this module unless the layer arithmetic has failed.
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import keystr, tree_flatten_with_path, tree_leaves

from ...trace.records import TensorMeta
from .empty import empty_rejects
from .symtext import formula_text

#: a model that takes a different path at more sizes than this is not characterised
MAX_TRACES = 64


class SymbolicFailure(Exception):
    """torch's symbolic shapes could not trace the model (not the model rejecting a size)."""


class EmptyOutput(Exception):
    """An op computed an empty tensor: the size is rejected (every layer output ≥ 1)."""


@dataclass(frozen=True)
class Path:
    """One symbolic trace: where its guards hold (``holds(s)``) and what happened there."""

    hint: int
    holds: Callable[[int], bool]
    #: the guards as text, in the order the model's code recorded them
    guards: tuple[str, ...]
    #: why the model rejects the sizes of this path (None: it runs)
    error: str | None
    #: (output key, dim, size) of every output dim: a sympy expression of the symbol, or an int
    outputs: tuple[tuple[str, int, Any], ...]
    symbol: Any


@dataclass(frozen=True)
class Verdict:
    """What happens at one size: the model's error (None: it runs), from the symbolic ``path``
    whose guards cover the size, or (``path`` None) from a meta forward pass at that size, whose
    output sizes ``outputs`` keeps as (key, dim, size)."""

    error: str | None
    path: Path | None
    outputs: tuple[tuple[str, int, int], ...] = ()

    def dim(self, key: str, dim: int, s: int) -> int | None:
        outputs = self.path.outputs if self.path is not None else self.outputs
        size = next((e for k, d, e in outputs if (k, d) == (key, dim)), None)
        return None if size is None else _value(size, self.path.symbol if self.path else None, s)


@dataclass(frozen=True)
class Exploration:
    """Every size 1..up_to (and the traced one) with its verdict."""

    paths: tuple[Path, ...]
    verdict: dict[int, Verdict]
    seconds: float

    def accepted(self) -> list[int]:
        return sorted(s for s, v in self.verdict.items() if v.error is None)

    @property
    def forwards(self) -> int:
        """How many sizes were decided by a meta forward pass of their own."""
        return sum(1 for v in self.verdict.values() if v.path is None)


def explore(model: nn.Module, inputs: Sequence[TensorMeta], axis: int, given: int, up_to: int,
            max_traces: int = MAX_TRACES) -> Exploration:
    """Every size in 1..up_to (and ``given``) decided: by the region of a symbolic trace, or by a
    meta forward pass of its own. A symbolic trace costs tens of forward passes, so a size no region
    covers gets a forward pass, and a new trace only once the forward passes since the last trace
    have cost as much as a trace (each choice then costs at most twice the better one). Raises
    :class:`SymbolicFailure` when torch cannot trace the model or a region's verdict disagrees with
    meta forward passes."""
    with numpy_absence_remembered():
        return _explore(model, inputs, axis, given, up_to, max_traces)


def _explore(model: nn.Module, inputs: Sequence[TensorMeta], axis: int, given: int, up_to: int,
             max_traces: int) -> Exploration:
    start = time.perf_counter()
    clock = time.perf_counter()
    paths = [trace_path(model, inputs, axis, given)]
    trace_cost = time.perf_counter() - clock
    since_trace = 0.0
    verdict: dict[int, Verdict] = {given: Verdict(paths[0].error, paths[0])}
    last = paths[0]
    for s in range(1, up_to + 1):
        if s in verdict:
            continue
        found = last if last.holds(s) else next((p for p in paths if p.holds(s)), None)
        if found is None and since_trace >= trace_cost:
            if len(paths) >= max_traces:
                raise SymbolicFailure(f"the model takes a different path at more than {max_traces} groups of sizes "
                                      f"(traced {len(paths)}, up to size {s})")
            clock = time.perf_counter()
            found = trace_path(model, inputs, axis, s)
            trace_cost = max(trace_cost, time.perf_counter() - clock)
            paths.append(found)
            since_trace = 0.0
        if found is not None:
            verdict[s], last = Verdict(found.error, found), found
            continue
        clock = time.perf_counter()
        error, outputs = meta_forward(model, inputs, axis, s)
        since_trace += time.perf_counter() - clock
        verdict[s] = Verdict(error, None, outputs)
    for p in paths:
        _confirm(model, inputs, axis, p, [s for s, v in verdict.items() if v.path is p])
    return Exploration(tuple(paths), verdict, time.perf_counter() - start)


@contextlib.contextmanager
def numpy_absence_remembered() -> Iterator[None]:
    """Without numpy installed, ``torch.sym_max`` (which the contiguity checks of torch's Python meta
    kernels call several times per op) tries ``import numpy`` on every call, and each failed import
    searches the whole of ``sys.path`` again: most of a symbolic trace's time, and of a meta forward
    pass through those kernels. While the model runs here, numpy is marked absent in
    ``sys.modules``, so the import fails at once, as it would after the search; the mark is removed
    afterwards. Nothing changes where numpy is installed."""
    if "numpy" in sys.modules or importlib.util.find_spec("numpy") is not None:
        yield
        return
    sys.modules["numpy"] = None  # type: ignore[assignment]  # None: "not importable", the documented marker
    try:
        yield
    finally:
        if "numpy" in sys.modules and sys.modules["numpy"] is None:
            del sys.modules["numpy"]


def trace_path(model: nn.Module, inputs: Sequence[TensorMeta], axis: int, size: int) -> Path:
    """One symbolic trace with the first input's ``axis`` a symbol hinted at ``size``."""
    from torch._dispatch.python import enable_python_dispatcher
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StatelessSymbolicContext

    env = ShapeEnv(should_record_events=False)  # event recording is for replay: it triples the cost
    mode = FakeTensorMode(shape_env=env, allow_non_fake_inputs=True)  # the model's meta parameters
    mode.cache_enabled = False  # each op runs once per trace: caching costs more than it saves
    fakes = []
    for i, meta in enumerate(inputs):
        shape = list(meta.shape)
        dynamic = [DimDynamic.STATIC] * len(shape)
        if i == 0:
            shape[axis], dynamic[axis] = size, DimDynamic.DYNAMIC
        real = torch.empty(shape, dtype=getattr(torch, meta.dtype), device="meta")
        fakes.append(mode.from_tensor(real, symbolic_context=StatelessSymbolicContext(dynamic_sizes=dynamic)))
    dim = fakes[0].shape[axis]
    symbol = dim.node.expr if isinstance(dim, torch.SymInt) else None
    error: str | None = None
    out: Any = None
    try:
        with _quiet(), torch.no_grad(), enable_python_dispatcher(), mode, _Watch() as watch:
            out = model(*fakes)
            _check_outputs(out, watch)
    except _engine_errors() as e:
        raise SymbolicFailure(f"at size {size}: {type(e).__name__}: {_first_line(str(e))}") from e
    except EmptyOutput as e:
        error = str(e)
    except Exception as e:  # the model's own check, or a kernel's, rejects the sizes of this path
        if any(words in str(e) for words in _ENGINE_WORDS):
            raise SymbolicFailure(f"at size {size}: {type(e).__name__}: {_first_line(str(e))}") from e
        error = f"{type(e).__name__}: {_first_line(str(e))}"
    outputs = tuple(_output_dims(out)) if error is None else ()
    if symbol is None:  # a size torch specialises on sight (1): a path of its own
        return Path(size, size.__eq__, (), error, outputs, None)
    exprs = [g.expr for g in env.guards]
    exprs += [a.expr for asserts in env.deferred_runtime_asserts.values() for a in asserts]
    stray = {str(x) for e in exprs for x in e.free_symbols} - {str(symbol)}
    if stray:
        raise SymbolicFailure(f"at size {size}: the guards name other symbols ({', '.join(sorted(stray))})")
    holds = _predicate(symbol, exprs, env.var_to_range[symbol])
    if not holds(size):  # the guards do not cover the size they were recorded at: trust the trace for it only
        holds = size.__eq__
    return Path(size, holds, tuple(str(e) for e in exprs), error, outputs, symbol)


def _predicate(symbol: Any, exprs: list[Any], bounds: Any) -> Callable[[int], bool]:
    """The guards and the symbol's range as one Python function of the size (exact integer code:
    torch's own printer, ``//`` for FloorDiv, ``%`` for Mod); an error evaluating it is False."""
    from torch.fx.experimental.symbolic_shapes import SYMPY_INTERP
    from torch.utils._sympy.printers import PythonPrinter

    printer = PythonPrinter()
    name = str(symbol)
    parts = [f"{name} >= {int(bounds.lower)}"]
    if bounds.upper.is_Integer:
        parts.append(f"{name} <= {int(bounds.upper)}")
    parts += [f"({printer.doprint(e)})" for e in exprs]
    test = eval(f"lambda {name}: " + " and ".join(parts), dict(SYMPY_INTERP))  # noqa: S307 - torch's own printed guards

    def holds(s: int) -> bool:
        try:
            return bool(test(s))
        except (ZeroDivisionError, ValueError, TypeError, OverflowError):
            return False
    return holds


def _output_dims(out: Any) -> Iterator[tuple[str, int, Any]]:
    leaves, _ = tree_flatten_with_path(out)
    for path, leaf in leaves:
        if isinstance(leaf, torch.Tensor):
            for i, d in enumerate(leaf.shape):
                yield keystr(path), i, d.node.expr if isinstance(d, torch.SymInt) else int(d)


def _confirm(model: nn.Module, inputs: Sequence[TensorMeta], axis: int, path: Path, covered: list[int]) -> None:
    """A path's verdict, checked by plain meta forward passes at its hint and at the smallest and
    largest sizes it covers: the guards must not have missed a decision."""
    for s in sorted({path.hint, min(covered), max(covered)}):
        error, _ = meta_forward(model, inputs, axis, s)
        if (error is None) != (path.error is None):
            said = "runs" if path.error is None else f"fails ({path.error})"
            found = "runs" if error is None else f"fails ({error})"
            raise SymbolicFailure(f"the trace hinted at {path.hint} says the model {said} at size {s}, a meta "
                                  f"forward pass says it {found}")


def meta_forward(model: nn.Module, inputs: Sequence[TensorMeta], axis: int,
                 size: int) -> tuple[str | None, tuple[tuple[str, int, int], ...]]:
    """The model on meta tensors with the first input's ``axis`` at ``size``: (None, its output
    sizes) if it runs and no empty tensor rejects the size, else (why not, ())."""
    tensors = []
    for i, meta in enumerate(inputs):
        shape = list(meta.shape)
        if i == 0:
            shape[axis] = size
        tensors.append(torch.empty(shape, dtype=getattr(torch, meta.dtype), device="meta"))
    try:
        with torch.no_grad(), _Watch() as watch:
            out = model(*tensors)
            _check_outputs(out, watch)
    except EmptyOutput as e:
        return str(e), ()
    except Exception as e:
        return f"{type(e).__name__}: {_first_line(str(e))}", ()
    return None, tuple(_output_dims(out))


class _Watch(TorchDispatchMode):
    """Above the fake mode (or on plain meta tensors): rejects a size where an op makes or reads an
    empty tensor as :mod:`.empty` says; with symbolic sizes each test records a guard."""

    def __init__(self) -> None:
        super().__init__()
        #: symbolic sizes known to be ≥ 1 (ranges only narrow during a trace)
        self.known: set[Any] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [a.shape for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        main = next((t for t in tree_leaves(out) if isinstance(t, torch.Tensor)), None)
        why = empty_rejects(func.overloadpacket.__name__, inputs, None if main is None else main.shape, self.empty)
        if why:
            raise EmptyOutput(why)
        return out

    def empty(self, shape: Any) -> bool:
        for d in shape:
            if isinstance(d, torch.SymInt):
                expr = d.node.expr
                if expr in self.known:
                    continue
                if d < 1:  # records the guard d < 1 (or, below, d ≥ 1) unless the ranges decide it
                    return True
                self.known.add(expr)
            elif d < 1:
                return True
        return False


def _check_outputs(out: Any, watch: _Watch) -> None:
    """An empty output rejects the size."""
    for key, leaf in tree_flatten_with_path(out)[0]:
        if isinstance(leaf, torch.Tensor) and watch.empty(leaf.shape):
            raise EmptyOutput(f"output{keystr(key)} is empty")


#: what a kernel says when it cannot take symbolic sizes (not about the model)
_ENGINE_WORDS = ("concrete integers", "symbolic sizes", "data-dependent", "data dependent", "unbacked")


def _engine_errors() -> tuple[type[BaseException], ...]:
    """Errors of the symbolic machinery itself, as opposed to the model rejecting a size."""
    from torch._subclasses.fake_tensor import (
        DataDependentOutputException,
        DynamicOutputShapeException,
        UnsupportedFakeTensorException,
        UnsupportedOperatorException,
    )
    from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

    return (DataDependentOutputException, DynamicOutputShapeException, UnsupportedFakeTensorException,
            UnsupportedOperatorException, GuardOnDataDependentSymNode, NotImplementedError)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """fake_tensor logs the traceback of a kernel that fails, which is how a size is rejected here."""
    logger = logging.getLogger("torch._subclasses.fake_tensor")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "error"
    return line if len(line) <= 160 else line[:157] + "..."


def output_formulas(found: Exploration, given: int, name: str) -> list[tuple[str, int, str]]:
    """(key, dim, text) of every output dim whose size varies over the accepted sizes: the first
    of the paths' expressions (the traced size's first) that gives it at every accepted size, else
    the traced size's, saying where it stops holding."""
    home = found.verdict[given].path
    assert home is not None
    accepted = found.accepted()
    paths = [home, *(p for p in found.paths if p is not home and p.error is None)]
    out = []
    for key, dim, _ in home.outputs:
        values = {s: found.verdict[s].dim(key, dim, s) for s in accepted}
        if len(set(values.values())) == 1:
            continue
        candidates = [(p, e) for p in paths for k, d, e in p.outputs if (k, d) == (key, dim) and not isinstance(e, int)]
        fits = next(((p, e) for p, e in candidates if all(_value(e, p.symbol, s) == v for s, v in values.items())),
                    None)
        if fits is not None:
            out.append((key, dim, formula_text(fits[1], fits[0].symbol, name)))
            continue
        expr = next(e for k, d, e in home.outputs if (k, d) == (key, dim))
        text = str(expr) if isinstance(expr, int) else formula_text(expr, home.symbol, name)
        s, v = next((s, v) for s, v in values.items() if _value(expr, home.symbol, s) != v)
        out.append((key, dim, f"{text} at {name} = {given}, not everywhere ({v} at {name} = {s})"))
    return out


def _value(expr: Any, symbol: Any, s: int) -> int | None:
    import sympy

    if isinstance(expr, int):
        return expr
    value = expr.xreplace({symbol: sympy.Integer(s)}) if symbol is not None else expr
    return int(value) if value.is_Integer else None

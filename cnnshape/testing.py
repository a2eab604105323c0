"""A pytest helper for teams that keep model budgets in their tests::

    from cnnshape.testing import assert_within_budget

    def test_classifier_size():
        assert_within_budget("src/net.py:Classifier", [(1, 3, 224, 224)],
                             max_params="25M", max_macs="4.5G", expect_output=[(1, 1000)])

The ``AssertionError`` message is the same table ``cnnshape check`` prints.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from .api import analyze
from .check import Budget, Result, Shape, check_budgets, failed, snapshot
from .config import BUDGET_KEYS
from .render.check import render_text
from .vocab import DEFAULT_SHAPE


def assert_within_budget(
    model_or_spec: nn.Module | str,
    inputs: Any = (DEFAULT_SHAPE,),
    *,
    max_params: int | str | None = None,
    max_macs: int | str | None = None,
    max_activation_memory: int | str | None = None,
    max_param_memory: int | str | None = None,
    max_inference_memory: int | str | None = None,
    max_train_memory: int | str | None = None,
    expect_output: Sequence[Sequence[int]] | None = None,
    args: dict[str, Any] | None = None,
    tracer: str = "auto",
) -> tuple[Result, ...]:
    """Analyse the model and raise ``AssertionError`` (message: the check table) when a budget is
    exceeded or the output shapes differ from ``expect_output``; return the results otherwise.
    Budgets take ints or unit strings (``"25M"``, ``"300MiB"``); the memory ones are the peaks of
    ``cnnshape.memory`` (a training step with Adam for ``max_train_memory``, docs/memory.md)."""
    given = {"max-params": max_params, "max-macs": max_macs,
             "max-activation-memory": max_activation_memory, "max-param-memory": max_param_memory,
             "max-inference-memory": max_inference_memory, "max-train-memory": max_train_memory}
    budgets = [Budget(figure, parse(given[key], key.replace("-", "_")))
               for key, (figure, parse) in BUDGET_KEYS.items() if given[key] is not None]
    report = analyze(model_or_spec, inputs, args=args, tracer=tracer)
    if max_inference_memory is not None or max_train_memory is not None:
        from dataclasses import replace

        from .memory_run import run_memory
        from .request import Request

        request = Request.of(model_or_spec, inputs, args=args, tracer=tracer)
        report = replace(report, memory=run_memory(request, train=max_train_memory is not None))
    expected: tuple[Shape, ...] | None = (
        tuple(tuple(s) for s in expect_output) if expect_output is not None else None)
    results = check_budgets(snapshot(report), budgets, expected)
    if failed(results):
        raise AssertionError(render_text(results))
    return results

"""The JSON report (schema ``cnnshape.report/1``, docs/json.md)."""
from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from typing import Any

from ..report import Report


def render_json(report: Report) -> str:
    return dumps_indented(report.to_dict())


#: a newline and the indentation of each nesting level (two spaces a level, as ``indent=2``)
_NEWLINE = ["\n" + "  " * level for level in range(64)]
_INF = float("inf")
_INTS = {int}


class _NotPlain(Exception):
    """A value outside the plain JSON types (or nested too deep): ``json.dumps`` takes it."""


def dumps_indented(value: Any) -> str:
    """``json.dumps(value, indent=2)``, the same text, written directly for plain JSON values.

    Why: with an indent, the standard library encodes in pure Python (its C encoder is for compact
    output only), one generator step per value; a deep model's report has hundreds of thousands.
    This writes each container in one join and the scalars inline, twice as fast. What guards the
    equivalence: only exact dicts with str keys, lists, tuples, str, int, float, bool and None are
    written here, each as the standard encoder writes it (its own C string escaper, ``int.__repr__``,
    ``float.__repr__`` and NaN/Infinity); anything else (a subclass, a non-str key, a cycle, 63
    levels deep) hands the whole value to ``json.dumps``, errors included
    (tests/test_fast_paths.py compares both on random values)."""
    try:
        return _encode(value, 0)
    except (_NotPlain, IndexError, RecursionError):  # IndexError: deeper than _NEWLINE
        return json.dumps(value, indent=2)


def _scalar(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is float:
        if value != value:
            return "NaN"
        if value == _INF:
            return "Infinity"
        return "-Infinity" if value == -_INF else float.__repr__(value)
    raise _NotPlain


def _encode(value: Any, level: int) -> str:
    kind = type(value)
    if kind is dict:
        if not value:
            return "{}"
        inner = _NEWLINE[level + 1]
        items = []
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            kind = type(item)
            text = (encode_basestring_ascii(item) if kind is str else int.__repr__(item) if kind is int
                    else _encode(item, level + 1))
            items.append(f"{encode_basestring_ascii(key)}: {text}")
        return "{" + inner + ("," + inner).join(items) + _NEWLINE[level] + "}"
    if kind is list or kind is tuple:
        if not value:
            return "[]"
        inner = _NEWLINE[level + 1]
        if set(map(type, value)) == _INTS:  # a shape: every item an exact int
            body = ("," + inner).join(map(int.__repr__, value))
        else:
            body = ("," + inner).join([_encode(item, level + 1) for item in value])
        return "[" + inner + body + _NEWLINE[level] + "]"
    return _scalar(value)

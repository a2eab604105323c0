"""``--input`` specs: ``"1,3,224,224"`` or ``"1,128:int64"`` -> :class:`InputSpec`.

Validated once here; later stages only see well-formed specs.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from .errors import InputError, param

#: dtype names accepted after the colon, mapped to the ``torch`` attribute name.
DTYPES: dict[str, str] = {
    "float32": "float32", "float": "float32", "fp32": "float32",
    "float16": "float16", "half": "float16", "fp16": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float64": "float64", "double": "float64", "fp64": "float64",
    "int64": "int64", "long": "int64",
    "int32": "int32", "int": "int32",
    "int16": "int16", "int8": "int8", "uint8": "uint8",
    "bool": "bool",
}

#: bytes per element of each dtype (torch's element_size), to check a shape fits torch's int64 sizes
ITEMSIZE: dict[str, int] = {
    "float32": 4, "float16": 2, "bfloat16": 2, "float64": 8,
    "int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint8": 1, "bool": 1,
}
#: torch counts elements and bytes in int64
MAX_BYTES = 2**63 - 1

FORM = ("comma-separated positive integers with an optional dtype, e.g. 1,3,224,224 or 1,128:int64 "
        "(`scalar` for a 0-d tensor)")
#: how a 0-d tensor input is written
SCALAR = "scalar"


@dataclass(frozen=True)
class InputSpec:
    """One model input: its shape and dtype name (a key of ``torch``, e.g. ``"float32"``), and the
    name of the forward parameter it is passed to by keyword (None: passed by position)."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    name: str | None = None

    def __post_init__(self) -> None:
        if self.name is not None and not (isinstance(self.name, str) and self.name.isidentifier()):
            raise InputError(f"input name {self.name!r} is not a Python identifier (a forward parameter name)")

    def __str__(self) -> str:
        dims = "x".join(str(d) for d in self.shape) if self.shape else SCALAR
        text = dims if self.dtype == "float32" else f"{dims}:{self.dtype}"
        return text if self.name is None else f"{self.name}={text}"


def _clip(text: str, width: int = 60) -> str:
    """``text``, shortened with "..." when longer than ``width`` (a 5,000-digit size in a message)."""
    return text if len(text) <= width else text[:width - 3] + "..."


def parse_input(text: str) -> InputSpec:
    """Parse one ``--input`` value: ``[NAME=]SIZES[:DTYPE]``."""
    shown = _clip(text)
    raw = text.strip()
    name: str | None = None
    if "=" in raw:
        name_text, _, raw = raw.partition("=")
        name = name_text.strip()
        if not name.isidentifier():
            raise InputError(f"{param('inputs')} {shown!r}: {_clip(name)!r} before '=' is not a forward parameter "
                             f"name. Expected {FORM}; name an input passed by keyword as NAME=SIZES, e.g. "
                             "mask=1,1,224,224.")
        raw = raw.strip()
    dims_text, _, dtype_text = raw.partition(":")
    dtype_key = dtype_text.strip().lower() or "float32"
    if dtype_key not in DTYPES:
        known = ", ".join(sorted(set(DTYPES.values())))
        raise InputError(
            f"{param('inputs')} {shown!r}: unknown dtype {_clip(dtype_text)!r}. Known dtypes: {known}. "
            f"Expected {FORM}."
        )
    if dims_text.strip().lower() in (SCALAR, "()"):  # a 0-d tensor: a temperature, a timestep
        return InputSpec((), DTYPES[dtype_key], name)
    # "1x3x224x224" is accepted too, when no comma is used
    parts = [p.strip() for p in (dims_text.split(",") if "," in dims_text else dims_text.split("x"))]
    if not dims_text.strip() or any(p == "" for p in parts):
        raise InputError(f"{param('inputs')} {shown!r}: empty dimension. Expected {FORM}.")
    dims: list[int] = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            what = "is far too large a size" if part.isdigit() else "is not an integer"
            raise InputError(f"{param('inputs')} {shown!r}: {_clip(part)!r} {what}. Expected {FORM}.") from None
        if value <= 0:
            raise InputError(
                f"{param('inputs')} {shown!r}: every size must be at least 1, got {value}. Expected {FORM}."
            )
        dims.append(value)
    dtype = DTYPES[dtype_key]
    nbytes = ITEMSIZE[dtype]
    for d in dims:
        nbytes *= d
        if nbytes > MAX_BYTES:
            raise InputError(
                f"{param('inputs')} {shown!r}: a tensor of this shape and dtype would hold more than 2^63 - 1 bytes, "
                "which torch cannot describe even on the meta device. Give smaller sizes."
            )
    return InputSpec(tuple(dims), dtype, name)


def normalise_inputs(inputs: object) -> tuple[InputSpec, ...]:
    """Accept the forms the API takes and return specs.

    ``"1,3,224,224"``, ``(1, 3, 224, 224)``, an :class:`InputSpec`, or a list of any of these
    (one per model input, in order); a dict maps forward parameter names to any of these, for
    inputs passed by keyword (``{"x": (1, 3, 224, 224)}``). Inputs passed by position come first.
    """
    if isinstance(inputs, Mapping):
        specs = tuple(_named(key, value) for key, value in inputs.items())
        if not specs:
            raise InputError(f"{param('inputs')} is an empty mapping; give at least one input shape")
        return specs
    if isinstance(inputs, (str, InputSpec)) or (
        isinstance(inputs, tuple) and inputs and all(isinstance(d, int) for d in inputs)
    ):
        inputs = [inputs]
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise InputError(f"inputs must be a list of shapes such as [(1, 3, 224, 224)]; got {inputs!r}")
    found = tuple(_one(item) for item in inputs)
    seen: set[str] = set()
    for before, spec in zip(found, found[1:]):
        if before.name is not None and spec.name is None:
            raise InputError(f"{param('inputs')} {spec}: an input passed by position after one passed by keyword "
                             f"({before}); give the unnamed inputs first, as in a Python call")
    for spec in found:
        if spec.name is not None:
            if spec.name in seen:
                raise InputError(f"{param('inputs')}: the input {spec.name!r} is given twice")
            seen.add(spec.name)
    return found


def _one(item: object) -> InputSpec:
    if isinstance(item, InputSpec):
        return item
    if isinstance(item, str):
        return parse_input(item)
    if isinstance(item, (tuple, list)) and all(isinstance(d, int) and not isinstance(d, bool) for d in item):
        return parse_input(",".join(str(d) for d in item) if item else SCALAR)
    raise InputError(f"input {item!r} is not a shape. Expected {FORM}, or a tuple of ints.")


def _named(key: object, value: object) -> InputSpec:
    """``{"x": value}``: the spec of ``value`` passed by keyword as ``x``."""
    if not isinstance(key, str) or not key.isidentifier():
        raise InputError(f"{param('inputs')}: the key {key!r} is not a forward parameter name")
    spec = _one(value)
    if spec.name not in (None, key):
        raise InputError(f"{param('inputs')}: the key {key!r} holds an input named {spec.name!r}")
    return replace(spec, name=key)

"""What to scan, as a stream of :class:`Task` s: specs given as arguments, a file of specs (one a
line, with per-line ``--arg``/``--input``/``--name``), or a *space*: ``space.py:candidates``, a
function yielding ``(name, model_or_factory_or_spec[, inputs])``.

A task is a picklable value sent to a worker. A module or factory from a space travels pickled
(``payload``) with the space's spec, which the worker imports first so that references into the
space's file resolve there; a model the client cannot pickle becomes an error record, not a crash.
"""
from __future__ import annotations

import pickle
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..inputs import InputSpec, normalise_inputs
from ..vocab import DEFAULT_INPUT


@dataclass(frozen=True)
class Task:
    name: str
    #: how the record names where the model came from: a spec, or ``space.py:candidates``
    origin: str
    inputs: tuple[InputSpec, ...]
    #: a model spec (``file.py:Name``), or None with ``payload``
    spec: str | None = None
    args: tuple[tuple[str, Any], ...] = ()
    #: a pickled nn.Module or factory (a callable returning one)
    payload: bytes | None = None
    #: the space spec the worker imports before unpickling ``payload``
    space: str | None = None
    #: why the task cannot run (recorded as an error without sending it to a worker)
    problem: str | None = None

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(s.shape for s in self.inputs)


def _inputs(inputs: Any) -> tuple[InputSpec, ...]:
    """``--input`` texts (or any form ``analyze`` takes) as specs; the default image when none."""
    return normalise_inputs(inputs if inputs else DEFAULT_INPUT)


def from_specs(specs: Iterable[str], inputs: Any = None,
               args: Mapping[str, Any] | None = None) -> Iterator[Task]:
    """One task per spec, each named by its spec, all with the same inputs and arguments."""
    shared = _inputs(inputs)
    for spec in specs:
        yield Task(spec, spec, shared, spec=spec, args=tuple((args or {}).items()))


def parse_line(line: str, where: str, inputs: Any,
               args: Mapping[str, Any] | None) -> Task | None:
    """``SPEC [--arg K=V]... [--input SHAPE]... [--name NAME]`` (None for a blank or # line). A
    line's ``--input`` replaces the defaults; its ``--arg`` s add to (and override) them. The name
    is ``--name``, else the line itself."""
    from ..load import parse_args

    try:
        words = shlex.split(line, comments=True)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None
    if not words:
        return None
    spec, rest = words[0], words[1:]
    if spec.startswith("-"):
        raise ConfigError(f"{where}: a line starts with the model spec (file.py:Name), not {spec!r}")
    own_inputs: list[str] = []
    own_args: dict[str, Any] = dict(args or {})
    name = None
    i = 0
    while i < len(rest):
        flag, value = rest[i], rest[i + 1] if i + 1 < len(rest) else None
        flag, eq, inline = flag.partition("=") if flag.startswith("--") else (flag, "", "")
        if eq:
            value, i = inline, i - 1
        if flag not in ("--input", "-i", "--arg", "-a", "--name") or value is None:
            raise ConfigError(f"{where}: {rest[i + (1 if eq else 0)]!r}: a line takes SPEC then --input SHAPE, "
                              "--arg KEY=VALUE and --name NAME")
        if flag in ("--input", "-i"):
            own_inputs.append(value)
        elif flag in ("--arg", "-a"):
            try:
                own_args.update(parse_args([value]))
            except (TypeError, ValueError) as e:
                raise ConfigError(f"{where}: --arg {value!r}: {e}") from None
        else:
            name = value
        i += 2
    try:
        specs = _inputs(own_inputs or inputs)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    return Task(name or " ".join(shlex.quote(w) for w in words), spec, specs, spec=spec, args=tuple(own_args.items()))


def from_file(path: str, inputs: Any = None, args: Mapping[str, Any] | None = None) -> Iterator[Task]:
    """The tasks of a specs file, one a line (see :func:`parse_line`); relative file specs are
    relative to the working folder, as on the command line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the specs file {path}: {e}") from None
    for number, line in enumerate(text.splitlines(), 1):
        task = parse_line(line, f"{path}:{number}", inputs, args)
        if task is not None:
            yield task


def from_space(space: str, inputs: Any = None) -> Iterator[Task]:
    """The tasks of a space: ``space`` names a function (or an iterable) yielding ``(name, model[,
    inputs])``, ``model`` a spec string, an ``nn.Module`` or a factory returning one."""
    from ..load import load_attribute

    found = load_attribute(space)
    items = found() if callable(found) else found
    if not isinstance(items, Iterable):
        raise ConfigError(f"space {space}: it gives {type(items).__name__}, not an iterable of "
                          "(name, model[, inputs]) tuples; make it a generator function")
    default = _inputs(inputs)
    for index, item in enumerate(items):
        where = f"space {space}, item {index}"
        if not isinstance(item, tuple) or len(item) not in (2, 3) or not isinstance(item[0], str):
            raise ConfigError(f"{where}: {str(item)[:80]!r} is not a (name, model[, inputs]) tuple with a str name")
        name, model = item[0], item[1]
        try:
            specs = normalise_inputs(item[2]) if len(item) == 3 and item[2] is not None else default
        except ConfigError as e:
            raise ConfigError(f"{where} ({name}): {e}") from None
        if isinstance(model, str):
            yield Task(name, model, specs, spec=model)
            continue
        if not callable(model):
            yield Task(name, space, specs, problem=f"{type(model).__name__} is not a model: give an nn.Module, "
                       "a function returning one, or a spec string")
            continue
        try:
            payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # a lambda, a local class: the worker could not receive it
            yield Task(name, space, specs, problem=f"cannot send it to a worker process ({type(e).__name__}: {e}); "
                       "give a module-level function or class, or functools.partial of one")
            continue
        yield Task(name, space, specs, payload=payload, space=space)


def _origin(model: Any) -> str:
    """How a record names a model given as an object: its class or function, or the one a partial wraps."""
    target = getattr(model, "func", model)  # functools.partial
    if isinstance(target, type) or callable(target) and hasattr(target, "__qualname__"):
        return str(getattr(target, "__qualname__", type(target).__name__))
    return type(model).__name__


def from_objects(items: Iterable[Any], inputs: Any = None) -> Iterator[Task]:
    """The API's forms: spec strings, ``(name, model[, inputs])`` tuples, or a mapping name -> model."""
    if isinstance(items, Mapping):
        items = list(items.items())
    default = _inputs(inputs)
    for index, item in enumerate(items):
        if isinstance(item, str):
            yield Task(item, item, default, spec=item)
            continue
        if not isinstance(item, tuple) or len(item) not in (2, 3):
            raise ConfigError(f"models[{index}]: give a spec string or a (name, model[, inputs]) tuple, "
                              f"not {type(item).__name__}")
        name, model = item[0], item[1]
        specs = normalise_inputs(item[2]) if len(item) == 3 and item[2] is not None else default
        if isinstance(model, str):
            yield Task(str(name), model, specs, spec=model)
            continue
        try:
            payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:
            yield Task(str(name), _origin(model), specs,
                       problem=f"cannot send it to a worker process ({type(e).__name__}: {e}); give a "
                               "module-level function or class, or functools.partial of one")
            continue
        yield Task(str(name), _origin(model), specs, payload=payload)


def space_file(space: str) -> str | None:
    """The file of a ``space.py:candidates`` spec (None for a package module)."""
    from ..request import spec_file

    found = spec_file(space)
    return str(Path(found)) if found else None

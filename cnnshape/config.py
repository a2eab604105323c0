"""Model budgets from ``pyproject.toml`` (``[tool.cnnshape.models.<name>]``) or a standalone
``cnnshape.toml`` (``[models.<name>]``). Everything is validated here; errors name the key and
the file. No torch.
"""
from __future__ import annotations

import difflib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .check import Budget, Shape
from .errors import CnnshapeError, ConfigError
from .inputs import parse_input
from .units import parse_bytes, parse_count
from .vocab import DEFAULT_INPUT, TRACERS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

#: config key -> (budget figure, parser)
BUDGET_KEYS: dict[str, tuple[str, Callable[[Any, str], int]]] = {
    "max-params": ("params", parse_count),
    "max-macs": ("macs", parse_count),
    "max-activation-memory": ("activation_memory", parse_bytes),
    "max-param-memory": ("param_memory", parse_bytes),
    "max-inference-memory": ("inference_memory", parse_bytes),
    "max-train-memory": ("train_memory", parse_bytes),
}
KEYS = ("model", "input", "args", "tracer", "expect-output", *BUDGET_KEYS)


@dataclass(frozen=True)
class ModelConfig:
    name: str
    model: str
    inputs: tuple[str, ...] = (DEFAULT_INPUT,)
    args: dict[str, Any] = field(default_factory=dict)
    tracer: str = "auto"
    budgets: tuple[Budget, ...] = ()
    expect_output: tuple[Shape, ...] | None = None


def parse_shapes(values: list[str] | tuple[str, ...], name: str) -> tuple[Shape, ...]:
    """``["1,1000"]`` -> ``((1, 1000),)`` (``--expect-output``)."""
    shapes = []
    for text in values:
        if not isinstance(text, str):
            raise ConfigError(f"{name}: {text!r} is not a shape string such as \"1,1000\"")
        try:
            spec = parse_input(text)
        except CnnshapeError as e:
            raise ConfigError(f"{name}: {text!r} is not a shape; give comma-separated sizes, e.g. 1,1000") from e
        if spec.dtype != "float32" or ":" in text:
            raise ConfigError(f"{name}: {text!r}: give only the sizes, e.g. 1,1000")
        shapes.append(spec.shape)
    return tuple(shapes)


def _string_list(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{name} must be a list of strings such as [\"1,3,224,224\"], not {value!r}")


def _resolve_model(spec: str, base: Path) -> str:
    """A relative ``file.py:Name`` spec is relative to the config file's folder."""
    where, sep, name = spec.rpartition(":")
    if sep and where.endswith(".py") and not Path(where).is_absolute() and base != Path("."):
        return f"{base / where}:{name}"
    return spec


def model_config(name: str, table: Any, where: str, base: Path = Path(".")) -> ModelConfig:
    """Validate one ``[models.<name>]`` table; ``where`` (e.g. ``"pyproject.toml [tool.cnnshape.models.net]"``)
    goes into every message."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table of settings, not {table!r}")
    unknown = [k for k in table if k not in KEYS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}{hint}. Known keys: {', '.join(KEYS)}")
    if not isinstance(table.get("model"), str) or not table["model"].strip():
        raise ConfigError(f"{where}: key 'model' is required: a spec such as \"src/net.py:Classifier\"")
    inputs = _string_list(table.get("input", [DEFAULT_INPUT]), f"{where}: key 'input'")
    for text in inputs:
        try:
            parse_input(text)
        except CnnshapeError as e:
            raise ConfigError(f"{where}: key 'input': {e}") from e
    args = table.get("args", {})
    if not isinstance(args, dict):
        raise ConfigError(f"{where}: key 'args' must be a table such as {{ num_classes = 10 }}, not {args!r}")
    tracer = table.get("tracer", "auto")
    if tracer not in TRACERS:
        raise ConfigError(f"{where}: key 'tracer' must be one of {', '.join(TRACERS)}, not {tracer!r}")
    for key in BUDGET_KEYS:
        if isinstance(table.get(key), float):
            raise ConfigError(f"{where}: key {key!r}: {table[key]!r} is a TOML float; write a whole number "
                              f"({key} = 25000000) or a string with a unit ({key} = \"25M\")")
    budgets = tuple(Budget(figure, parse(table[key], f"{where}: key {key!r}"))
                    for key, (figure, parse) in BUDGET_KEYS.items() if key in table)
    expect = None
    if "expect-output" in table:
        key = f"{where}: key 'expect-output'"
        expect = parse_shapes(_string_list(table["expect-output"], key), key)
    return ModelConfig(name, _resolve_model(table["model"].strip(), base), inputs, dict(args),
                       tracer, budgets, expect)


def find_config(cwd: Path) -> Path:
    """``cnnshape.toml`` if there is one, else ``pyproject.toml`` with a ``[tool.cnnshape]`` table."""
    standalone, pyproject = cwd / "cnnshape.toml", cwd / "pyproject.toml"
    if standalone.is_file():
        return standalone
    if pyproject.is_file():
        return pyproject
    raise ConfigError(
        f"no model to check: give a SPEC (cnnshape check path/net.py:Net --max-params 25M), or add "
        f"[tool.cnnshape.models.<name>] tables to pyproject.toml or [models.<name>] to cnnshape.toml "
        f"in {cwd} (or pass --config PATH)"
    )


def load_config(path: Path) -> tuple[ModelConfig, ...]:
    """All model tables of a config file, in file order. Any key outside them is an error that
    says where it belongs."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start} is 0x{e.object[e.start]:02x}); TOML files "
                          "are UTF-8: save it again as UTF-8 (not UTF-16)") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from e
    section, prefix = _section(path, data)
    models = section.get("models")
    if models is not None and not isinstance(models, dict):
        raise ConfigError(f"{path}: '{prefix}models' must hold one table per model "
                          f"([{prefix}models.<name>]), not {models!r}")
    if not models:
        raise ConfigError(f"{path}: no [{prefix}models.<name>] table; add one per model to check")
    base = path.parent
    for name, table in models.items():
        if isinstance(table, dict):
            continue
        if name in KEYS:
            raise ConfigError(f"{path} [{prefix}models]: key {name!r} belongs in a model's table "
                              f"[{prefix}models.<name>], not directly in [{prefix}models]")
        raise ConfigError(f"{path} [{prefix}models]: {name!r} must be a table [{prefix}models.{name}] "
                          f"with a 'model' key, not {table!r}")
    return tuple(
        model_config(name, table, f"{path} [{prefix}models.{name}]", base)
        for name, table in models.items()
    )


def _section(path: Path, data: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The table that holds ``models`` ([tool.cnnshape] in pyproject.toml, the file itself
    otherwise) and its prefix for messages; it may hold nothing else."""
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        if not isinstance(tool, dict):
            raise ConfigError(f"{path}: 'tool' must be a table ([tool.cnnshape.models.<name>]), not {tool!r}")
        section, prefix, name = tool.get("cnnshape"), "tool.cnnshape.", "[tool.cnnshape]"
        if section is None:
            hint = (" ([models.<name>] tables at the top level belong under [tool.cnnshape.models.<name>] in "
                    "pyproject.toml)") if "models" in data else ""
            raise ConfigError(f"{path}: no [tool.cnnshape.models.<name>] table; add one per model to check{hint}")
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: 'tool.cnnshape' must be a table ([tool.cnnshape.models.<name>]), "
                              f"not {section!r}")
    else:
        section, prefix, name = data, "", "the top level"
        tool = data.get("tool")
        if "models" not in data and isinstance(tool, dict) and "cnnshape" in tool:
            raise ConfigError(f"{path}: [tool.cnnshape...] tables belong in pyproject.toml; in {path.name} "
                              "the tables are [models.<name>], without the tool.cnnshape prefix")
    for key, value in section.items():
        if key == "models":
            continue
        if key == "model" and isinstance(value, dict):
            fix = f"did you mean [{prefix}models.<name>] (models, plural)?"
        elif key in KEYS:
            fix = (f"it belongs in a model's table [{prefix}models.<name>]: each model has its own "
                   f"{'budgets' if key in BUDGET_KEYS else 'settings'}")
        else:
            fix = f"{name} holds only [{prefix}models.<name>] tables"
        raise ConfigError(f"{path} {name if name.startswith('[') else '(' + name + ')'}: "
                          f"unknown key {key!r}; {fix}")
    return section, prefix

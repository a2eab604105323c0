"""Model specs -> ``nn.Module``.

A spec is ``path/to/file.py:Name`` or ``package.module:Name``. ``Name`` may be an ``nn.Module``
subclass, a factory function returning a module, or a module instance. Construction puts the
parameters and buffers on the meta device (no weights allocated or initialised, see
:mod:`cnnshape.construct`); if that fails, on the CPU, and the returned :class:`LoadedModel` says so.
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from .construct import build_on_meta
from .errors import ConfigError, LoadError, param


@dataclass(frozen=True)
class LoadedModel:
    module: nn.Module
    spec: str
    #: ``"meta"`` (every parameter and buffer on meta) or the device the weights were built on.
    constructed_on: str
    #: Why meta construction was abandoned, when it was.
    note: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


def parse_args(pairs: list[str] | None) -> dict[str, Any]:
    """``["num_classes=10", "name='x'"]`` -> kwargs; values are Python literals (bare words stay strings)."""
    kwargs: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(
                f"{param('args')} {pair!r}: expected KEY=VALUE with a Python identifier as KEY, "
                f"e.g. {param('args')} num_classes=10"
            )
        try:
            kwargs[key] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            kwargs[key] = value.strip()
    return kwargs


def _split_spec(spec: str) -> tuple[str, str]:
    where, sep, name = spec.rpartition(":")
    # "C:\\models\\net.py" has a drive colon; the attribute follows the last colon.
    if not sep or not where or not name:
        raise LoadError(
            f"model spec {spec!r} must be FILE.py:NAME or package.module:NAME, "
            "e.g. examples/resnet.py:ResNet50 or torchvision.models:resnet50"
        )
    return where, name.strip()


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        raise LoadError(f"model file {str(path)!r} not found{where}. Check the path in the spec.")
    source = path.read_text(encoding="utf-8", errors="replace")
    try:
        compile(source, str(path), "exec")
    except SyntaxError as e:
        raise LoadError(
            f"syntax error in {path}:{e.lineno}: {e.msg}\n    {(e.text or '').rstrip()}"
        ) from e
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    mod_name = f"cnnshape_user_{path.stem}_{digest}"
    module_spec = importlib.util.spec_from_file_location(mod_name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    # Let the file import its siblings, as running it as a script would.
    parent = str(path.resolve().parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    sys.modules[mod_name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[mod_name]
        raise LoadError(f"importing {path} raised {type(e).__name__}: {e}{_user_line(e)}") from e
    return module


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        raise LoadError(
            f"module {name!r} not found ({e}). Use FILE.py:NAME for a file, or install the package."
        ) from e
    except SyntaxError as e:
        raise LoadError(f"syntax error in {e.filename}:{e.lineno}: {e.msg}") from e
    except Exception as e:
        raise LoadError(f"importing {name!r} raised {type(e).__name__}: {e}") from e


def _candidates(module: ModuleType) -> list[str]:
    """Names in ``module`` a spec could point at: its own nn.Module classes, factories and instances."""
    names = []
    for attr, value in vars(module).items():
        if attr.startswith("_"):
            continue
        defined_here = getattr(value, "__module__", None) == module.__name__
        if inspect.isclass(value) and issubclass(value, nn.Module) and defined_here:
            names.append(attr)
        elif inspect.isfunction(value) and defined_here:
            names.append(f"{attr}()")
        elif isinstance(value, nn.Module):
            names.append(attr)
    return names


def _user_line(exc: BaseException) -> str:
    """' (at file.py:12: code)' for the innermost traceback frame outside torch and cnnshape."""
    frames = traceback.extract_tb(exc.__traceback__)
    torch_dir = str(Path(torch.__file__).parent)
    here = str(Path(__file__).parent)
    for frame in reversed(frames):
        if frame.filename.startswith((torch_dir, here)) or "importlib" in frame.filename:
            continue
        return f" (at {frame.filename}:{frame.lineno}: {(frame.line or '').strip()})"
    return ""


def _construct(target: Any, kwargs: dict[str, Any], label: str) -> nn.Module:
    if isinstance(target, nn.Module):
        if kwargs:
            raise ConfigError(f"{label} is a module instance; {param('args')} does not apply to it")
        return target
    if not callable(target):
        raise LoadError(f"{label} is a {type(target).__name__}, not an nn.Module, a module class or a factory")
    if inspect.isclass(target) and not issubclass(target, nn.Module):
        raise LoadError(f"{label} is the class {target.__name__}, which is not an nn.Module subclass")
    result = target(**kwargs)
    if not isinstance(result, nn.Module):
        raise LoadError(f"{label}(...) returned a {type(result).__name__}, not an nn.Module")
    return result


def load_model(
    spec: str, kwargs: dict[str, Any] | None = None, *, device: str = "meta"
) -> LoadedModel:
    """Resolve ``spec`` and construct the model: on ``device`` with initialised weights, or for
    ``"meta"`` with parameters and buffers on meta, falling back to the CPU (see construct.py)."""
    kwargs = dict(kwargs or {})
    where, name = _split_spec(spec)
    path: Path | None = None
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where)
        module = _import_file(path)
    else:
        module = _import_module(where)
    target: Any = module
    for part in name.split("."):
        if not hasattr(target, part):
            found = _candidates(module)
            listing = ", ".join(found) if found else "none"
            raise LoadError(
                f"{where} has no attribute {name!r}. Modules and factories it defines: {listing}."
            )
        target = getattr(target, part)
    label = f"{where}:{name}"

    if isinstance(target, nn.Module):  # built by the model file itself, on import
        model = _construct(target, kwargs, label)
        on = next((t.device.type for t in [*model.parameters(), *model.buffers()] if not t.is_meta), "meta")
        return LoadedModel(model, spec, on, None, kwargs)
    try:
        if device != "meta":
            with torch.device(device):
                return LoadedModel(_construct(target, kwargs, label), spec, device, None, kwargs)
        built = build_on_meta(lambda: _construct(target, kwargs, label))
    except (LoadError, ConfigError):
        raise
    except Exception as e:
        raise _constructor_error(label, e) from e
    if built.meta_error is not None:
        error = built.meta_error
        note = (
            f"constructed on the CPU: construction with parameters on the meta device raised "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}{_user_line(error)}"
        )
        return LoadedModel(built.module, spec, "cpu", note, kwargs)
    if built.off_meta:
        listing = ", ".join(built.off_meta[:3]) + (" ..." if len(built.off_meta) > 3 else "")
        note = f"partly constructed on the CPU: {listing} bypassed register_parameter/register_buffer"
        return LoadedModel(built.module, spec, "cpu", note, kwargs)
    return LoadedModel(built.module, spec, "meta", None, kwargs)


def _constructor_error(label: str, e: Exception) -> LoadError:
    if isinstance(e, TypeError) and "argument" in str(e):
        hint = f" Pass constructor arguments with {param('args')} KEY=VALUE."
    else:
        hint = ""
    return LoadError(f"constructing {label} raised {type(e).__name__}: {e}{_user_line(e)}.{hint}")

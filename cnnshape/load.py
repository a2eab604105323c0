"""Model specs -> ``nn.Module``.

A spec is ``path/to/file.py:Name`` or ``package.module:Name``. ``Name`` may be an ``nn.Module``
subclass, a factory function returning a module, or a module instance. Construction puts the
parameters and buffers on the meta device (no weights allocated or initialised, see
:mod:`cnnshape.construct`); if that fails, on the CPU, and the returned :class:`LoadedModel` says so.
"""
from __future__ import annotations

import ast
import difflib
import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import re
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
from .request import names_file


@dataclass(frozen=True)
class LoadedModel:
    module: nn.Module
    spec: str
    #: ``"meta"`` (every parameter and buffer on meta) or the device the weights were built on.
    constructed_on: str
    #: Why meta construction was abandoned, when it was.
    note: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


_NUMBER = re.compile(r"[-+]?[0-9][0-9_]*")


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
            if _NUMBER.fullmatch(value.strip()):
                # an integer beyond Python's 4,300-digit conversion limit: not a word to pass as text
                raise ConfigError(f"{param('args')} {key}=...: an integer of {len(value.strip()):,} digits is "
                                  "too long to read as a Python literal; pass a smaller value") from None
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
    if path.is_dir():
        raise LoadError(
            f"model file {str(path)!r} is a folder, not a Python file. Give the file inside it "
            f"({path / 'net.py'}:NAME), or the module as package.module:NAME from the folder above it.")
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        raise LoadError(f"model file {str(path)!r} not found{where}. Check the path in the spec.")
    try:
        source = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise LoadError(f"cannot read model file {path}: {e.strerror or e}") from e
    try:
        tree = compile(source, str(path), "exec", ast.PyCF_ONLY_AST)
    except SyntaxError as e:
        if "null bytes" in str(e):
            raise LoadError(f"model file {path} is not Python source (it holds null bytes: a binary file?). "
                            "Give the .py file that defines the model.") from e
        raise LoadError(
            f"syntax error in {path}:{e.lineno}: {e.msg}\n    {(e.text or '').rstrip()}"
        ) from e
    if path.suffix == ".py" and _relative_imports(tree):
        package = _package_module(path)
        if package is not None:
            return _import_in_package(path, *package)
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    mod_name = f"cnnshape_user_{path.stem}_{digest}"
    # a source file of any name (net.txt, a script without .py) is Python source too
    loader = importlib.machinery.SourceFileLoader(mod_name, str(path))
    module_spec = importlib.util.spec_from_file_location(mod_name, path, loader=loader)
    if module_spec is None:
        raise LoadError(f"model file {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    # Let the file import its siblings, as running it as a script would.
    parent = str(path.resolve().parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    sys.modules[mod_name] = module
    try:
        loader.exec_module(module)
    except Exception as e:
        del sys.modules[mod_name]
        raise LoadError(f"importing {path} raised {type(e).__name__}: {_text(e)}{_user_line(e)}"
                        f"{_relative_hint(e, path)}") from e
    return module


def _relative_imports(tree: ast.AST) -> bool:
    """Whether the module imports relatively (``from .blocks import Block``) anywhere."""
    return any(isinstance(node, ast.ImportFrom) and node.level > 0 for node in ast.walk(tree))


def _package_module(path: Path) -> tuple[Path, str] | None:
    """(the folder to import from, the dotted module name) of a file that imports relatively, as
    ``python -m`` would import it: up through the folders holding an ``__init__.py``; a file in a
    folder without one belongs to that folder as a namespace package. None where a folder's name
    is no Python identifier."""
    file = path.resolve()
    parts, folder = [file.stem], file.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    if len(parts) == 1:
        parts.insert(0, folder.name)
        folder = folder.parent
    if not all(part.isidentifier() for part in parts):
        return None
    return folder, ".".join(parts)


def _import_in_package(path: Path, root: Path, dotted: str) -> ModuleType:
    """Import ``path`` as the module ``dotted`` of its package (``root`` on sys.path), so that its
    relative imports resolve as they do under ``python -m``."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(dotted)
    except Exception as e:
        raise LoadError(f"importing {path} (as {dotted}, from {root}) raised {type(e).__name__}: "
                        f"{_text(e)}{_user_line(e)}") from e
    found = getattr(module, "__file__", None)
    if found is None or Path(found).resolve() != path.resolve():
        raise LoadError(
            f"model file {path} imports relatively, so it was imported as {dotted}; but {dotted} is "
            f"{found or 'a namespace without that file'}: another package named {dotted.split('.')[0]!r} comes "
            "first on sys.path. Rename the package, or run cnnshape from the folder that holds it.")
    return module


def _relative_hint(e: Exception, path: Path) -> str:
    if isinstance(e, ImportError) and "no known parent package" in str(e):
        return (f". {path.name} imports relatively (from .x import ...), which needs its package: cnnshape "
                "imports such a file as a module of its package when the file ends in .py and the names of "
                "its folders are Python identifiers; or give the spec as package.module:NAME from the "
                "folder above the package")
    return ""


def _text(e: BaseException) -> str:
    """An exception's message without the C++ stack torch appends to some ("Exception raised from
    ... frame #0: ..."), on at most three lines."""
    text = str(e).split("\nException raised from ")[0].strip()
    lines = text.splitlines()
    return "\n".join(lines[:3]) + (" ..." if len(lines) > 3 else "")


def _import_module(name: str) -> ModuleType:
    _cwd_on_path(name)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        raise LoadError(
            f"module {name!r} not found ({e}). Use FILE.py:NAME for a file, or install the package."
        ) from e
    except SyntaxError as e:
        raise LoadError(f"syntax error in {e.filename}:{e.lineno}: {e.msg}") from e
    except Exception as e:
        raise LoadError(f"importing {name!r} raised {type(e).__name__}: {_text(e)}{_user_line(e)}") from e


def _cwd_on_path(name: str) -> None:
    """Put the working folder first on sys.path when it holds the package (or module) ``name``
    starts with, as ``python -m`` does: ``pkg.net:Net`` run from the folder that holds ``pkg``
    imports that ``pkg``, also from the ``cnnshape`` console script (whose sys.path starts with
    its own folder instead)."""
    top = name.split(".")[0]
    cwd = os.getcwd()
    here = Path(cwd)
    if not ((here / top).is_dir() or (here / f"{top}.py").is_file()):
        return
    if cwd in sys.path or "" in sys.path or "." in sys.path:
        return
    sys.path.insert(0, cwd)


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
    _check_arguments(target, kwargs, label)
    result = target(**kwargs)
    if not isinstance(result, nn.Module):
        raise LoadError(f"{label}(...) returned a {type(result).__name__}, not an nn.Module")
    return result


def _check_arguments(target: Any, kwargs: dict[str, Any], label: str) -> None:
    """A :class:`ConfigError` naming the constructor's parameters when ``kwargs`` do not fit its
    signature (an unknown name, a required one missing), before anything is built."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # a builtin or C callable without a readable signature
        return
    try:
        signature.bind(**kwargs)
    except TypeError as e:
        params = [p for p in signature.parameters.values()]
        listing = ", ".join(_shown(p) for p in params) or "none"
        unknown = [k for k in kwargs if k not in signature.parameters]
        flag = param("args")
        if unknown and not any(p.kind == p.VAR_KEYWORD for p in params):
            names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            close = difflib.get_close_matches(unknown[0], names, n=1)
            guess = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{flag} {unknown[0]}=...: {label} has no parameter {unknown[0]!r}.{guess} "
                              f"Its parameters: {listing}.") from None
        missing = next((p.name for p in params if p.default is p.empty and p.name not in kwargs
                        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)), None)
        if missing is not None:
            raise ConfigError(f"{label} needs {missing!r}: give it with {flag} {missing}=VALUE. "
                              f"Its parameters: {listing}.") from None
        raise ConfigError(f"{label}: {e}. Its parameters: {listing}; give them with {flag} KEY=VALUE.") from None


def _shown(p: inspect.Parameter) -> str:
    """``width=64``, ``num_classes``, ``*args``, ``**kwargs``: a parameter as a message lists it."""
    if p.kind == p.VAR_POSITIONAL:
        return f"*{p.name}"
    if p.kind == p.VAR_KEYWORD:
        return f"**{p.name}"
    if p.default is p.empty:
        return p.name
    default = repr(p.default)
    return f"{p.name}={default if len(default) <= 30 else default[:27] + '...'}"


def load_model(
    spec: str, kwargs: dict[str, Any] | None = None, *, device: str = "meta"
) -> LoadedModel:
    """Resolve ``spec`` and construct the model: on ``device`` with initialised weights, or for
    ``"meta"`` with parameters and buffers on meta, falling back to the CPU (see construct.py)."""
    kwargs = dict(kwargs or {})
    where, name = _split_spec(spec)
    path: Path | None = None
    if names_file(where):
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
            f"{type(error).__name__}: {_text(error).splitlines()[0] if str(error) else ''}{_user_line(error)}"
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
    return LoadError(f"constructing {label} raised {type(e).__name__}: {_text(e)}{_user_line(e)}.{hint}")


def load_attribute(spec: str) -> Any:
    """The object a ``file.py:name`` / ``package.module:name`` spec names, without calling it
    (``cnnshape scan``'s spaces: a function yielding candidates). The file is imported as
    :func:`load_model` imports it, under the same module name in every process."""
    where, name = _split_spec(spec)
    module = _import_file(Path(where)) if names_file(where) else _import_module(where)
    target: Any = module
    for part in name.split("."):
        if not hasattr(target, part):
            raise LoadError(f"{where} has no attribute {name!r}")
        target = getattr(target, part)
    return target

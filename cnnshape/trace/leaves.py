"""``leaves=``: the module classes a tracer keeps as one node, from names or classes."""
from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from torch import nn

from ..errors import ConfigError, param


def _same_class(a: type, b: type) -> bool:
    """``b`` is ``a`` or the same class from the same file imported under another module name
    (a model file loaded by path and also imported as a package module)."""
    def file_of(cls: type) -> str | None:
        return getattr(sys.modules.get(cls.__module__), "__file__", None)

    return a is b or (a.__qualname__ == b.__qualname__ and file_of(a) is not None and file_of(a) == file_of(b))


def resolve_leaves(names: Sequence[str | type], model: nn.Module | None = None) -> tuple[type, ...]:
    """``"pkg.mod.Block"``, a class, or (given ``model``) a bare class name of one of the model's
    submodules (``"Bottleneck"``) -> the classes to keep as leaves."""
    # the model's classes, for bare class names: a walk of the whole tree, so only when names are given
    present = {type(m) for m in model.modules()} if model is not None and names else set()
    classes = []
    for name in names:
        if isinstance(name, type):
            cls = name
        elif "." not in name and model is not None:
            matches = [c for c in present if c.__name__ == name]
            if not matches:
                known = ", ".join(sorted({c.__name__ for c in present}))
                raise ConfigError(f"{param('leaves')} {name!r}: the model has no submodule of that class "
                                  f"(it has: {known})")
            cls = matches[0]
        else:
            module_name, _, attr = name.rpartition(".")
            try:
                cls = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError, ValueError) as e:
                raise ConfigError(
                    f"{param('leaves')} {name!r}: cannot import it ({e}). Give pkg.module.ClassName, or the bare "
                    f"class name of one of the model's submodules."
                ) from e
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ConfigError(f"{param('leaves')} {name!r} is not an nn.Module subclass")
        classes.append(cls)
        classes += [c for c in present if c is not cls and _same_class(cls, c)]
    return tuple(classes)

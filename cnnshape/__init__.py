"""cnnshape: static analysis of PyTorch CNN architectures.

    >>> import cnnshape
    >>> report = cnnshape.analyze("examples/resnet.py:ResNet50", [(1, 3, 224, 224)])
    >>> report.totals.macs
    4089184256

The public names are imported lazily so that ``cnnshape --help`` does not import torch.
"""
from __future__ import annotations

import warnings
from typing import Any

from .errors import (
    CnnshapeError,
    ConfigError,
    EnvironmentFault,
    InputError,
    InternalError,
    LoadError,
    OutputError,
    ShapeError,
    TraceError,
)

__version__ = "0.1.0"

# torch warns when numpy is absent (it is optional); cnnshape never converts tensors to numpy.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

_LAZY = {
    "analyze": ("cnnshape.api", "analyze"),
    "Report": ("cnnshape.report", "Report"),
    "LayerRecord": ("cnnshape.report", "LayerRecord"),
    "Totals": ("cnnshape.report", "Totals"),
    "InputSpec": ("cnnshape.inputs", "InputSpec"),
    "Request": ("cnnshape.request", "Request"),
    "Cost": ("cnnshape.analyse.flops", "Cost"),
    "verify": ("cnnshape.api", "verify"),
    "sizes": ("cnnshape.api", "sizes"),
    "compare": ("cnnshape.api", "compare"),
    "Comparison": ("cnnshape.comparison", "Comparison"),
    "prune_plan": ("cnnshape.api", "prune_plan"),
    "memory": ("cnnshape.api", "memory"),
    "scan": ("cnnshape.api", "scan"),
    "ScanRecord": ("cnnshape.scanner.records", "ScanRecord"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'cnnshape' has no attribute {name!r}")


__all__ = [
    "analyze", "sizes", "verify", "memory",
    "Request", "Report", "LayerRecord", "Cost", "Totals", "InputSpec", "CnnshapeError",
    "ConfigError", "EnvironmentFault", "InputError", "InternalError", "LoadError", "OutputError", "ShapeError",
    "TraceError", "__version__",
    "compare", "Comparison",
    "prune_plan",
    "scan", "ScanRecord",
]

"""The words every layer shares, defined once at the bottom of the house.

Torch-free and import-free, so the CLI (``cnnshape --help`` must not import torch), the config
reader and the analysis all read the same names: adding a tracer or a format is one edit here.
"""
from __future__ import annotations

#: ``tracer=`` / ``--tracer``: ``auto`` is fx, falling back to eager when fx cannot trace or run
TRACERS = ("auto", "fx", "eager")
#: the tracers that produce a graph (``auto`` picks one of them)
CONCRETE_TRACERS = ("fx", "eager")

#: ``cnnshape summary --format``
REPORT_FORMATS = ("table", "markdown", "csv", "json")
#: ``--format`` of the commands that print a table or its JSON (``rf``, ``sizes``)
TABLE_OR_JSON = ("table", "json")
#: ``cnnshape check --format``
CHECK_FORMATS = ("text", "json", "github", "junit")
#: ``cnnshape graph -o FILE``: the file's extension picks one
GRAPH_FORMATS = ("dot", "svg", "png", "pdf")
#: ``--rankdir`` of the diagram
RANKDIRS = ("TB", "LR")
#: ``cnnshape report --color-by``: what the HTML page colours the diagram's nodes by at first
COLOR_BY = ("type", "macs", "params", "memory", "rf")

#: dtypes a verification pass may cast the model and its floating inputs to (``--dtype``)
VERIFY_DTYPES = ("float16", "bfloat16")
#: where a verification pass may run (``--device``)
DEVICE_CHOICES = "cpu, cuda, cuda:N, mps or auto"

#: the schema id of each JSON document cnnshape writes (docs/json.md)
REPORT_SCHEMA = "cnnshape.report/1"
SIZES_SCHEMA = "cnnshape.sizes/1"
BASELINE_SCHEMA = "cnnshape.baseline/1"
PRUNE_SCHEMA = "cnnshape.prune/1"
MEMORY_SCHEMA = "cnnshape.memory/1"

#: ``cnnshape memory --optimizer`` and ``--amp``
OPTIMIZERS = ("none", "sgd", "momentum", "adam", "adamw")
AMP_CHOICES = ("bf16", "fp16")

#: the input when none is given: one 224x224 RGB image
DEFAULT_SHAPE = (1, 3, 224, 224)
DEFAULT_INPUT = ",".join(str(d) for d in DEFAULT_SHAPE)

#: ``cnnshape compare``: its formats, how it aligns the stages of the models, its JSON schema id
COMPARE_FORMATS = ("table", "markdown", "json", "html")
COMPARE_ALIGNS = ("name", "position")
COMPARE_SCHEMA = "cnnshape.compare/1"

#: ``cnnshape scan``: the schema id of each JSONL record, its statuses and summary formats
SCAN_SCHEMA = "cnnshape.scan/1"
SCAN_STATUSES = ("pass", "fail", "error")
SCAN_ERROR_KINDS = ("exception", "timeout", "crash")
SCAN_FORMATS = ("table", "csv", "none")

"""Architecture diagrams: a finished Report as a ``graphviz.Digraph`` (docs/graph.md).

Reads only the Report's rows, edges and module table; never recomputes. Nodes are rows (layers,
or modules collapsed by :meth:`Report.collapse`); edges carry the shape of the tensor flowing
along them; clusters show the module hierarchy above the rows. Rendering to SVG/PNG/PDF needs the
Graphviz ``dot`` program; DOT source needs nothing.
"""
from __future__ import annotations

import html
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

import graphviz

from ..errors import ConfigError, EnvironmentFault, InternalError
from ..report import LayerRecord, Report, group_at, scopes_of
from ..units import si
from ..vocab import GRAPH_FORMATS, RANKDIRS
from .text import per_axis_text, shape_text

TIMES = "×"  # shapes and per-axis values are written 1×64×56×56 in diagrams

INSTALL_HINT = (
    "install Graphviz: `apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) "
    "or `conda install -c conda-forge graphviz`; or write .dot output, which needs no Graphviz "
    "program (render it later with `dot -Tsvg net.dot -o net.svg`)"
)

#: layer family by type name (module class name, or function/method name for functional calls)
FAMILY_OF_TYPE: dict[str, str] = {
    **dict.fromkeys((
        "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
        "LazyConv1d", "LazyConv2d", "LazyConv3d", "conv1d", "conv2d", "conv3d",
        "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    ), "conv"),
    **dict.fromkeys((
        "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "GroupNorm", "LayerNorm",
        "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "LocalResponseNorm", "batch_norm",
        "group_norm", "layer_norm", "instance_norm", "local_response_norm", "normalize",
    ), "norm"),
    **dict.fromkeys((
        "ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "SELU", "CELU", "GELU", "SiLU",
        "Mish", "Sigmoid", "Tanh", "Hardswish", "Hardsigmoid", "Hardtanh", "Softmax",
        "LogSoftmax", "Softplus", "Softsign", "Tanhshrink", "GLU", "relu", "relu_", "relu6",
        "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "sigmoid", "tanh",
        "hardswish", "hardsigmoid", "hardtanh", "softmax", "log_softmax", "softplus", "glu",
    ), "activation"),
    **dict.fromkeys((
        "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
        "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d",
        "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "LPPool1d", "LPPool2d", "FractionalMaxPool2d",
        "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
        "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
        "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    ), "pooling"),
    **dict.fromkeys(("Linear", "LazyLinear", "Bilinear", "linear", "bilinear"), "linear"),
    **dict.fromkeys((
        "add", "iadd", "sub", "isub", "mul", "imul", "cat", "concat", "concatenate", "stack",
        "hstack", "vstack",
    ), "merge"),
}

#: fill colour per family; "block" is a collapsed module, "io" the inputs and outputs
FAMILY_COLOURS: dict[str, str] = {
    "conv": "#c9daf8",
    "norm": "#fff2cc",
    "activation": "#f4cccc",
    "pooling": "#d9ead3",
    "linear": "#d9d2e9",
    "merge": "#fce5cd",
    "other": "#eeeeee",
    "block": "#d0e0e3",
    "io": "#ffffff",
}

_FONT = "Helvetica"


def _esc(text: str) -> str:
    """Text for an HTML-like label (quotes need no escaping in text)."""
    return html.escape(text, quote=False)


def family(layer: LayerRecord) -> str:
    if layer.kind in ("input", "output"):
        return "io"
    if layer.kind == "group":
        return "block"
    return FAMILY_OF_TYPE.get(layer.type, "other")


def _is_default(value: Any, default: int) -> bool:
    values = value if isinstance(value, tuple) else (value,)
    return value is None or all(v == default for v in values)


def key_attributes(layer: LayerRecord) -> str:
    """The few hyper-parameters that matter, e.g. ``3→64 k7 s2 p3`` for a convolution."""
    a = dict(layer.attrs)
    parts: list[str] = []
    if "in_channels" in a and "out_channels" in a:
        parts.append(f"{a['in_channels']}→{a['out_channels']}")
    elif "in_features" in a and "out_features" in a:
        parts.append(f"{a['in_features']}→{a['out_features']}")
    elif "num_features" in a:
        parts.append(str(a["num_features"]))
    elif "num_groups" in a:
        parts.append(f"{a['num_groups']} groups")
    if "kernel_size" in a:
        parts.append(f"k{per_axis_text(a['kernel_size'], TIMES)}")
        if "stride" in a:
            parts.append(f"s{per_axis_text(a['stride'], TIMES)}")
        if "padding" in a and not isinstance(a["padding"], str):
            parts.append(f"p{per_axis_text(a['padding'], TIMES)}")
        elif "padding" in a:
            parts.append(f"p={a['padding']}")
        if not _is_default(a.get("dilation"), 1):
            parts.append(f"d{per_axis_text(a['dilation'], TIMES)}")
        if not _is_default(a.get("groups"), 1):
            parts.append(f"g{a['groups']}")
    if "output_size" in a:
        parts.append(f"→{per_axis_text(a['output_size'], TIMES)}")
    if a.get("scale_factor") is not None:
        parts.append(f"×{per_axis_text(a['scale_factor'], TIMES)}")
    if a.get("mode") is not None and layer.type.startswith("Upsample"):
        parts.append(str(a["mode"]))
    return " ".join(parts)


def _label(layer: LayerRecord) -> str:
    """An HTML-like label: bold type and key attributes, then the name and parameter count; a
    collapsed module adds its MACs and its input -> output shapes."""
    e = _esc
    head = f"<B>{e(layer.type)}</B>"
    attrs = key_attributes(layer)
    if attrs:
        head += f" {e(attrs)}"
    lines = [head]
    detail = [layer.name] if layer.name != layer.type else []
    if layer.params:
        detail.append(f"{si(layer.params)} params")
    if layer.kind == "group":
        if layer.macs:
            detail.append(f"{si(layer.macs)} MACs")
        ins = ", ".join(shape_text(s, TIMES) for s in layer.input_shapes)
        out = shape_text(layer.output_shape or (), TIMES)
        lines.append(f'<FONT POINT-SIZE="9">{e(ins)} → {e(out)}</FONT>')
    if detail:
        lines.insert(1, f'<FONT POINT-SIZE="9" COLOR="#555555">{e(" · ".join(detail))}</FONT>')
    return "<" + "<BR/>".join(lines) + ">"


def _node_style(fam: str) -> dict[str, str]:
    style = {"fillcolor": FAMILY_COLOURS[fam], "style": "filled,rounded", "shape": "box"}
    if fam == "merge":
        style.update(shape="ellipse", style="filled")
    elif fam == "io":
        style.update(style="filled,bold", shape="box", penwidth="2")
    elif fam == "block":
        style.update(style="filled,rounded,bold")
    return style


@dataclass
class _Cluster:
    path: str
    nodes: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    children: dict[str, _Cluster] = field(default_factory=dict)


def _row_of(name: str, rows: set[str], depth: int | None) -> str:
    """The row an original node name belongs to in a report collapsed to ``depth``."""
    if name in rows:
        return name
    if depth is not None:
        group = group_at(name, depth)
        if group in rows:
            return group
    raise InternalError(f"graph edge endpoint {name!r} matches no row of the report "
                        f"(depth {depth})")


def _edges(report: Report) -> list[tuple[str, str, tuple[int, ...]]]:
    """Edges between rows: endpoints mapped to their collapsed rows, edges inside a collapsed group
    dropped, duplicates removed (first occurrence order)."""
    rows = {layer.name for layer in report.layers}
    seen: dict[tuple[str, str, tuple[int, ...]], None] = {}
    for e in report.edges:
        source = _row_of(e.source, rows, report.depth)
        target = _row_of(e.target, rows, report.depth)
        if source != target:
            seen.setdefault((source, target, e.shape), None)
    return list(seen)


_EdgeKey = tuple[str, str, tuple[int, ...]]


def _io_label(title: str, shape: tuple[int, ...]) -> str:
    return (f"<<B>{_esc(title)}</B><BR/>"
            f'<FONT POINT-SIZE="9">{_esc(shape_text(shape, TIMES))}</FONT>>')


def _output_nodes(
    layer: LayerRecord, incoming: list[_EdgeKey]
) -> list[tuple[str, str, _EdgeKey | None]]:
    """(node name, label, the incoming edge it takes) per model output: one node per output when
    the edges into the output row pair up with its outputs in order, else one node for all."""
    outs = layer.output_shapes
    if len(outs) > 1 and len(incoming) == len(outs) and all(
        edge[2] == shape for edge, (_, shape) in zip(incoming, outs)
    ):
        return [(f"{layer.name}{key}", _io_label(f"output{key}", shape), edge)
                for edge, (key, shape) in zip(incoming, outs)]
    if len(outs) == 1:
        return [(layer.name, _io_label("output", outs[0][1]), None)]
    return [(layer.name, f"<<B>output</B><BR/>{len(outs)} tensors>", None)]


def _ids(names: list[str]) -> dict[str, str]:
    """DOT node ids: the row names, with ':' (DOT's port separator in edges) replaced."""
    return {name: name.replace(":", "_") for name in names}


def _legend(families: list[str]) -> str:
    cells = "".join(
        f'<TD BGCOLOR="{FAMILY_COLOURS[f]}" STYLE="rounded" BORDER="1">{f}</TD>' for f in families
    )
    return f'<<TABLE BORDER="0" CELLSPACING="4" CELLPADDING="4"><TR>{cells}</TR></TABLE>>'


def to_digraph(report: Report, rankdir: str = "TB") -> graphviz.Digraph:
    """The report's rows and edges as a Digraph (displays inline in Jupyter)."""
    if rankdir not in RANKDIRS:
        raise ConfigError(f"rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    edges = _edges(report)
    g = graphviz.Digraph(name=report.model)
    title = f"{report.model}: {si(report.totals.params)} params, {si(report.totals.macs)} MACs"
    if report.depth:
        title += f" (depth {report.depth})"
    g.attr(rankdir=rankdir, label=title, labelloc="t", fontname=_FONT, fontsize="16",
           nodesep="0.25", ranksep="0.3", newrank="true")
    g.attr("node", fontname=_FONT, fontsize="11", margin="0.12,0.04", height="0.3")
    g.attr("edge", fontname=_FONT, fontsize="9", fontcolor="#444444", color="#555555",
           arrowsize="0.6")

    root = _Cluster("")
    families: list[str] = []
    # each output's own node: the incoming edges are rewired to it below
    rewired: dict[_EdgeKey, str] = {}
    names: list[str] = []
    ends: dict[str, list[str]] = {"input": [], "output": []}
    for layer in report.layers:
        fam = family(layer)
        if fam not in families and fam != "io":
            families.append(fam)
        if layer.kind == "output":
            incoming = [e for e in edges if e[1] == layer.name]
            for node_name, label, edge in _output_nodes(layer, incoming):
                root.nodes.append((node_name, {"label": label, **_node_style(fam)}))
                names.append(node_name)
                ends["output"].append(node_name)
                if edge is not None:
                    rewired[edge] = node_name
            continue
        if layer.kind == "input":
            ends["input"].append(layer.name)
            label = _io_label(f"input {layer.name}", layer.output_shape or ())
        else:
            label = _label(layer)
        cluster = root
        for path in scopes_of(layer.name):
            cluster = cluster.children.setdefault(path, _Cluster(path))
        cluster.nodes.append((layer.name, {"label": label, "tooltip": layer.source or layer.name,
                                           **_node_style(fam)}))
        names.append(layer.name)
    ids = _ids(names)

    def emit(graph: graphviz.Digraph, cluster: _Cluster) -> None:
        for name, attrs in cluster.nodes:
            graph.node(ids[name], **attrs)
        for child in cluster.children.values():
            with graph.subgraph(name=f"cluster_{child.path}") as sub:
                kind = report.modules.get(child.path, "")
                sub.attr(label=f"{child.path}: {kind}" if kind else child.path, labeljust="l",
                         style="rounded,dashed", color="#888888", fontsize="10", fontname=_FONT)
                emit(sub, child)

    emit(g, root)
    # several inputs start on the first rank, several outputs end on the last
    for rank, kind in (("source", "input"), ("sink", "output")):
        if len(ends[kind]) > 1:
            with g.subgraph(name=f"{kind}s") as same:
                same.attr(rank=rank)
                for n in ends[kind]:
                    same.node(ids[n])
    for source, target, shape in edges:
        head = rewired.get((source, target, shape), target)
        g.edge(ids[source], ids[head], label=f" {shape_text(shape, TIMES)} ")
    legend = _legend([f for f in FAMILY_COLOURS if f in families])
    g.node("__legend__", label=legend, shape="plaintext", fontsize="9")
    return g


def render_graph(digraph: graphviz.Digraph, fmt: str) -> bytes:
    """DOT source, or the drawing rendered by the Graphviz ``dot`` program."""
    if fmt not in GRAPH_FORMATS:
        raise ConfigError(f"unknown diagram format {fmt!r}: use one of {', '.join(GRAPH_FORMATS)}")
    if fmt == "dot":
        return digraph.source.encode("utf-8")
    require_dot()
    try:
        return digraph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise EnvironmentFault(f"the Graphviz `dot` program is not on PATH; {INSTALL_HINT}") from None
    except subprocess.CalledProcessError as e:
        detail = e.stderr.decode("utf-8", "replace").strip() if isinstance(e.stderr, bytes) else ""
        raise EnvironmentFault(
            f"Graphviz `dot` failed to render {fmt} (exit {e.returncode})"
            + (f": {detail}" if detail else "") + "; .dot output needs no Graphviz program"
        ) from None


def require_dot() -> None:
    if shutil.which("dot") is None:
        raise EnvironmentFault(f"the Graphviz `dot` program is not on PATH; {INSTALL_HINT}")

"""Analytic output shapes of sliding-window and reshaping layers, cross-checked against the shape
the meta execution produced. A disagreement is a cnnshape bug and is raised, never resolved."""
from __future__ import annotations

import math
from collections.abc import Callable

from ..arith import as_tuple, conv_out, conv_transpose_out, pool_out, same_padding
from ..errors import InternalError, ShapeError
from ..registry import Registry
from ..trace.records import Node

Shape = tuple[int, ...]
ShapeFormula = Callable[[Node, Shape], Shape]
SHAPES: Registry[str, ShapeFormula] = Registry("shapes")


def _split(x: Shape, nd: int) -> tuple[Shape, Shape]:
    """(leading dims incl. channels, spatial dims)."""
    return x[:-nd], x[-nd:]


def _conv_padding(node: Node, nd: int) -> list[tuple[int, int]]:
    padding = node.attr("padding", 0)
    dilation = as_tuple(node.attr("dilation", 1), nd)
    kernel = as_tuple(node.attr("kernel_size"), nd)
    if padding == "valid":
        return [(0, 0)] * nd
    if padding == "same":
        return [same_padding(k, d) for k, d in zip(kernel, dilation)]
    return [(p, p) for p in as_tuple(padding, nd)]


def conv_shape(nd: int) -> ShapeFormula:
    def formula(node: Node, x: Shape) -> Shape:
        lead, spatial = _split(x, nd)
        kernel = as_tuple(node.attr("kernel_size"), nd)
        stride = as_tuple(node.attr("stride", 1), nd)
        dilation = as_tuple(node.attr("dilation", 1), nd)
        pads = _conv_padding(node, nd)
        out = tuple(
            conv_out(w + lo + hi, k, s, 0, d)
            for w, k, s, (lo, hi), d in zip(spatial, kernel, stride, pads, dilation)
        )
        return (*lead[:-1], node.attr("out_channels"), *out)

    formula.__doc__ = f"Conv{nd}d: floor((W + 2P − D·(F−1) − 1)/S) + 1 per spatial axis."
    return formula


def conv_transpose_shape(nd: int) -> ShapeFormula:
    def formula(node: Node, x: Shape) -> Shape:
        lead, spatial = _split(x, nd)
        args = [as_tuple(node.attr(k, d), nd) for k, d in
                (("kernel_size", 1), ("stride", 1), ("padding", 0), ("dilation", 1), ("output_padding", 0))]
        for axis, (s, d, op) in enumerate(zip(args[1], args[3], args[4])):
            # the meta kernel accepts this, a real forward does not
            if op >= s and op >= d:
                raise ShapeError(
                    f"{node.type} {node.name!r} (input {'x'.join(map(str, x))}): output_padding={op} "
                    f"along spatial axis {axis} must be smaller than its stride ({s}) or its dilation "
                    f"({d}); torch rejects this layer in a real forward. Lower output_padding."
                )
        out = tuple(conv_transpose_out(w, *per_axis) for w, *per_axis in zip(spatial, *args))
        if min(out) < 1:
            # the meta kernel returns an empty tensor here, a real forward raises
            raise ShapeError(
                f"{node.type} {node.name!r} receives {'x'.join(map(str, x))}: its output would be "
                f"{'x'.join(map(str, out))} (per axis (W−1)·S − 2P + D·(F−1) + output_padding + 1), "
                f"empty. Lower the padding or use a larger input."
            )
        return (*lead[:-1], node.attr("out_channels"), *out)

    formula.__doc__ = f"ConvTranspose{nd}d: (W−1)·S − 2P + D·(F−1) + output_padding + 1."
    return formula


def pool_shape(nd: int) -> ShapeFormula:
    def formula(node: Node, x: Shape) -> Shape:
        lead, spatial = _split(x, nd)
        kernel = as_tuple(node.attr("kernel_size"), nd)
        stride = as_tuple(node.attr("stride") or node.attr("kernel_size"), nd)
        padding = as_tuple(node.attr("padding", 0), nd)
        dilation = as_tuple(node.attr("dilation", 1), nd)
        ceil_mode = bool(node.attr("ceil_mode", False))
        out = tuple(pool_out(*a, ceil_mode) for a in zip(spatial, kernel, stride, padding, dilation))
        return (*lead, *out)

    formula.__doc__ = f"Max/AvgPool{nd}d: the conv formula, rounded up with ceil_mode."
    return formula


def adaptive_shape(nd: int) -> ShapeFormula:
    def formula(node: Node, x: Shape) -> Shape:
        lead, spatial = _split(x, nd)
        size = node.attr("output_size")
        sizes = size if isinstance(size, tuple) else (size,) * nd
        return (*lead, *(w if s is None else s for w, s in zip(spatial, sizes)))

    formula.__doc__ = f"AdaptivePool{nd}d: the requested output_size (None keeps the input size)."
    return formula


@SHAPES.register("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d")
def upsample_shape(node: Node, x: Shape) -> Shape:
    """size, or floor(W·scale_factor) per spatial axis."""
    nd = len(x) - 2
    lead, spatial = _split(x, nd)
    size = node.attr("size")
    if size is not None:
        return (*lead, *as_tuple(size, nd))
    scale = node.attr("scale_factor")
    scales = scale if isinstance(scale, tuple) else (scale,) * nd
    return (*lead, *(math.floor(w * float(s)) for w, s in zip(spatial, scales)))


@SHAPES.register("Flatten")
def flatten_shape(node: Node, x: Shape) -> Shape:
    """Dims start_dim..end_dim multiplied into one."""
    start = node.attr("start_dim", 1) % len(x)
    end = node.attr("end_dim", -1) % len(x)
    return (*x[:start], math.prod(x[start:end + 1]), *x[end + 1:])


@SHAPES.register("Linear")
def linear_shape(node: Node, x: Shape) -> Shape:
    """(*, in_features) -> (*, out_features)."""
    return (*x[:-1], node.attr("out_features"))


for _nd in (1, 2, 3):
    SHAPES.add(conv_shape(_nd), f"Conv{_nd}d")
    SHAPES.add(conv_transpose_shape(_nd), f"ConvTranspose{_nd}d")
    SHAPES.add(pool_shape(_nd), f"MaxPool{_nd}d", f"AvgPool{_nd}d")
    SHAPES.add(adaptive_shape(_nd), f"AdaptiveAvgPool{_nd}d", f"AdaptiveMaxPool{_nd}d")


def expected_shape(node: Node) -> Shape | None:
    """The analytic output shape of a module node, or None when no formula applies."""
    formula = SHAPES.get(node.type) if node.kind == "module" else None
    if formula is None or not node.input_metas:
        return None
    return formula(node, node.input_metas[0].shape)


def check_shape(node: Node) -> Shape | None:
    """Compare the analytic and the propagated output shape; raise on disagreement."""
    expected = expected_shape(node)
    actual = node.output.shape if node.output else None
    if expected is not None and tuple(expected) != actual:
        raise InternalError(
            f"cnnshape bug: for {node.type} {node.name!r} on input {node.input_metas[0]} the size "
            f"formula gives {'x'.join(map(str, expected))} but torch produced "
            f"{'x'.join(map(str, actual or ()))}. Please report this with the model."
        )
    return expected

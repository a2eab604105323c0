"""How channels flow through each ATen op: one registry, keyed by op, filled by :func:`rule`.

A rule reads the labels of the op's tensor arguments (``ctx.tensors``), joins the ids that must be
removed together (``ctx.channels``) and returns the label of the op's first output (None: it has
no channel axis to follow). An op with no rule makes every channel it meets unprunable, with the
op named as the reason (:func:`unknown`): never silently wrong.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..trace.records import OpCall, TensorMeta
from .channels import Channels, Label


@dataclass
class OpContext:
    call: OpCall
    node: str  #: the traced node the op ran in
    #: the op's tensor arguments in schema order (a list argument such as cat's flattened), each
    #: with its label (None: not a tensor whose channels are followed: a parameter, a constant)
    tensors: list[tuple[TensorMeta, Label | None]]
    channels: Channels
    #: the leaf module the node called (its path), with its own tensors: name -> shape
    module: str | None
    own: dict[str, tuple[int, ...]]
    #: a tensor the module shares with another (tied weights): name -> (layer, tensor) where it
    #: was first registered, so both meet the same channel ids
    aliases: dict[str, tuple[str, str]]

    @property
    def out(self) -> TensorMeta:
        return self.call.outputs[0]

    def label(self, i: int = 0) -> Label | None:
        return self.tensors[i][1] if i < len(self.tensors) else None

    def own_tensor(self, name: str, shape: tuple[int, ...] | None) -> str | None:
        """The module's own tensor the op received as ``name`` (by name, else by shape)."""
        if shape is None:
            return None
        if self.own.get(name) == shape:
            return name
        return next((k for k, s in self.own.items() if s == shape), None)

    def param(self, name: str, axis: int, n: int, role: str, whole: bool = False) -> tuple[int, ...]:
        """The channel ids of axis ``axis`` of the module's own tensor ``name``."""
        assert self.module is not None
        layer, tensor = self.aliases.get(name, (self.module, name))
        return self.channels.param(layer, tensor, axis, n, role, whole)

    def fix(self, label: Label | None, reason: str) -> None:
        if label is not None:
            self.channels.fix(label.ids, f"{reason} (at {self.node!r})")


Rule = Callable[[OpContext], Label | None]
RULES: dict[str, Rule] = {}


def rule(*ops: str) -> Callable[[Rule], Rule]:
    """Register ``f`` as the channel rule of ``ops`` (each op once)."""
    def register(f: Rule) -> Rule:
        for op in ops:
            if op in RULES:
                raise ValueError(f"{op} already has a channel rule ({RULES[op].__name__})")
            RULES[op] = f
        return f
    return register


def unknown(ctx: OpContext) -> None:
    for _, label in ctx.tensors:
        ctx.fix(label, f"{ctx.call.op} has no channel rule")


def moved(label: Label, in_rank: int, out: TensorMeta) -> Label | None:
    """``label`` on an output of another rank, right-aligned (broadcasting), if the size holds."""
    axis = label.axis + len(out.shape) - in_rank
    if label.outer:
        if 0 <= axis < len(out.shape) - 1 and out.shape[axis:axis + 2] == (label.outer, len(label) // label.outer):
            return Label(axis, label.ids, label.outer, label.literal)
        return None
    if 0 <= axis < len(out.shape) and out.shape[axis] == len(label):
        return Label(axis, label.ids)
    return None


# --- ops that keep every channel where it is


@rule("aten.relu", "aten.relu_", "aten.hardtanh", "aten.hardtanh_", "aten.sigmoid", "aten.sigmoid_",
      "aten.tanh", "aten.tanh_", "aten.gelu", "aten.silu", "aten.silu_", "aten.hardswish", "aten.hardswish_",
      "aten.hardsigmoid", "aten.hardsigmoid_", "aten.leaky_relu", "aten.leaky_relu_", "aten.elu", "aten.elu_",
      "aten.clone", "aten.contiguous", "aten.alias", "aten.detach", "aten._to_copy", "aten.dropout",
      "aten.native_dropout", "aten.clamp", "aten.clamp_", "aten.neg", "aten.exp", "aten.sqrt", "aten.rsqrt",
      "aten.abs", "aten.softplus", "aten.mish", "aten.max_pool1d", "aten.max_pool2d", "aten.max_pool3d",
      "aten.max_pool2d_with_indices", "aten.max_pool3d_with_indices", "aten.avg_pool1d", "aten.avg_pool2d",
      "aten.avg_pool3d", "aten._adaptive_avg_pool2d", "aten._adaptive_avg_pool3d", "aten.adaptive_avg_pool1d",
      "aten.adaptive_max_pool2d", "aten.adaptive_max_pool1d", "aten.adaptive_max_pool3d",
      "aten.upsample_nearest2d", "aten.upsample_bilinear2d", "aten.upsample_nearest1d", "aten.upsample_nearest3d",
      "aten.upsample_bicubic2d", "aten.upsample_linear1d", "aten.upsample_trilinear3d",
      "aten._upsample_nearest_exact2d", "aten.constant_pad_nd", "aten.reflection_pad2d", "aten.replication_pad2d",
      "aten.reflection_pad1d", "aten.replication_pad1d", "aten.reflection_pad3d", "aten.replication_pad3d",
      "aten.softmax", "aten._softmax", "aten.log_softmax", "aten._log_softmax", "aten.pixel_shuffle",
      "aten.pixel_unshuffle", "aten.mul_", "aten.add_", "aten.div_")
def keep_channels(ctx: OpContext) -> Label | None:
    """Channel ``i`` in, channel ``i`` out (element-wise, pooling, padding, upsampling, a softmax
    over any axis: fewer channels change its values, not its layout). Pixel (un)shuffle mixes
    channels with pixels: refused."""
    label = ctx.label(0)
    if label is None:
        return None
    op = ctx.call.op
    if op in ("aten.pixel_shuffle", "aten.pixel_unshuffle"):
        ctx.fix(label, f"{op} mixes channels with pixels")
        return None
    if op in ("aten.mul_", "aten.add_", "aten.div_"):
        return elementwise(ctx)
    out = moved(label, len(ctx.tensors[0][0].shape), ctx.out)
    if out is None:
        ctx.fix(label, f"{op} changes the channel count")
    return out


@rule("aten.add", "aten.sub", "aten.mul", "aten.div", "aten.maximum", "aten.minimum", "aten.where",
      "aten.pow", "aten.rsub", "aten.addcmul", "aten.lerp")
def elementwise(ctx: OpContext) -> Label | None:
    """Broadcasting: every input that spans the output's channel axis must keep the same channels
    (a residual add); one of size 1 there broadcasts and is not tied."""
    out = ctx.out
    placed = []
    for meta, label in ctx.tensors:
        if label is not None:
            here = moved(label, len(meta.shape), out)
            if here is None:
                if len(label) > 1:
                    ctx.fix(label, f"{ctx.call.op} broadcasts these channels")
                continue
            placed.append(here)
    if not placed:
        return None
    axis = placed[0].axis
    for other in placed[1:]:
        if (other.axis, other.outer, other.literal) != (axis, placed[0].outer, placed[0].literal):
            for m in placed:
                ctx.fix(m, f"{ctx.call.op} combines tensors whose channels lie on different axes")
            return None
        ctx.channels.join(placed[0].ids, other.ids)
    for meta, label in ctx.tensors:  # an unfollowed tensor of full size there fixes the count
        if label is None and meta.shape:
            at = axis - len(out.shape) + len(meta.shape)
            if 0 <= at < len(meta.shape) and meta.shape[at] == out.shape[axis] > 1:
                ctx.fix(placed[0], f"{ctx.call.op} combines them with a tensor of fixed size "
                                   f"{'x'.join(map(str, meta.shape))}")
    return placed[0]


# --- layers with parameters


@rule("aten.convolution", "aten._convolution", "aten.conv2d", "aten.conv1d", "aten.conv3d")
def convolution(ctx: OpContext) -> Label | None:
    """Output channels are the weight's rows. groups=1: the weight's columns read the input's
    channels. Depthwise (one input channel per group): each input channel makes ``m`` outputs and
    ``groups`` shrinks with the channels. Other grouped convs: the ``i``-th channel of every group
    goes together, so every group keeps as many."""
    x, (w_meta, _) = ctx.label(0), ctx.tensors[1] if len(ctx.tensors) > 1 else (None, None)
    weight = ctx.own_tensor("weight", w_meta.shape if w_meta else None)
    if ctx.module is None or weight is None or w_meta is None:
        ctx.fix(x, "a convolution whose weight is not a module's own parameter")
        return None
    if ctx.call.arg("transposed"):
        return _transposed(ctx, x, weight, w_meta)
    groups = int(ctx.call.arg("groups", default=1))
    c_out, c_in_g = w_meta.shape[0], w_meta.shape[1]
    c_in = ctx.tensors[0][0].shape[1]
    layer = ctx.module
    out = ctx.param(weight, 0, c_out, "out")
    _bias(ctx, out)
    if x is None or x.axis != 1:
        _unfollowed_input(ctx, weight, 1, c_in_g)
        if groups != 1:
            ctx.channels.fix(out, f"the grouped input of {layer!r} has channels cnnshape cannot follow")
        return Label(1, out)
    if groups == 1:
        ctx.channels.join(x.ids, ctx.param(weight, 1, c_in, "in"))
    elif c_in_g == 1:  # depthwise: input channel k makes outputs k·m .. k·m+m-1
        m = c_out // c_in
        for k, i in enumerate(x.ids):
            for j in range(m):
                ctx.channels.union(i, out[k * m + j])
    else:
        cols = ctx.param(weight, 1, c_in_g, "in")
        for k in range(groups):
            ctx.channels.join(x.ids[k * c_in_g:(k + 1) * c_in_g], cols)
        per = c_out // groups
        for k in range(1, groups):
            ctx.channels.join(out[:per], out[k * per:(k + 1) * per])
    return Label(1, out)


def _transposed(ctx: OpContext, x: Label | None, weight: str, w_meta: TensorMeta) -> Label | None:
    groups = int(ctx.call.arg("groups", default=1))
    if groups != 1:
        ctx.fix(x, "a grouped transposed convolution")
        return None
    out = ctx.param(weight, 1, w_meta.shape[1], "out")
    _bias(ctx, out)
    if x is None or x.axis != 1:
        _unfollowed_input(ctx, weight, 0, w_meta.shape[0])
    else:
        ctx.channels.join(x.ids, ctx.param(weight, 0, w_meta.shape[0], "in"))
    return Label(1, out)


def _unfollowed_input(ctx: OpContext, weight: str, axis: int, n: int) -> None:
    """The layer reads channels cnnshape could not follow to their source: its weight's columns stay."""
    assert ctx.module is not None
    ids = ctx.param(weight, axis, n, "in", whole=True)
    ctx.channels.fix(ids, f"the input of {ctx.module!r} has channels cnnshape cannot follow to their source")


def _bias(ctx: OpContext, out: Sequence[int]) -> None:
    bias = ctx.own_tensor("bias", (len(out),))
    if bias is not None and ctx.module is not None:
        ctx.channels.join(out, ctx.param(bias, 0, len(out), "out"))


@rule("aten.addmm", "aten.linear", "aten.mm")
def linear(ctx: OpContext) -> Label | None:
    """``y = x Wᵀ + b``: the weight's columns read the input's last axis, its rows make the output's."""
    op = ctx.call.op
    x_i = 1 if op == "aten.addmm" else 0
    x_meta, x = ctx.tensors[x_i] if len(ctx.tensors) > x_i else (None, None)
    w_shape = (ctx.out.shape[-1], x_meta.shape[-1]) if x_meta is not None and x_meta.shape else None
    weight = ctx.own_tensor("weight", w_shape)
    if ctx.module is None or weight is None or x_meta is None or w_shape is None:
        ctx.fix(x, f"{op} with a weight that is not a module's own parameter")
        return None
    out = ctx.param(weight, 0, w_shape[0], "out")
    _bias(ctx, out)
    if x is None or x.axis != len(x_meta.shape) - 1:
        _unfollowed_input(ctx, weight, 1, w_shape[1])
    else:
        ctx.channels.join(x.ids, ctx.param(weight, 1, w_shape[1], "in"))
    return Label(len(ctx.out.shape) - 1, out)


@rule("aten.native_batch_norm", "aten._native_batch_norm_legit_no_training", "aten._native_batch_norm_legit",
      "aten.batch_norm", "aten.instance_norm", "aten._prelu_kernel", "aten.prelu")
def per_channel(ctx: OpContext) -> Label | None:
    """Normalisation (and PReLU) with one value per channel: the vectors follow the channels."""
    x = ctx.label(0)
    if x is None or x.axis != 1:
        ctx.fix(x, f"{ctx.call.op} over channels that are not on axis 1")
        return None
    n = len(x)
    for name in ("weight", "bias", "running_mean", "running_var"):
        own = ctx.own_tensor(name, (n,)) if ctx.call.arg(name) is not None else None
        if own is not None and ctx.module is not None:
            ctx.channels.join(x.ids, ctx.param(own, 0, n, "norm"))
    return moved(x, len(ctx.tensors[0][0].shape), ctx.out)


@rule("aten.native_layer_norm", "aten.layer_norm")
def layer_norm(ctx: OpContext) -> Label | None:
    """LayerNorm over the channels alone (channels last: ``normalized_shape == (C,)``): its
    weight and bias follow them. Over more axes, or not over the channels, they are kept."""
    x = ctx.label(0)
    if x is None:
        return None
    rank, shape = len(ctx.tensors[0][0].shape), tuple(ctx.call.arg("normalized_shape") or ())
    if x.outer or rank - len(shape) > x.axis:
        return moved(x, rank, ctx.out)  # the channels are not normalised over: values change, not shapes
    if shape != (len(x),) or x.axis != rank - 1:
        ctx.fix(x, f"{ctx.call.op} over {'x'.join(map(str, shape))}: the channels with other axes")
        return None
    for name in ("weight", "bias"):
        own = ctx.own_tensor(name, (len(x),)) if ctx.call.arg(name) is not None else None
        if own is not None and ctx.module is not None:
            ctx.channels.join(x.ids, ctx.param(own, 0, len(x), "norm"))
    return moved(x, rank, ctx.out)


@rule("aten.slice", "aten.select", "aten.roll", "aten.narrow", "aten.flip")
def other_axis(ctx: OpContext) -> Label | None:
    """Cropping, selecting, rolling or flipping another axis: the channels go through. On the
    channel axis itself, a literal range of channels is taken: refused."""
    x = ctx.label(0)
    if x is None:
        return None
    rank = len(ctx.tensors[0][0].shape)
    dims = ctx.call.arg("dim", "dims")
    dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
    parts = range(x.axis, x.axis + (2 if x.outer else 1))
    whole = ctx.call.op in ("aten.slice", "aten.narrow") and ctx.out.shape == ctx.tensors[0][0].shape
    if whole:  # x[:, :]: every channel
        return x
    if not dims or any(d % rank in parts for d in dims):
        ctx.fix(x, f"{ctx.call.op} takes a literal part of the channels")
        return None
    if ctx.call.op == "aten.select":  # the axis disappears
        return Label(x.axis - sum(1 for d in dims if d % rank < x.axis), x.ids, x.outer, x.literal)
    return moved(x, rank, ctx.out)


@rule("aten.native_group_norm", "aten.group_norm")
def group_norm(ctx: OpContext) -> Label | None:
    """GroupNorm keeps its number of groups: the ``i``-th channel of every group goes together."""
    x = ctx.label(0)
    groups = ctx.call.arg("group", "num_groups")
    if x is None or x.axis != 1 or not isinstance(groups, int):
        ctx.fix(x, f"{ctx.call.op} over channels that are not on axis 1")
        return None
    per = len(x) // groups
    for k in range(1, groups):
        ctx.channels.join(x.ids[:per], x.ids[k * per:(k + 1) * per])
    for name in ("weight", "bias"):
        own = ctx.own_tensor(name, (len(x),))
        if own is not None and ctx.module is not None:
            ctx.channels.join(x.ids, ctx.param(own, 0, len(x), "norm"))
    return x


# --- ops that move, join or reduce channel axes


@rule("aten.cat")
def cat(ctx: OpContext) -> Label | None:
    """Along the channels: the output's channels are the inputs' at their offsets. Along another
    axis: every input must keep the same channels."""
    labels = [label for _, label in ctx.tensors]
    rank = len(ctx.out.shape)
    dim = int(ctx.call.arg("dim", default=0)) % rank
    if any(label is None or label.axis != labels[0].axis for label in labels):  # type: ignore[union-attr]
        for label in labels:
            ctx.fix(label, "aten.cat of tensors whose channels cnnshape cannot all follow")
        return None
    known = [label for label in labels if label is not None]
    if dim == known[0].axis:
        return Label(dim, tuple(i for label in known for i in label.ids))
    for label in known[1:]:
        ctx.channels.join(known[0].ids, label.ids)
    return known[0]


@rule("aten.mean", "aten.sum", "aten.amax", "aten.amin", "aten.std", "aten.var")
def reduce(ctx: OpContext) -> Label | None:
    x = ctx.label(0)
    if x is None:
        return None
    rank = len(ctx.tensors[0][0].shape)
    dims = ctx.call.arg("dim")
    if dims is None or dims == ():
        return None
    dims = {d % rank for d in ((dims,) if isinstance(dims, int) else dims)}
    if x.axis in dims:
        return None  # reduced over the channels: fewer channels change values, not shapes
    keep = bool(ctx.call.arg("keepdim", default=False))
    return Label(x.axis if keep else x.axis - sum(1 for d in dims if d < x.axis), x.ids)


@rule("aten.empty", "aten.zeros", "aten.ones", "aten.full", "aten.arange", "aten.size", "aten.sym_size",
      "aten.copy_")
def no_channels(ctx: OpContext) -> Label | None:
    """Ops that make new tensors from sizes (or copy into one): nothing to follow."""
    return None


def prod(dims: Sequence[int]) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def flat_tensors(call: OpCall) -> list[TensorMeta]:
    """The op's tensor arguments in order, a list argument (cat's) flattened."""
    out: list[TensorMeta] = []

    def walk(value: Any) -> None:
        if isinstance(value, TensorMeta):
            out.append(value)
        elif isinstance(value, (tuple, list)):
            for v in value:
                walk(v)

    for value in (*call.args, *(v for _, v in call.kwargs)):
        walk(value)
    return out

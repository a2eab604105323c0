"""Construct a model with its parameters and buffers on the meta device, without initialising them.

Strategies, fastest first:

1. ``torch.device("meta")`` as the default device: every tensor the constructor creates is meta
   (:class:`OnMetaSkippingInit`, that and the skipping of initialisers in one mode).
2. The default device left as the CPU, so that tensor arithmetic in ``__init__`` (widths from
   ``torch.arange(...).tolist()``, ``.item()``) runs for real, while every parameter and buffer is
   moved to meta as it is registered (torch's global registration hooks, the technique libraries
   use to build empty large models). A CPU ``torch.empty`` is cheap: its pages are never touched.
3. The CPU, with real weights; the caller is told why the others failed.

In 1 and 2 initialisers are skipped: their values do not exist on meta, and the first Python meta
kernel a random fill runs imports ``torch._dynamo`` (about a second).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_buffer_registration_hook,
    register_module_parameter_registration_hook,
)
from torch.nn.parameter import is_lazy
from torch.overrides import TorchFunctionMode
from torch.utils._device import DeviceContext, _device_constructors

_META = torch.device("meta")

#: In-place Tensor methods that only write values (never shape, dtype or device): random fills,
#: fills, and the arithmetic of truncated-normal initialisers (timm's ``trunc_normal_``).
VALUE_WRITES = frozenset({
    "normal_", "uniform_", "random_", "bernoulli_", "cauchy_", "exponential_", "geometric_",
    "log_normal_", "fill_", "zero_", "fill_diagonal_", "erfinv_", "clamp_", "mul_", "add_",
})


def _first_tensor(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value
    return None


class SkipInitOnMeta(TorchFunctionMode):
    """Returns the target unchanged for ``torch.nn.init`` functions and value-only in-place
    methods whose target tensor is on meta; everything else runs as usual."""

    def __init__(self) -> None:
        super().__init__()
        self._skippable: dict[Any, bool] = {}  # func -> whether it only writes values (one check per func)

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        target = _skipped(self._skippable, func, args, kwargs)
        return target if target is not None else func(*args, **kwargs)


class OnMetaSkippingInit(DeviceContext):
    """``torch.device("meta")`` and :class:`SkipInitOnMeta` as one mode. Stacked, the two send every
    torch call the constructor makes through Python twice (a deep model's constructor makes
    thousands: ``torch.empty``, ``Tensor.dim``, the ``grad_fn`` reads of ``register_parameter``);
    one mode doing both halves that, about a sixth of the construction time. Its own decisions
    are :class:`SkipInitOnMeta`'s, then torch's ``DeviceContext``'s (a factory called without
    ``device=`` gets meta), and it is a ``DeviceContext``, so ``torch.get_default_device()`` answers
    meta inside as under ``torch.device("meta")``. One difference from the stacked pair: inside a
    ``with torch.device(...)`` of the constructor's own, torch sets this mode aside as it sets
    aside any default device, and value writes to meta tensors made there run (on meta: they
    change nothing the analysis reads; ``init_skipped_on_meta`` still covers ``torch.nn.init``).

    Two shortcuts, each for a cost measured on 1,000 residual blocks (benchmarks/construct.py):
    each function is sorted once into what the call needs (:func:`_action`), so that the most
    frequent calls, which need no decision (``grad_fn``, ``dim``, ``size``: neither a value write
    nor one of torch's factories, which are all ``DeviceContext`` changes), run with one dictionary
    look-up; and ``torch.zeros``/``torch.ones`` bound for meta become ``torch.empty``, for on meta
    they all make the same tensor (no values; the same shape, dtype, strides and
    ``requires_grad``) while the first two run a Python meta kernel (15 against 3 us a call;
    BatchNorm makes two). tests/test_construct_fast.py compares both with ``torch.device("meta")``
    on varied calls, tests/test_construct_mode.py whole models with the stacked pair."""

    def __init__(self) -> None:
        super().__init__(_META)
        self._actions: dict[Any, int] = {}

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        try:
            action = self._actions[func]
        except KeyError:
            action = self._actions[func] = _action(func)
        except TypeError:  # unhashable
            action = _action(func)
        if action == _CALL:
            return func(*args, **kwargs) if kwargs else func(*args)
        kwargs = kwargs or {}
        if action == _SKIP_ON_META:
            target = _meta_target(args, kwargs)
            return target if target is not None else func(*args, **kwargs)
        if action == _EMPTY_ON_META and kwargs.keys() <= _PLAIN_FACTORY_KWARGS and kwargs.get("device") in _ON_META:
            try:
                return super().__torch_function__(torch.empty, types, args, dict(kwargs))
            except Exception:  # bad arguments: the error is the function's own, as it words it
                pass
        return super().__torch_function__(func, types, args, kwargs)


#: what :class:`OnMetaSkippingInit` does with a call: run it as it is; return its target untouched
#: when that is on meta (:func:`_writes_values_only`); hand it to torch's ``DeviceContext`` (a
#: factory); the same, as ``torch.empty`` when it makes a meta tensor (``torch.zeros``, ``torch.ones``)
_CALL, _SKIP_ON_META, _FACTORY, _EMPTY_ON_META = range(4)
#: keywords with which ``torch.zeros``/``torch.ones`` make what ``torch.empty`` makes, on meta
_PLAIN_FACTORY_KWARGS = frozenset({"dtype", "device", "requires_grad"})
_ON_META = (None, _META, "meta")  # ``device=`` values that make a meta tensor here


def _action(func: Any) -> int:
    if _writes_values_only(func):
        return _SKIP_ON_META
    if func is torch.zeros or func is torch.ones:
        return _EMPTY_ON_META
    return _FACTORY if func in _device_constructors() else _CALL


def _skipped(memo: dict[Any, bool], func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """The target of ``func`` when the call is to be skipped (it only writes values, into a meta
    tensor); ``memo`` keeps the per-function half of that decision."""
    try:
        skippable = memo[func]
    except KeyError:
        skippable = memo[func] = _writes_values_only(func)
    except TypeError:  # unhashable
        skippable = _writes_values_only(func)
    return _meta_target(args, kwargs) if skippable else None


def _meta_target(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """The call's first tensor argument when it is on meta."""
    target = _first_tensor(args, kwargs)
    return target if target is not None and target.device.type == "meta" else None


def _writes_values_only(func: Any) -> bool:
    """A ``torch.nn.init`` function or a value-only in-place method (:data:`VALUE_WRITES`)."""
    name = getattr(func, "__name__", "")
    is_init = getattr(func, "__module__", None) == "torch.nn.init"
    return is_init or (name in VALUE_WRITES and getattr(torch.Tensor, name, None) is func)


_INIT_LOCK = threading.Lock()
_init_users = 0
#: what :func:`init_skipped_on_meta` replaced: (owner, attribute name, original)
_init_originals: list[tuple[Any, str, Callable[..., Any]]] = []


def _resets() -> list[tuple[type[nn.Module], str]]:
    """torch.nn's own ``reset_parameters`` (and BatchNorm's ``reset_running_stats``) that only fill
    the module's parameters and buffers with values (``torch.nn.init`` calls, ``zero_``, ``fill_``)
    and read nothing but their shapes: on meta they do nothing the analysis can see. Bilinear's
    (it raises for ``in1_features <= 0``) and the lazy layers' (they materialise) are not here."""
    from torch.nn.modules.batchnorm import _NormBase
    from torch.nn.modules.conv import _ConvNd

    owners: list[type[nn.Module]] = [_ConvNd, nn.Linear, _NormBase, nn.LayerNorm, nn.GroupNorm, nn.PReLU]
    if hasattr(nn, "RMSNorm"):
        owners.append(nn.RMSNorm)
    return [(owner, "reset_parameters") for owner in owners] + [(_NormBase, "reset_running_stats")]


def _skipping_on_meta(init: Callable[..., Any]) -> Callable[..., Any]:
    def initialise(*args: Any, **kwargs: Any) -> Any:
        target = _meta_target(args, kwargs)
        return target if target is not None else init(*args, **kwargs)

    initialise.__wrapped__ = init  # type: ignore[attr-defined]
    return initialise


def _skipping_reset_on_meta(reset: Callable[..., Any]) -> Callable[..., Any]:
    def reset_unless_on_meta(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        # read past the construction's torch function mode (each ``is_meta`` would go through it: 15
        # against 2 us for a BatchNorm's five tensors); the reads change nothing
        with torch._C.DisableTorchFunction():
            on_meta = _own_tensors_on_meta(self)
        if on_meta:
            return None
        return reset(self, *args, **kwargs)

    reset_unless_on_meta.__wrapped__ = reset  # type: ignore[attr-defined]
    return reset_unless_on_meta


def _own_tensors_on_meta(module: nn.Module) -> bool:
    own = vars(module)
    for table in (own.get("_parameters") or {}, own.get("_buffers") or {}):
        for t in table.values():
            if t is not None and not t.is_meta:
                return False
    return True


@contextmanager
def init_skipped_on_meta() -> Iterator[None]:
    """Inside, ``torch.nn.init``'s public initialisers (``kaiming_uniform_``, ``ones_``...) return a
    meta target untouched, as :class:`SkipInitOnMeta` makes them do, without torch's override
    dispatch on every call (about half a deep model's meta construction time); and torch.nn's own
    layers skip their ``reset_parameters`` when their parameters and buffers are all on meta
    (:func:`_resets`; another sixth of it: the fan-in arithmetic and the attribute reads around
    the initialisers). The attributes are replaced, so this covers the calls made as
    ``init.name(...)`` and ``self.reset_parameters()`` (torch.nn's own layers; a subclass's
    override calling ``super()``); a function imported by name earlier still goes through the
    mode. A real tensor is initialised as usual, also from another thread; nested and concurrent
    uses share one installation, removed when the last ends."""
    global _init_users
    from torch.nn import init

    with _INIT_LOCK:
        if _init_users == 0:
            _init_originals.extend((init, name, f) for name, f in vars(init).items()
                                   if name.endswith("_") and not name.startswith("_") and callable(f))
            _init_originals.extend((owner, name, vars(owner)[name]) for owner, name in _resets())
            for owner, name, f in _init_originals:
                patched = _skipping_on_meta(f) if owner is init else _skipping_reset_on_meta(f)
                setattr(owner, name, patched)
        _init_users += 1
    try:
        yield
    finally:
        with _INIT_LOCK:
            _init_users -= 1
            if _init_users == 0:
                for owner, name, f in _init_originals:
                    setattr(owner, name, f)
                _init_originals.clear()


@contextmanager
def registering_on_meta() -> Iterator[None]:
    """Every parameter and buffer registered inside lands on meta, keeping its class,
    ``requires_grad`` and attributes; one parameter registered twice stays one parameter."""
    moved: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id -> (original kept alive, meta)

    def to_meta(tensor: torch.Tensor) -> torch.Tensor:
        if id(tensor) not in moved:
            meta: torch.Tensor
            if is_lazy(tensor):  # no data yet (LazyConv2d...): uninitialised on meta, as under strategy 1
                # torch's stub omits the device and dtype that __new__ takes
                meta = type(tensor)(requires_grad=tensor.requires_grad, device="meta", dtype=tensor.dtype)  # type: ignore[call-arg]
            elif isinstance(tensor, nn.Parameter):
                meta = type(tensor)(tensor.detach().to("meta"), requires_grad=tensor.requires_grad)
            else:
                meta = tensor.detach().to("meta").requires_grad_(tensor.requires_grad)
            meta.__dict__.update(tensor.__dict__)
            moved[id(tensor)] = (tensor, meta)
        return moved[id(tensor)][1]

    def hook(module: nn.Module, name: str, tensor: torch.Tensor | None) -> torch.Tensor | None:
        if tensor is None or tensor.device.type == "meta":
            return None  # keep it as registered
        return to_meta(tensor)

    # The docs of both say "hook(module, name, tensor) -> None or new tensor"; the annotation says None.
    handles = [
        register_module_parameter_registration_hook(hook),  # type: ignore[arg-type]  # see above
        register_module_buffer_registration_hook(hook),  # type: ignore[arg-type]  # see above
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass(frozen=True)
class Built:
    module: nn.Module
    #: Why construction with parameters on meta failed, when ``module`` was built on the CPU.
    meta_error: Exception | None = None
    #: Parameters and buffers that bypassed registration (written into ``_parameters`` or
    #: ``_buffers`` directly) and so stayed on the CPU.
    off_meta: tuple[str, ...] = ()


def build_on_meta(make: Callable[[], nn.Module]) -> Built:
    """``make()`` under the strategies above; if all fail, the CPU build's error propagates."""
    try:
        with OnMetaSkippingInit(), init_skipped_on_meta():
            module = make()
    except Exception:
        try:  # the constructor runs again
            with registering_on_meta(), SkipInitOnMeta(), init_skipped_on_meta():
                module = make()
        except Exception as e:
            return Built(make(), meta_error=e)
    return Built(module, off_meta=off_meta(module))


def off_meta(module: nn.Module) -> tuple[str, ...]:
    """Names of the parameters and buffers of ``module`` that are not on the meta device. Usually
    there are none, which :func:`_all_on_meta` finds without naming anything."""
    if _all_on_meta(module):
        return ()
    tensors = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
    return tuple(name for name, t in tensors if t.device.type != "meta")


def _all_on_meta(module: nn.Module) -> bool:
    """Whether every parameter and buffer of ``module`` and its submodules is on meta, by a walk
    of the submodules as registered (``_modules``) that names nothing: for 1,000 residual blocks
    20 ms, where ``named_parameters`` and ``named_buffers`` (two walks of generators that name
    every tensor) take 44 ms, 4% of the construction."""
    stack = [module]
    while stack:
        m = stack.pop()
        for table in (m._parameters, m._buffers):
            for t in table.values():
                if t is not None and not t.is_meta:
                    return False
        stack.extend(child for child in m._modules.values() if child is not None)
    return True

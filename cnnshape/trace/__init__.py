"""Tracers turn a module plus input specs into a :class:`~.records.Trace` of frozen node records.

- ``records``: the frozen records every tracer emits (torch-free: the report and the renderers
  read them without importing torch);
- ``tracers``: :func:`~.tracers.trace` picks the fx or the eager tracer (``fx``, ``eager``);
- ``leaves``: which module classes stay one node (``leaves=``);
- ``meta``, ``kernels``, ``layers``, ``schema``: recording ATen calls on meta tensors.

Nothing is imported here, so ``cnnshape.trace.records`` costs no torch import.
"""

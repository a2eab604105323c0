"""Analysers read the graph and annotate it with figures; later stages only read them.

- ``analysis``: the one traversal that runs every per-node analyser (:func:`~.analysis.analyse`);
- ``shapes``, ``params``, ``flops``: the primary figures; ``receptive_field``, ``sizes``: the
  secondary analyses, which fail soft.

Nothing is imported here, so a torch-free module (the report) can use a result record.
"""

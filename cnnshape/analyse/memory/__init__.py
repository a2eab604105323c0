"""Memory without running the model (docs/memory.md): the inference peak by tensor liveness,
one training step (weights, gradients, optimizer state, what autograd saves, backward's
transients) and the largest batch that fits a budget.

``records``: the frozen, torch-free results; ``liveness``: the walk over the storages the ATen
calls read and wrote; ``storages``: the recorders that see them; ``inference``, ``training``,
``optim``, ``batch``: the figures.

Nothing is imported here, so a torch-free module (the report) can use a result record.
"""

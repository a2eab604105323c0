"""The pruning what-if (docs/prune.md): channel dependency groups from a trace, and the figures of
the pruned model measured on a pruned meta copy. ``cnnshape.prune_plan`` is its public face."""

"""Pruning numerics: magnitude and 2:4 masks, the GMP schedule, sparsity reports. The mask
insertion and folding themselves are DSL passes (passes/prune.actc)."""

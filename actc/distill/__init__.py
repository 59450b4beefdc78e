"""Distillation analyses (which vars to pair, which feeds to share); the wiring itself is the
DSL pass in passes/distill.actc."""

"""actc: a declarative graph-rewrite compiler for compressing PaddlePaddle inference models."""
__version__ = "0.1.0"

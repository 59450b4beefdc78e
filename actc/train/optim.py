"""Paddle's optimizer, LR scheduler, regularizer and gradient clipping from the recipe's
values (ACT TrainConfig: learning_rate, optimizer_builder / optimizer + optim_args).

Every class is Paddle's own, looked up by name; an unknown name gets a did-you-mean among the
classes Paddle has.
"""
from __future__ import annotations

import inspect

from actc.errors import ActcError, did_you_mean


def _classes(module, base=None) -> dict:
    out = {}
    for name in dir(module):
        obj = getattr(module, name)
        if inspect.isclass(obj) and not name.startswith("_") and (base is None or
                                                                   issubclass(obj, base)):
            out[name] = obj
    return out


def _construct(cls, kwargs: dict, what: str):
    try:
        return cls(**kwargs)
    except TypeError as e:
        params = [p for p in inspect.signature(cls).parameters if p not in ("self", "name")]
        raise ActcError(f"train: {what} {cls.__name__}: {e} (it takes: {', '.join(params)})") \
            from None


def _split(mapping, what: str) -> tuple[str, dict]:
    if not isinstance(mapping, dict) or "type" not in mapping:
        raise ActcError(f"train: {what} must be a mapping with a 'type', got {mapping!r}")
    kwargs = {k: v for k, v in mapping.items() if k != "type"}
    return str(mapping["type"]), kwargs


def learning_rate(paddle, value):
    """A float, or {type: <paddle.optimizer.lr class>, ...}; returns (lr, scheduler or None)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value <= 0:
            raise ActcError(f"train: learning_rate must be > 0, got {value}")
        return float(value), None
    name, kwargs = _split(value, "learning_rate")
    classes = _classes(paddle.optimizer.lr, paddle.optimizer.lr.LRScheduler)
    classes.pop("LRScheduler", None)
    if name not in classes:
        raise ActcError(f"train: unknown learning-rate scheduler '{name}'"
                        f"{did_you_mean(name, classes)}; Paddle has {', '.join(sorted(classes))}")
    sched = _construct(classes[name], kwargs, "learning_rate")
    return sched, sched


def regularizer(paddle, weight_decay, spec):
    if spec is not None:
        name, kwargs = _split(spec, "regularizer")
        classes = {"L1Decay": paddle.regularizer.L1Decay, "L2Decay": paddle.regularizer.L2Decay}
        if name not in classes:
            raise ActcError(f"train: unknown regularizer '{name}'{did_you_mean(name, classes)}")
        if "coeff" not in kwargs and "factor" in kwargs:
            kwargs["coeff"] = kwargs.pop("factor")
        return _construct(classes[name], kwargs, "regularizer")
    if weight_decay:
        return paddle.regularizer.L2Decay(float(weight_decay))
    return None


def grad_clip(paddle, spec):
    if spec is None:
        return None
    name, kwargs = _split(spec, "grad_clip")
    classes = {n: getattr(paddle.nn, n) for n in ("ClipGradByNorm", "ClipGradByGlobalNorm",
                                                 "ClipGradByValue")}
    if name not in classes:
        raise ActcError(f"train: unknown grad_clip '{name}'{did_you_mean(name, classes)}; "
                        f"Paddle has {', '.join(classes)}")
    return _construct(classes[name], kwargs, "grad_clip")


def optimizer(paddle, spec, lr, *, weight_decay=None, regularizer_spec=None, clip_spec=None):
    name, kwargs = _split(spec or {"type": "SGD"}, "optimizer")
    classes = _classes(paddle.optimizer, paddle.optimizer.Optimizer)
    classes.pop("Optimizer", None)
    if name not in classes:
        raise ActcError(f"train: unknown optimizer '{name}'{did_you_mean(name, classes)}; "
                        f"Paddle has {', '.join(sorted(classes))}")
    reg = regularizer(paddle, weight_decay, regularizer_spec)
    if reg is not None:
        if "weight_decay" in kwargs:
            raise ActcError("train: weight decay is given twice (weight_decay/regularizer and "
                            "the optimizer's own weight_decay)")
        kwargs["weight_decay"] = float(weight_decay) if name == "AdamW" and weight_decay \
            and regularizer_spec is None else reg
    clip = grad_clip(paddle, clip_spec)
    if clip is not None:
        kwargs["grad_clip"] = clip
    kwargs["learning_rate"] = lr
    return _construct(classes[name], kwargs, "optimizer")

"""Optax optimizer and learning-rate schedule built from `config.optimizer`.

The schedule is expressed in optimizer steps; epochs in the config are converted with the
number of steps per epoch, so `decay_epochs=(30, 60)` means what the papers mean by it.
"""

from __future__ import annotations

import re

import jax
import ml_collections
import optax

# Weight decay applies to convolution and dense kernels only: decaying biases and BatchNorm
# scales is known to hurt (Goyal et al. 2017, §5.1; He et al. 2019 "Bag of Tricks", §3.3).
DECAY_PARAM_REGEX = r"(^|/)kernel$"


def create_schedule(cfg: ml_collections.ConfigDict, steps_per_epoch: int, num_epochs: int) -> optax.Schedule:
    """Learning rate as a function of the optimizer step."""
    total = max(1, steps_per_epoch * num_epochs)
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    if cfg.schedule == "constant":
        main = optax.constant_schedule(cfg.lr)
    elif cfg.schedule == "step":
        boundaries = {int(round(e * steps_per_epoch)) - warmup: cfg.decay_factor for e in cfg.decay_epochs}
        main = optax.piecewise_constant_schedule(cfg.lr, {b: f for b, f in boundaries.items() if b > 0})
    elif cfg.schedule == "cosine":
        main = optax.cosine_decay_schedule(cfg.lr, decay_steps=max(1, total - warmup))
    else:
        raise ValueError(f"optimizer.schedule={cfg.schedule!r} is not one of constant, step, cosine")
    if warmup <= 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, cfg.lr, warmup), main], [warmup])


def decay_mask(params) -> object:
    """True for the parameters weight decay applies to (see DECAY_PARAM_REGEX)."""
    pattern = re.compile(DECAY_PARAM_REGEX)

    def is_decayed(path, _):
        return bool(pattern.search("/".join(_key_name(k) for k in path)))

    return jax.tree_util.tree_map_with_path(is_decayed, params)


def create_optimizer(
    cfg: ml_collections.ConfigDict, steps_per_epoch: int, num_epochs: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optax transformation and its schedule for `config.optimizer`."""
    schedule = create_schedule(cfg, steps_per_epoch, num_epochs)
    chain = []
    if cfg.grad_clip_norm > 0:
        chain.append(optax.clip_by_global_norm(cfg.grad_clip_norm))
    name = cfg.name
    if name in ("sgd", "rmsprop", "adam") and cfg.weight_decay > 0:
        # Coupled L2: the decay term joins the gradient before momentum/adaptive scaling, which is
        # what "weight decay" meant in AlexNet, VGG and ResNet.
        chain.append(optax.add_decayed_weights(cfg.weight_decay, mask=decay_mask))
    if name == "sgd":
        chain.append(
            optax.sgd(schedule, momentum=cfg.momentum or None, nesterov=bool(cfg.nesterov and cfg.momentum))
        )
    elif name == "adam":
        chain.append(optax.adam(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps))
    elif name == "adamw":
        chain.append(
            optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay, mask=decay_mask)
        )
    elif name == "rmsprop":
        chain.append(optax.rmsprop(schedule, decay=0.9, eps=cfg.eps, momentum=cfg.momentum or None))
    else:
        raise ValueError(f"optimizer.name={name!r} is not one of sgd, adam, adamw, rmsprop")
    return optax.chain(*chain), schedule


def _key_name(key) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)

"""Optax optimizer and learning-rate schedule built from `config.optimizer`.

The schedule is expressed in optimizer steps; epochs in the config are converted with the
number of steps per epoch, so `decay_epochs=(30, 60)` means what the papers mean by it.

The transformation is one chain, in this order (each link only when its option is on):

1. `grad_clip_norm`: clip the global gradient norm (of the trainable parameters);
2. coupled regularisation on the `decay_regex` parameters: `weight_decay * w` (L2, the gradient
   of `weight_decay / 2 * |w|^2` added to the loss) and `l1 * sign(w)` (L1) join the gradient;
3. the optimizer's direction, without the learning rate: momentum (sgd), Adam's moments
   (adam, adamw), RMSProp's scaling and momentum (rmsprop), LARS's layer-wise trust ratio on the
   `decay_regex` parameters and momentum (lars, see `_direction`);
4. decoupled weight decay on the `decay_regex` parameters: `weight_decay * w` joins the direction
   (adamw always; sgd, adam and rmsprop with `weight_decay_mode='decoupled'`);
5. the learning-rate schedule: the update becomes `-lr_t * (...)`, so decoupled decay shrinks
   `w` by `lr_t * weight_decay * w` (Loshchilov & Hutter 2019, as torch's AdamW);
6. `lr_multipliers`: the first matching regex scales that parameter's update;
7. `freeze_regex`: matching parameters get an update of exactly zero (and no optimizer state).

Because every stateful link (momentum, moments) comes before the learning rate, multiplying the
chain's output by a factor is the same as multiplying the learning rate by it: that is how the
trainer applies the reductions of the `plateau` schedule (see `create_schedule`).

Large batches: with `lr_scaling='linear'` the configured `lr` is the learning rate of a batch of
`base_batch_size` (256) and the schedule peaks at `lr * batch_size / base_batch_size`, its warm-up
rising from `lr` (Goyal et al. 2017, §2.1-2.2; `peak_learning_rate`). `grad_accum_steps` reaches a
batch that does not fit in memory (the trainer sums micro-batch gradients before this chain).

Parameters are selected by regexes over "/"-joined paths such as 'conv1/kernel' (`param_paths`),
searched anywhere in the path (anchor with ^ and $); an empty regex selects no parameter.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax

from cnn_jax.config import LR_SCALINGS, OPTIMIZERS, SCHEDULES, WEIGHT_DECAY_MODES
from cnn_jax.errors import ConfigError, check_choice
from cnn_jax.tree import matcher, param_paths, path_of, regex_mask

log = logging.getLogger("cnn_jax")

# Default `optimizer.decay_regex`: weight decay applies to convolution and dense kernels only;
# decaying biases and BatchNorm scales is known to hurt (Goyal et al. 2017, §5.1; He et al. 2019
# "Bag of Tricks", §3.3).
DECAY_PARAM_REGEX = r"(^|/)kernel$"

# RMSProp's squared-gradient average decays by 0.9 per step (Hinton's lecture 6e; Tieleman &
# Hinton 2012), the usual default of Keras and optax.
RMSPROP_DECAY = 0.9


def decay_mask(params, regex: str = DECAY_PARAM_REGEX):
    """True for the parameters weight decay and L1 apply to (default: kernels only)."""
    return regex_mask(params, regex)


# ---- schedules ------------------------------------------------------------------------------------


def peak_learning_rate(cfg: ml_collections.ConfigDict, batch_size: int | None = None) -> float:
    """The schedule's peak: `lr`, or with `lr_scaling='linear'` the linear scaling rule of Goyal
    et al. 2017 (§2.1: "when the minibatch size is multiplied by k, multiply the learning rate
    by k"), `lr * batch_size / base_batch_size`; e.g. ResNet-50's 0.1 per 256 images is 0.4 at
    batch 1024 and 1.6 at 4096."""
    scaling = cfg.get("lr_scaling", "none")
    check_choice(scaling, LR_SCALINGS, "optimizer.lr_scaling")
    if scaling == "none":
        return float(cfg.lr)
    if batch_size is None:
        raise ConfigError("optimizer.lr_scaling='linear' scales lr by the global batch size: pass batch_size")
    if cfg.base_batch_size < 1:
        raise ConfigError(f"optimizer.base_batch_size must be at least 1, got {cfg.base_batch_size}")
    return float(cfg.lr) * batch_size / cfg.base_batch_size


def create_schedule(cfg: ml_collections.ConfigDict, steps_per_epoch: int, num_epochs: int, *,
                    batch_size: int | None = None) -> optax.Schedule:
    """Learning rate as a function of the optimizer step (also what the trainer logs).

    `lr` below is `peak_learning_rate(cfg, batch_size)`: `optimizer.lr` unless
    `lr_scaling='linear'`, which also needs `batch_size`, the global batch.

    - constant: `lr`;
    - step: `lr`, multiplied by `decay_factor` at each of `decay_epochs`;
    - cosine: `lr` decayed to 0 along half a cosine over the run (Loshchilov & Hutter 2017);
    - onecycle: torch's OneCycleLR with cosine annealing (Smith & Topin 2019), see
      `onecycle_schedule`; its warm-up is `pct_start`, so `warmup_epochs` must be 0;
    - plateau: `lr` here. The reductions by `decay_factor` when the validation metric stops
      improving (AlexNet, Krizhevsky et al. 2012 §5) depend on metrics only the trainer sees:
      the trainer multiplies the updates by its runtime scale, which equals scaling the learning
      rate because every stateful link of the chain comes before the learning rate (module doc).

    All but onecycle start with a linear warm-up from 0 to `lr` over `warmup_epochs`
    (Goyal et al. 2017, §2.2); the main schedule then runs over the remaining steps. With linear
    scaling the warm-up starts from the unscaled `optimizer.lr` instead, as Goyal et al.'s
    "gradual warmup" from eta to k * eta (§2.2).
    """
    check_choice(cfg.schedule, SCHEDULES, "optimizer.schedule")
    if cfg.warmup_epochs < 0:
        raise ConfigError(f"optimizer.warmup_epochs must not be negative, got {cfg.warmup_epochs}")
    if cfg.decay_factor <= 0:
        raise ConfigError(f"optimizer.decay_factor must be positive, got {cfg.decay_factor}")
    total = max(1, steps_per_epoch * num_epochs)
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    lr = peak_learning_rate(cfg, batch_size)
    warmup_start = min(float(cfg.lr), lr) if cfg.get("lr_scaling", "none") == "linear" else 0.0
    if cfg.schedule == "onecycle":
        if cfg.warmup_epochs > 0:
            raise ConfigError(
                "optimizer.schedule='onecycle' warms up over pct_start of the run: set optimizer.warmup_epochs=0"
            )
        return onecycle_schedule(lr, total, cfg.pct_start, cfg.div_factor, cfg.final_div_factor)
    if cfg.schedule in ("constant", "plateau"):
        main = optax.constant_schedule(lr)
    elif cfg.schedule == "step":
        boundaries = {int(round(e * steps_per_epoch)) - warmup: cfg.decay_factor for e in cfg.decay_epochs}
        main = optax.piecewise_constant_schedule(lr, {b: f for b, f in boundaries.items() if b > 0})
    else:  # cosine
        main = optax.cosine_decay_schedule(lr, decay_steps=max(1, total - warmup))
    if warmup <= 0:
        return main
    return optax.join_schedules([optax.linear_schedule(warmup_start, lr, warmup), main], [warmup])


def onecycle_schedule(
    peak_lr: float,
    total_steps: int,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> optax.Schedule:
    """The 1cycle policy as torch's `OneCycleLR(anneal_strategy='cos', three_phase=False)`.

    Cosine from `peak_lr / div_factor` at step 0 up to `peak_lr` at step `pct_start * total - 1`,
    then cosine down to `peak_lr / (div_factor * final_div_factor)` at step `total - 1`, where it
    stays (Smith & Topin 2019 "Super-Convergence"; the defaults are torch's and fastai's).
    """
    if not 0.0 < pct_start < 1.0:
        raise ConfigError(f"optimizer.pct_start must be in (0, 1), got {pct_start}")
    if div_factor <= 0 or final_div_factor <= 0:
        raise ConfigError("optimizer.div_factor and optimizer.final_div_factor must be positive")
    initial = peak_lr / div_factor
    final = initial / final_div_factor
    # Phase ends as torch places them (floats; the peak is reached one step before pct_start*total).
    peak_step = float(pct_start * total_steps) - 1.0
    last_step = float(total_steps) - 1.0

    def anneal(start, end, pct):
        return end + (start - end) / 2.0 * (1.0 + jnp.cos(jnp.pi * pct))

    def schedule(step):
        s = jnp.minimum(jnp.asarray(step, jnp.float32), last_step)
        rising = anneal(initial, peak_lr, s / peak_step) if peak_step > 0 else jnp.full_like(s, peak_lr)
        falling = anneal(peak_lr, final, (s - peak_step) / (last_step - peak_step))
        return jnp.where(s <= peak_step, rising, falling)

    return schedule


# ---- the optimizer --------------------------------------------------------------------------------


def create_optimizer(
    cfg: ml_collections.ConfigDict, steps_per_epoch: int, num_epochs: int, *, params=None,
    batch_size: int | None = None,
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optax transformation for `config.optimizer` (chain order: module doc) and its schedule.

    `params`, when given (the model's parameters or their shapes), is used to check that
    `freeze_regex`, every `lr_multipliers` regex and (with weight decay or L1 on) `decay_regex`
    match at least one parameter: a misspelt regex would otherwise silently do nothing.
    `grad_accum_steps` is the trainer's business (it averages micro-batch gradients before
    calling the optimizer), as are the plateau reductions (see `create_schedule`). `batch_size`
    (the global batch) is needed by `lr_scaling='linear'`.
    """
    check_optimizer_config(cfg)
    multipliers = _lr_multipliers(cfg.lr_multipliers)
    schedule = create_schedule(cfg, steps_per_epoch, num_epochs, batch_size=batch_size)
    if params is not None:
        _check_regexes_match(cfg, multipliers, params)

    def mask(tree):
        return regex_mask(tree, cfg.decay_regex)

    decoupled = cfg.name == "adamw" or cfg.weight_decay_mode == "decoupled"
    chain = []
    if cfg.grad_clip_norm > 0:
        chain.append(optax.clip_by_global_norm(cfg.grad_clip_norm))
    if cfg.weight_decay > 0 and not decoupled:
        # Coupled L2: wd * w joins the gradient before momentum/adaptive scaling, which is what
        # "weight decay" meant in AlexNet, VGG and ResNet.
        chain.append(optax.add_decayed_weights(cfg.weight_decay, mask=mask))
    if cfg.l1 > 0:
        chain.append(optax.masked(add_l1_subgradient(cfg.l1), mask))
    chain.extend(_direction(cfg, mask))
    if cfg.weight_decay > 0 and decoupled:
        chain.append(optax.add_decayed_weights(cfg.weight_decay, mask=mask))
    chain.append(optax.scale_by_learning_rate(schedule))
    if multipliers:
        chain.append(scale_by_path(multipliers))
    tx = optax.chain(*chain)
    if cfg.freeze_regex:
        # Around the whole chain: frozen parameters take no part in clipping, get no decay and
        # no optimizer state, and their update is exactly zero.
        def labels(tree):
            return jax.tree.map(lambda frozen: "frozen" if frozen else "train", regex_mask(tree, cfg.freeze_regex))

        tx = optax.partition({"train": tx, "frozen": optax.set_to_zero()}, labels)
    return tx, schedule


def _direction(cfg, mask) -> list[optax.GradientTransformation]:
    """The optimizer's update direction before the learning rate (as optax's aliases build it)."""
    if cfg.name == "lars":
        # LARS (You, Gitman & Ginsburg 2017, Algorithm 1): each layer's step is scaled by the trust
        # ratio trust_coefficient * |w| / |g + weight_decay * w| (weight decay joined above),
        # except for biases and BatchNorm parameters (the decay_regex mask, kernels only), which
        # get plain momentum SGD, as in Goyal/You et al.'s ImageNet setups. optax.lars applies
        # momentum after the learning rate; here it comes before (as for sgd), which is the same
        # update for a constant learning rate and keeps the plateau scale exact (module doc).
        return [optax.masked(optax.scale_by_trust_ratio(trust_coefficient=cfg.lars_trust_coefficient),
                             mask),
                optax.trace(decay=cfg.momentum, nesterov=bool(cfg.nesterov))]
    if cfg.name == "sgd":
        if cfg.momentum == 0:
            return []  # plain (mini-batch or full-batch) gradient descent
        return [optax.trace(decay=cfg.momentum, nesterov=bool(cfg.nesterov))]
    if cfg.name in ("adam", "adamw"):
        return [optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)]
    # rmsprop: momentum on the scaled gradient, then the learning rate, as torch's RMSprop.
    chain = [optax.scale_by_rms(decay=RMSPROP_DECAY, eps=cfg.eps)]
    if cfg.momentum > 0:
        chain.append(optax.trace(decay=cfg.momentum))
    return chain


def add_l1_subgradient(l1: float) -> optax.GradientTransformation:
    """Adds `l1 * sign(w)`, the (sub)gradient of `l1 * |w|_1`, to the updates."""

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(optax.NO_PARAMS_MSG)
        updates = jax.tree.map(lambda g, w: g + l1 * jnp.sign(w).astype(g.dtype), updates, params)
        return updates, state

    return optax.GradientTransformation(init_fn, update_fn)


def scale_by_path(factors: Sequence[tuple[str, float]]) -> optax.GradientTransformation:
    """Multiplies each parameter's update by the factor of the first regex its path matches (else 1)."""
    matchers = [(matcher(regex), float(factor)) for regex, factor in factors]

    def factor_of(path: str) -> float:
        return next((f for matches, f in matchers if matches(path)), 1.0)

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params

        def scale(keypath, u):
            f = factor_of(path_of(keypath))
            return u if f == 1.0 else u * jnp.asarray(f, u.dtype)

        return jax.tree_util.tree_map_with_path(scale, updates), state

    return optax.GradientTransformation(init_fn, update_fn)


# ---- checks ---------------------------------------------------------------------------------------


def check_optimizer_config(cfg: ml_collections.ConfigDict) -> None:
    """Everything about `config.optimizer` that can be checked without the model's parameters;
    raises ConfigError with one line naming the fix."""
    check_choice(cfg.name, OPTIMIZERS, "optimizer.name")
    check_choice(cfg.lr_scaling, LR_SCALINGS, "optimizer.lr_scaling")
    check_choice(cfg.schedule, SCHEDULES, "optimizer.schedule")
    check_choice(cfg.weight_decay_mode, WEIGHT_DECAY_MODES, "optimizer.weight_decay_mode")
    if cfg.lr <= 0:
        raise ConfigError(f"optimizer.lr must be positive, got {cfg.lr}")
    if cfg.base_batch_size < 1:
        raise ConfigError(f"optimizer.base_batch_size must be at least 1, got {cfg.base_batch_size}")
    for key in ("weight_decay", "l1", "grad_clip_norm"):
        if cfg[key] < 0:
            raise ConfigError(f"optimizer.{key} must not be negative, got {cfg[key]}")
    if not 0.0 <= cfg.momentum < 1.0:
        raise ConfigError(f"optimizer.momentum must be in [0, 1), got {cfg.momentum}")
    if cfg.name == "lars" and cfg.weight_decay_mode != "coupled":
        raise ConfigError("optimizer.name='lars' takes weight decay inside its trust ratio: set "
                          "optimizer.weight_decay_mode='coupled'")
    if cfg.name == "lars" and cfg.lars_trust_coefficient <= 0:
        raise ConfigError("optimizer.lars_trust_coefficient must be positive (You et al. 2017: 0.001)")
    if cfg.name == "adamw" and cfg.weight_decay > 0 and cfg.weight_decay_mode == "coupled":
        raise ConfigError(
            "optimizer.name='adamw' decays weights decoupled: set optimizer.weight_decay_mode='decoupled' "
            "(or use name='adam' for coupled L2)"
        )
    if cfg.grad_accum_steps < 1:
        raise ConfigError(f"optimizer.grad_accum_steps must be at least 1, got {cfg.grad_accum_steps}")
    if cfg.ema_decay and not 0.0 < cfg.ema_decay < 1.0:
        raise ConfigError(f"optimizer.ema_decay must be in (0, 1), got {cfg.ema_decay}")
    for key in ("decay_regex", "freeze_regex"):
        _compile(cfg[key], f"optimizer.{key}")
    _lr_multipliers(cfg.lr_multipliers)


def _compile(regex: str, key: str) -> None:
    try:
        re.compile(regex)
    except re.error as e:
        raise ConfigError(f"{key}={regex!r} is not a valid regular expression ({e})") from None


def _lr_multipliers(items) -> list[tuple[str, float]]:
    pairs = []
    for item in items or ():
        if (not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], str)
                or isinstance(item[1], bool) or not isinstance(item[1], (int, float))):
            raise ConfigError(
                f"optimizer.lr_multipliers holds {item!r}: give (regex, factor) pairs, e.g. ((r'^head/', 10.0),)"
            )
        regex, factor = item
        if not regex:
            raise ConfigError("optimizer.lr_multipliers has an empty regex: give one such as r'^head/'")
        if factor < 0:
            raise ConfigError(f"optimizer.lr_multipliers factor for {regex!r} is {factor}: use a factor >= 0")
        _compile(regex, "optimizer.lr_multipliers")
        pairs.append((regex, float(factor)))
    return pairs


def _check_regexes_match(cfg, multipliers: Sequence[tuple[str, float]], params) -> None:
    paths = param_paths(params)
    examples = ", ".join(repr(p) for p in (paths[:3] + paths[-1:] if len(paths) > 4 else paths))

    def matched(regex: str, key: str) -> list[str]:
        matches = matcher(regex)
        hits = [p for p in paths if matches(p)]
        if not hits:
            raise ConfigError(f"{key}={regex!r} matches no parameter (paths look like {examples}): fix the regex")
        return hits

    if cfg.freeze_regex:
        frozen = matched(cfg.freeze_regex, "optimizer.freeze_regex")
        if len(frozen) == len(paths):
            log.warning("optimizer.freeze_regex=%r freezes every parameter: nothing will train", cfg.freeze_regex)
    if cfg.weight_decay > 0 or cfg.l1 > 0:
        matched(cfg.decay_regex, "optimizer.decay_regex")
    taken: set[str] = set()
    for regex, _ in multipliers:
        hits = matched(regex, "optimizer.lr_multipliers")
        if taken.issuperset(hits):
            log.warning("optimizer.lr_multipliers regex %r only matches parameters an earlier regex took", regex)
        taken.update(hits)


def per_part(tx: optax.GradientTransformation, parts: Sequence[str]) -> optax.GradientTransformation:
    """One optimizer per top-level part of the parameters (a GAN's `generator` and
    `discriminator`), each with its own state, that can be stepped one part at a time.

    `init(params)` gives `{part: tx.init(params[part])}`; `update(grads, state, params)` takes the
    gradients of some of the parts (a dict with those keys) and returns their updates and the state
    with only their entries advanced, so alternating the players' steps leaves the other player's
    moments untouched (a masked or partitioned optimizer would advance them with zero gradients).
    """
    parts = tuple(parts)

    def init_fn(params):
        return {part: tx.init(params[part]) for part in parts}

    def update_fn(grads, state, params=None):
        updates, new_state = {}, dict(state)
        for part, g in grads.items():
            updates[part], new_state[part] = tx.update(g, state[part], None if params is None else params[part])
        return updates, new_state

    return optax.GradientTransformation(init_fn, update_fn)

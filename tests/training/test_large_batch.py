"""The large-batch recipe: the linear scaling rule with gradual warm-up (Goyal et al. 2017),
LARS (You et al. 2017) with biases and BatchNorm parameters left out of the trust ratio, and the
ImageNet ResNet-50 config's variants for batches of 1024 and 4096."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import CONFIGS

from cnn_jax.config import base_config, load_config
from cnn_jax.errors import ConfigError
from cnn_jax.optim import create_optimizer, create_schedule, peak_learning_rate
from cnn_jax.training.validate import validate_config

IMAGENET_TRAIN = 1_281_167 - 10_000  # minus the configs' validation hold-out


def _opt(**overrides):
    cfg = base_config().optimizer
    for k, v in overrides.items():
        cfg[k] = v
    return cfg


def test_linear_scaling_multiplies_the_rate_by_batch_over_256():
    cfg = _opt(lr=0.1, lr_scaling="linear")
    assert [peak_learning_rate(cfg, b) for b in (256, 1024, 4096, 8192)] == pytest.approx([0.1, 0.4, 1.6, 3.2])
    assert peak_learning_rate(_opt(lr=0.1), 4096) == 0.1  # 'none': lr as given
    with pytest.raises(ConfigError, match="pass batch_size"):
        peak_learning_rate(cfg)


def test_warmup_with_linear_scaling_rises_from_the_base_rate():
    # Goyal et al. §2.2: start at eta, add a constant each step, reach k * eta after warm-up.
    s = create_schedule(_opt(lr=0.1, lr_scaling="linear", schedule="constant", warmup_epochs=2.0),
                        steps_per_epoch=10, num_epochs=5, batch_size=1024)
    assert [float(s(i)) for i in (0, 10, 20, 30)] == pytest.approx([0.1, 0.25, 0.4, 0.4])
    # without scaling the warm-up starts from 0, as before
    s = create_schedule(_opt(lr=0.4, schedule="constant", warmup_epochs=2.0), 10, 5)
    assert float(s(0)) == 0.0 and float(s(20)) == pytest.approx(0.4)


@pytest.mark.parametrize("batch, peak", [(1024, 0.4), (4096, 1.6)])
def test_imagenet_resnet50_large_batch_configs_follow_goyal_et_al(batch, peak):
    path = CONFIGS / "imagenet_resnet50.py"
    config = load_config(f"{path}:{batch}")
    validate_config(config, num_devices=8)
    assert (config.batch_size, config.num_epochs, config.model.name) == (batch, 90, "resnet50")
    opt = config.optimizer
    assert (opt.lr, opt.lr_scaling, opt.base_batch_size, opt.warmup_epochs) == (0.1, "linear", 256, 5.0)
    steps = IMAGENET_TRAIN // batch
    s = create_schedule(opt, steps, config.num_epochs, batch_size=config.batch_size)
    lr_at = {e: float(s(int(e * steps))) for e in (0, 2.5, 5, 29.9, 30, 60, 80, 89.9)}
    assert lr_at[0] == pytest.approx(0.1)  # warm-up from the 256-image rate ...
    assert lr_at[2.5] == pytest.approx((0.1 + peak) / 2, rel=1e-3)  # ... linearly ...
    assert lr_at[5] == lr_at[29.9] == pytest.approx(peak)  # ... to 0.1 x batch / 256
    assert [lr_at[e] for e in (30, 60, 80, 89.9)] == pytest.approx([peak / 10, peak / 100, peak / 1000, peak / 1000])
    header = path.read_text().split('"""')[1]
    assert f"cnn-jax train --config configs/imagenet_resnet50.py:{batch}" in header
    assert "Goyal et al. 2017" in header and "76%" in header and "Table 1" in header


def _toy():
    params = {"conv": {"kernel": jnp.asarray(np.random.default_rng(0).normal(size=(3, 3, 2, 4)), jnp.float32),
                       "bias": jnp.full((4,), 0.5, jnp.float32)},
              "bn": {"scale": jnp.ones((4,), jnp.float32)}}
    grads = [jax.tree.map(lambda x, i=i: jnp.asarray(np.random.default_rng(i + 1).normal(size=x.shape),
                                                      jnp.float32), params) for i in range(3)]
    return params, grads


def _run(tx, params, grads):
    state, updates = tx.init(params), []
    for g in grads:
        u, state = tx.update(g, state, params)
        params = optax.apply_updates(params, u)
        updates.append(u)
    return params, updates


def test_lars_equals_optax_lars_with_biases_and_batchnorm_left_out():
    params, grads = _toy()
    cfg = _opt(name="lars", lr=0.5, schedule="constant", momentum=0.9, weight_decay=1e-4)
    ours, _ = create_optimizer(cfg, 10, 1)
    kernels = {"conv": {"kernel": True, "bias": False}, "bn": {"scale": False}}
    reference = optax.lars(0.5, weight_decay=1e-4, weight_decay_mask=kernels, trust_coefficient=0.001,
                           trust_ratio_mask=kernels, momentum=0.9)
    a, updates = _run(ours, params, grads)
    b, _ = _run(reference, params, grads)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    # First step: kernel update = lr * trust * |g + wd w| direction, trust = 0.001 |w| / |g + wd w|,
    # so its norm is lr * 0.001 * |w|; the bias and BN scale get plain SGD (-lr * g).
    w, g = params["conv"]["kernel"], grads[0]["conv"]["kernel"]
    assert float(jnp.linalg.norm(updates[0]["conv"]["kernel"])) == pytest.approx(0.5 * 0.001 * float(jnp.linalg.norm(w)), rel=1e-5)
    np.testing.assert_allclose(updates[0]["conv"]["bias"], -0.5 * grads[0]["conv"]["bias"], rtol=1e-6)
    np.testing.assert_allclose(updates[0]["bn"]["scale"], -0.5 * grads[0]["bn"]["scale"], rtol=1e-6)
    assert g.shape == w.shape


def test_lars_needs_coupled_weight_decay():
    with pytest.raises(ConfigError, match="weight_decay_mode='coupled'"):
        create_optimizer(_opt(name="lars", weight_decay=1e-4, weight_decay_mode="decoupled"), 10, 1)


def test_trainer_logs_the_scaled_rate_and_trains_with_lars(mnist_data_dir, tmp_path):
    import json

    from trainer_utils import small_config

    from cnn_jax.training.loop import train_and_evaluate

    # 0.2 per 64 images at batch 128: the rate rises from 0.2 to 0.4 over the first epoch (8 steps).
    config = small_config(mnist_data_dir, **{
        "num_epochs": 2, "data.train_subset": 1024, "log_every_steps": 4, "optimizer.name": "lars",
        "optimizer.lr": 0.2, "optimizer.lr_scaling": "linear", "optimizer.base_batch_size": 64,
        "optimizer.schedule": "constant", "optimizer.warmup_epochs": 1.0,
        "optimizer.lars_trust_coefficient": 0.02})
    train_and_evaluate(config, tmp_path)
    train = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
             if '"train"' in line]
    lrs = {r["step"]: r["lr"] for r in train}  # the rate of each logged step's last update
    assert [lrs[s] for s in (4, 8, 12, 16)] == pytest.approx([0.2 + 0.2 * 3 / 8, 0.2 + 0.2 * 7 / 8, 0.4, 0.4])
    assert train[-1]["loss"] < 0.7 * train[0]["loss"]

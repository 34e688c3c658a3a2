"""The shipped CIFAR-10 configs load, validate, and carry the recipes and numbers their headers cite.

The ResNet configs convert He et al.'s iteration counts (§4.2: lr 0.1, divided by 10 at 32k and
48k iterations of batch 128, stop at 64k, on a 45k/5k split) into epochs; the tests check the
conversion through the optimizer's own schedule, not by re-deriving the same arithmetic.
"""

import re
import shlex

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CONFIGS

from cnn_jax.config import load_config
from cnn_jax.models import create_model
from cnn_jax.optim import create_schedule
from cnn_jax.training.state import count_params
from cnn_jax.training.validate import validate_config

CIFAR10_TRAIN = 50_000

# config (FILE or FILE:ARG in configs/): (model, epochs, batch, lr, weight decay, schedule,
# nesterov, validation images)
RECIPES = {
    "cifar10_lenet5.py": ("lenet5_modern", 30, 128, 0.05, 5e-4, "cosine", True, 5_000),
    "cifar10_resnet.py": ("resnet20", 182, 128, 0.1, 1e-4, "step", False, 5_000),
    "cifar10_resnet.py:20": ("resnet20", 182, 128, 0.1, 1e-4, "step", False, 5_000),
    "cifar10_resnet.py:32": ("resnet32", 182, 128, 0.1, 1e-4, "step", False, 5_000),
    "cifar10_resnet.py:44": ("resnet44", 182, 128, 0.1, 1e-4, "step", False, 5_000),
    "cifar10_resnet.py:56": ("resnet56", 182, 128, 0.1, 1e-4, "step", False, 5_000),
    "cifar10_resnet.py:110": ("resnet110", 182, 128, 0.1, 1e-4, "step", False, 5_000),
    "cifar10_vgg16.py": ("vgg16_bn", 200, 128, 0.05, 5e-4, "cosine", False, 5_000),
    "cifar10_mobilenet_v1.py": ("mobilenet_v1", 200, 128, 0.1, 1e-4, "cosine", False, 5_000),
    "cifar10_densenet121.py": ("densenet121", 300, 64, 0.1, 1e-4, "step", True, 0),
}

# He et al. 2016 Table 6: depth -> (test error %, parameters as printed)
TABLE6 = {20: ("8.75", "0.27M"), 32: ("7.51", "0.46M"), 44: ("7.17", "0.66M"),
          56: ("6.97", "0.85M"), 110: ("6.43", "1.7M")}


def _load(spec: str, overrides=()):
    """The config `configs/<spec>` (FILE or FILE:ARG)."""
    return load_config(f"{CONFIGS}/{spec}", overrides)


def _header(spec: str) -> str:
    return (CONFIGS / spec.split(":")[0]).read_text().split('"""')[1]


def _params(config) -> int:
    model = create_model(config.model.name, num_classes=10, **config.model.kwargs.to_dict())
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), jnp.zeros((1, 32, 32, 3)))
    return count_params(shapes["params"])


def _lr(config):
    """The learning rate by iteration, as the trainer builds it for this config on CIFAR-10."""
    steps_per_epoch = (CIFAR10_TRAIN - config.data.val_size) // config.batch_size
    return create_schedule(config.optimizer, steps_per_epoch, config.num_epochs), steps_per_epoch


def test_every_shipped_cifar10_config_is_listed_here():
    # cifar10_activations.py is the activation comparison (no augmentation on purpose, as in
    # Krizhevsky et al. Fig. 1); tests/test_experiments.py covers it.
    shipped = sorted(p.name for p in CONFIGS.glob("cifar10_*.py")
                     if p.stem != "cifar10_activations")
    assert shipped == sorted({spec.split(":")[0] for spec in RECIPES})


@pytest.mark.parametrize("spec", sorted(RECIPES))
def test_cifar10_config_loads_validates_and_follows_its_recipe(spec):
    config = _load(spec)
    validate_config(config, num_devices=1)
    model, epochs, batch, lr, wd, schedule, nesterov, val_size = RECIPES[spec]
    assert config.model.name == model and config.data.name == "cifar10"
    assert (config.num_epochs, config.batch_size, config.data.val_size) == (epochs, batch, val_size)
    assert (config.optimizer.name, config.optimizer.momentum) == ("sgd", 0.9)
    assert config.optimizer.lr == pytest.approx(lr) and config.optimizer.weight_decay == pytest.approx(wd)
    assert (config.optimizer.schedule, config.optimizer.nesterov) == (schedule, nesterov)
    # Every recipe trains on 4-pixel padded random crops and horizontal flips.
    assert config.data.augment.random_crop_padding == 4 and config.data.augment.horizontal_flip
    header = _header(spec)
    assert f"cnn-jax train --config configs/{spec.split(':')[0]}" in header
    assert "JPEG-degraded" in header


@pytest.mark.parametrize("depth", sorted(TABLE6))
def test_resnet_config_decays_at_32k_and_48k_iterations_and_stops_near_64k(depth):
    config = _load(f"cifar10_resnet.py:{depth}")
    lr, steps_per_epoch = _lr(config)
    assert steps_per_epoch == 351  # 45,000 training images, batch 128, last partial batch dropped
    assert [float(lr(s)) for s in (31_999, 32_000, 47_999, 48_000)] == pytest.approx(
        [0.1, 0.01, 0.01, 0.001])
    assert abs(config.num_epochs * steps_per_epoch - 64_000) <= steps_per_epoch


@pytest.mark.parametrize("depth", sorted(TABLE6))
def test_resnet_config_header_quotes_table6_and_the_model_has_that_many_parameters(depth):
    error, printed_params = TABLE6[depth]
    # The header's table row: depth, Table 6 error, parameters as printed, ours.
    row = re.search(rf"^ +{depth} +{re.escape(error)}% +{re.escape(printed_params)} +([\d,]+)",
                    _header("cifar10_resnet.py"), re.MULTILINE)
    params = _params(_load(f"cifar10_resnet.py:{depth}"))
    assert row and row.group(1) == f"{params:,}"
    millions = printed_params.removesuffix("M")
    assert round(params / 1e6, len(millions.split(".")[1])) == float(millions)


def test_only_resnet110_warms_up_for_the_papers_400_iterations():
    lr, _ = _lr(_load("cifar10_resnet.py:110"))
    assert [float(lr(s)) for s in (0, 200, 400, 1_000)] == pytest.approx([0.0, 0.05, 0.1, 0.1])
    for depth in (20, 32, 44, 56):
        lr, _ = _lr(_load(f"cifar10_resnet.py:{depth}"))
        assert float(lr(0)) == pytest.approx(0.1)


def test_resnet_override_for_all_50k_training_images_keeps_the_papers_iterations():
    # The command in configs/cifar10_resnet.py's docstring.
    text = (CONFIGS / "cifar10_resnet.py").read_text()
    command = re.search(r"--config\.data\.val_size=0 .*", text).group(0)
    config = _load("cifar10_resnet.py:20", shlex.split(command))
    lr, steps_per_epoch = _lr(config)
    assert steps_per_epoch == 390  # 50,000 // 128
    rates = np.asarray(lr(jnp.arange(64_000)))
    decays = np.flatnonzero(np.diff(rates) < 0) + 1
    assert np.allclose(rates[decays], [0.01, 0.001])
    # Within a tenth of an epoch of iterations 32k and 48k.
    assert np.all(np.abs(decays - np.array([32_000, 48_000])) <= 39)
    assert abs(config.num_epochs * steps_per_epoch - 64_000) <= 40


def test_vgg16_config_swaps_the_4096_wide_head_for_the_512_wide_cifar_head():
    config = _load("cifar10_vgg16.py")
    assert _params(config) == 15_253_578
    torchvision_head = _load("cifar10_vgg16.py", ["model.kwargs.pooled_size=7",
                                                  "model.kwargs.hidden_sizes=(4096, 4096)"])
    validate_config(torchvision_head, num_devices=1)
    assert _params(torchvision_head) == 134_309_962
    for count in ("15,253,578", "134.3M"):
        assert count in _header("cifar10_vgg16.py")


def test_mobilenet_and_densenet_headers_give_the_parameter_counts_they_train():
    for spec, count in (("cifar10_mobilenet_v1.py", 3_217_226),
                        ("cifar10_densenet121.py", 6_964_106)):
        assert _params(_load(spec)) == count
        assert f"{count:,}" in _header(spec)
    densenet = _header("cifar10_densenet121.py")
    assert "4.51%" in densenet and "Table 2" in densenet


def test_densenet_config_decays_at_half_and_three_quarters_of_300_epochs():
    config = _load("cifar10_densenet121.py")
    lr, steps_per_epoch = _lr(config)
    assert steps_per_epoch == 781  # all 50,000 images, batch 64
    assert [float(lr(e * steps_per_epoch)) for e in (149, 150, 224, 225)] == pytest.approx(
        [0.1, 0.01, 0.01, 0.001])

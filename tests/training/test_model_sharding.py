"""Parameter sharding by config rules: on a fake 8-device mesh (data 2 x model 4) the FC kernels
matched by `sharding.rules` take a quarter of the bytes per device, their momentum too, and
training gives the losses and parameters of the replicated run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnn_jax.config import base_config
from cnn_jax.errors import ConfigError
from cnn_jax.training import sharding
from cnn_jax.training.validate import validate_config

FC6, FC7 = 784 * 256 * 4, 256 * 256 * 4  # float32 bytes of the two sharded kernels


@pytest.fixture(scope="module")
def runs(mnist_data_dir, tmp_path_factory):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    script = Path(__file__).with_name("model_sharding_check.py")
    out = subprocess.run([sys.executable, str(script), str(mnist_data_dir), str(tmp_path_factory.mktemp("ms"))],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


@pytest.mark.slow
def test_sharded_kernels_take_a_quarter_of_the_bytes_per_device(runs):
    replicated, sharded = runs["replicated"]["bytes_per_device"], runs["sharded"]["bytes_per_device"]
    saved = (FC6 + FC7) * 3 // 4  # each device keeps 1/4 of both kernels
    assert sharded["params"] == replicated["params"] - saved
    # SGD's momentum of each sharded kernel is sharded the same way (the step counter is not).
    assert sharded["opt_state"] == replicated["opt_state"] - saved
    assert "mesh {'data': 2, 'model': 4}" in runs["sharded"]["log"]
    assert "sharded over 'model' (4 devices): classifier_0/kernel, classifier_3/kernel" in runs["sharded"]["log"]


@pytest.mark.slow
def test_sharded_training_equals_replicated_training(runs):
    a, b = runs["replicated"], runs["sharded"]
    # The sharded matmuls sum their partial products in another order: float32 rounding only. A
    # logit is a sum of at most 784 products (fc6), ~sqrt(784) * 2^-24 = 1.7e-6 of its size apart
    # by random rounding (worst case 784 * 2^-24 = 4.7e-5), and a loss averages 64 such examples:
    # rtol 1e-5 (measured: 2e-7; a wrong split or a missing all-reduce changes the loss by O(1)).
    # A VGG without BatchNorm does not amplify the differences over its 4 SGD steps (lr 0.01):
    # parameters (|w| <= 1.06, an ulp <= 1.2e-7) measured 4.5e-8 apart, against 1e-6 (8 ulps).
    # Both runs use 8 devices, so XLA's convolutions, under either CNN_JAX_ONEDNN setting.
    np.testing.assert_allclose(b["train_loss"], a["train_loss"], rtol=1e-5)
    np.testing.assert_allclose(b["val_loss"], a["val_loss"], rtol=1e-5)
    for path, value in a["final"].items():
        np.testing.assert_allclose(b["final"][path], value, rtol=0, atol=1e-6, err_msg=path)


class _Shape:
    def __init__(self, *shape):
        self.shape, self.dtype = shape, np.float32


def test_rules_pick_the_first_match_and_replicate_the_rest():
    params = {"fc6": {"kernel": _Shape(8, 4), "bias": _Shape(4)}, "head": {"kernel": _Shape(4, 2)}}
    specs = sharding.param_specs(params, ((r"fc6/kernel", (None, "model")), (r"kernel", ("model",))))
    assert tuple(specs["fc6"]["kernel"]) == (None, "model")
    assert tuple(specs["head"]["kernel"]) == ("model",)
    assert tuple(specs["fc6"]["bias"]) == ()


@pytest.mark.parametrize("rules, message", [
    (((r"fc7/kernel", (None, "model")),), "matches no parameter"),
    (((r"fc6/bias", (None, "model")),), "has 2 entries but parameter 'fc6/bias'"),
    (((r"fc6/kernel", ("tensor",)),), "None or a mesh axis"),
    (((r"fc6/kernel",),), "give \\(regex, spec\\) pairs"),
])
def test_bad_rules_fail_with_the_fix(rules, message):
    params = {"fc6": {"kernel": _Shape(8, 4), "bias": _Shape(4)}}
    with pytest.raises(ValueError, match=message):
        sharding.param_specs(params, rules)


@pytest.mark.parametrize("overrides, message", [
    ({"sharding.model_axis": 3}, "sharding.model_axis=3 does not divide the 8 devices"),
    ({"sharding.model_axis": 4, "batch_size": 5}, "batch_size=5 does not split over 2 devices"),
    ({"sharding.rules": (("(", (None, "model")),)}, "not a valid regular expression"),
])
def test_validate_config_checks_the_mesh_and_rules(overrides, message):
    config = base_config()
    config.data.name = "mnist"
    for key, value in overrides.items():
        section, _, leaf = key.rpartition(".")
        (config[section] if section else config)[leaf] = value
    with pytest.raises(ConfigError, match=message):
        validate_config(config, num_devices=8)


def test_batch_needs_only_split_over_the_data_axis():
    config = base_config()
    config.sharding.model_axis, config.batch_size, config.eval_batch_size = 4, 2, 2
    validate_config(config, num_devices=8)  # 8 devices = data 2 x model 4: batches of 2 split

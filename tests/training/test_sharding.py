"""Data parallelism over a Mesh: a step on 8 devices equals the same step on 1."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def sharded_vs_single():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    script = Path(__file__).with_name("sharded_step_check.py")
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


@pytest.mark.parametrize("case", ["lenet5_float32", "resnet20_float64"])
def test_batch_is_split_over_eight_devices(sharded_vs_single, case):
    assert sharded_vs_single[case]["per_device_8"] == [4]
    assert sharded_vs_single[case]["per_device_1"] == [32]


def test_lenet5_step_on_eight_devices_equals_step_on_one_in_float32(sharded_vs_single):
    r = sharded_vs_single["lenet5_float32"]
    assert r["param_dtype"] == "float32"
    assert abs(r["loss_8"] - r["loss_1"]) < 1e-5
    assert r["param_diff"] < 1e-5


def test_batchnorm_step_on_eight_devices_equals_step_on_one_in_float64(sharded_vs_single):
    # BatchNorm statistics are taken over the global batch, not per device: in double precision
    # the sharded and single-device steps of a ResNet agree to rounding.
    r = sharded_vs_single["resnet20_float64"]
    assert r["param_dtype"] == "float64"
    # The loss is read from the metric sums, which are float32 by design (cnn_jax.losses): their
    # order of summation over devices shows at float32 rounding. The update itself is float64.
    assert abs(r["loss_8"] - r["loss_1"]) < 1e-6
    assert r["param_diff"] < 1e-10
    assert r["batch_stats_diff"] < 1e-10


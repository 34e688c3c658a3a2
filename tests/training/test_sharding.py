"""Data parallelism over a Mesh: a step on 8 devices equals the same step on 1."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # 8 devices in a subprocess, about 20 s on 2 cores


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
    # Two programs: under conv_impl='auto' the 1-device step convolves with oneDNN and the 8-device
    # one with XLA, which also sums the batch as 8 partial sums. LeNet-5 has no BatchNorm, so
    # rounding is not amplified. Loss (~2.3): the logits are sums of at most 400 products (C5)
    # through 5 layers, ~5 * sqrt(400) * 2^-24 = 6e-6 of their size (random rounding, logits
    # ~1 at initialisation), and the mean of 32 losses adds ~sqrt(32) * 2^-24 = 3e-7 of it: under
    # 1e-5. Parameters: the update is lr 0.1 x the gradient (largest update ~1e-2); its largest
    # sums, C1's weight gradient, have 32 * 28 * 28 = 25,088 products, ~sqrt(25,088) * 2^-24 =
    # 1e-5 of the update: ~1e-7, under 1e-5 with two orders to spare for cancellation. Measured:
    # loss equal, parameters 3e-8 apart (1.5e-8 with CNN_JAX_ONEDNN=0).
    assert abs(r["loss_8"] - r["loss_1"]) < 1e-5
    assert r["param_diff"] < 1e-5


def test_batchnorm_step_on_eight_devices_equals_step_on_one_in_float64(sharded_vs_single):
    # BatchNorm statistics are taken over the global batch, not per device: in double precision
    # the sharded and single-device steps of a ResNet agree to rounding.
    r = sharded_vs_single["resnet20_float64"]
    assert r["param_dtype"] == "float64"
    # The loss is read from the metric sums, which are float32 by design (cnn_jax.tasks): each
    # program sums the 32 per-example losses in its own order, at most (32 - 1) * 2^-24 of the sum
    # of |losses| apart from the exact sum (the recursive summation bound), so the two means
    # differ by at most 2 * 32 * 2^-24 * loss (~1.2e-5 at loss 3; measured 2.4e-7, one ulp).
    assert abs(r["loss_8"] - r["loss_1"]) <= 2 * 32 * 2.0**-24 * abs(r["loss_1"])
    # The update itself is float64. In float32 BatchNorm's backward pass turns the 8 partial sums'
    # rounding (2^-24 = 6e-8) into ~1e-4 differences (module docstring of sharded_step_check.py):
    # an amplification of ~2e3, which takes float64's 2^-53 = 1.1e-16 to ~2e-13. 1e-10 is 500 x
    # that (measured: 2e-16 in parameters, 9e-16 in statistics).
    assert r["param_diff"] < 1e-10
    assert r["batch_stats_diff"] < 1e-10


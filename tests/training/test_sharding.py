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


@pytest.mark.parametrize("model", ["lenet5", "resnet20"])
def test_batch_is_split_over_eight_devices(sharded_vs_single, model):
    assert sharded_vs_single[model]["per_device_8"] == [4]
    assert sharded_vs_single[model]["per_device_1"] == [32]


@pytest.mark.parametrize("model", ["lenet5", "resnet20"])
def test_step_on_eight_devices_equals_step_on_one(sharded_vs_single, model):
    r = sharded_vs_single[model]
    assert abs(r["loss_8"] - r["loss_1"]) < 1e-5
    assert r["param_diff"] < 1e-5
    # BatchNorm statistics are computed over the global batch, not per device.
    assert r["batch_stats_diff"] < 1e-5

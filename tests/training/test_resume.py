"""Interrupted runs: kill -9 and SIGTERM, then the same command again, end where an
uninterrupted run ends — to the bit, on the same machine."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import CONFIGS

STEPS = 72  # 3 epochs x 24 steps


def _command(data_dir, workdir):
    return [sys.executable, "-m", "cnn_jax.cli", "train", "--config", str(CONFIGS / "mnist_lenet5.py"),
            "--workdir", str(workdir), f"--config.data.data_dir={data_dir}", "--config.data.val_size=1024",
            "--config.batch_size=128", "--config.num_epochs=3", "--config.progress_bar=false",
            "--config.checkpoint_every_steps=4", "--config.log_every_steps=8"]


def _env():
    return dict(os.environ, JAX_PLATFORMS="cpu")


def _final_params(workdir: Path) -> list[np.ndarray]:
    path = (workdir / "checkpoints" / str(STEPS) / "default").absolute()
    restored = ocp.StandardCheckpointer().restore(path)
    return [np.asarray(x) for x in jax.tree.leaves(restored["params"])] + [
        np.asarray(x) for x in jax.tree.leaves(restored["opt_state"])]


def _steps_saved(workdir: Path) -> list[int]:
    d = workdir / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.exists() else []


def _start_and_interrupt(cmd, workdir: Path, sig: int, after_step: int) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if any(s >= after_step for s in _steps_saved(workdir)):
            proc.send_signal(sig)
            break
        time.sleep(0.01)
    out, _ = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


@pytest.fixture(scope="module")
def uninterrupted(mnist_data_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    out = subprocess.run(_command(mnist_data_dir, workdir), env=_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return _final_params(workdir)


@pytest.mark.slow
def test_run_killed_with_sigkill_resumes_to_the_same_parameters(mnist_data_dir, tmp_path, uninterrupted):
    cmd = _command(mnist_data_dir, tmp_path)
    killed = _start_and_interrupt(cmd, tmp_path, signal.SIGKILL, after_step=8)
    assert killed.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert STEPS not in _steps_saved(tmp_path)
    resumed = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from step" in resumed.stderr
    for a, b in zip(_final_params(tmp_path), uninterrupted, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_sigterm_saves_the_current_step_exits_zero_and_resumes(mnist_data_dir, tmp_path, uninterrupted):
    cmd = _command(mnist_data_dir, tmp_path)
    stopped = _start_and_interrupt(cmd, tmp_path, signal.SIGTERM, after_step=8)
    assert stopped.returncode == 0, stopped.stdout[-2000:]
    assert '"status": "preempted"' in stopped.stdout
    saved = _steps_saved(tmp_path)
    assert saved and max(saved) < STEPS
    assert f"stopped at step {max(saved)}" in stopped.stdout
    resumed = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed from step {max(saved)}" in resumed.stderr
    for a, b in zip(_final_params(tmp_path), uninterrupted, strict=True):
        np.testing.assert_array_equal(a, b)

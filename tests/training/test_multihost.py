"""Multi-host training on one machine: `cnn-jax train` as two processes over loopback (CPU
collectives over gloo, 4 fake devices each) trains like one process with 8 devices; a process
that dies stops the other with a clear error instead of a hang; both restarted resume.

LeNet-5 on the small MNIST, 2 epochs of 12 steps (global batch 64), with augmentation
(rotation, cutout, mixup), which every process draws for the whole global batch: the two-process
run sees exactly the batches of the one-process run.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import CONFIGS

STEPS = 24  # 2 epochs x 12 steps

# The all-reduce of the 8 devices' gradients and metric sums adds in a different order when it
# crosses processes (gloo over TCP) than inside one, so the two layouts are not bit-identical. An
# 8-term sum in another order differs by at most 7 * 2^-24 = 4e-7 of the sum of its |terms| (the
# recursive summation bound): the relative bound on the logged losses, and on each step's
# gradient. LeNet-5 (no BatchNorm) does not amplify such differences over 24 steps (the gradient
# accumulation test of test_recipe_loop.py sums every gradient in another order: parameters
# 1.8e-7 apart after 24 steps, under both convolution backends), and its parameters are below 1,
# so 1e-6 is >= 8 ulps of each. Measured here: 6e-8 in parameters and loss.
TOLERANCE = 1e-6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(data_dir, workdir, *extra) -> list[str]:
    return [sys.executable, "-m", "cnn_jax.cli", "train", "--config", str(CONFIGS / "mnist_lenet5.py"),
            "--workdir", str(workdir), f"--config.data.data_dir={data_dir}", "--config.data.val_size=512",
            "--config.data.train_subset=768", "--config.batch_size=64", "--config.eval_batch_size=256",
            "--config.num_epochs=2", "--config.progress_bar=false", "--config.log_every_steps=4",
            "--config.checkpoint_every_steps=4", "--config.data.augment.rotation=10.0",
            "--config.data.augment.cutout=8", "--config.data.augment.mixup_alpha=0.4", *extra]


def _env(devices: int) -> dict:
    return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def _start_two(data_dir, workdir, *extra) -> list[subprocess.Popen]:
    port = _free_port()
    return [subprocess.Popen(_command(data_dir, workdir, "--coordinator-address", f"127.0.0.1:{port}",
                                      "--num-processes", "2", "--process-id", str(i), *extra),
                             env=_env(4), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(2)]


def _finish(procs, timeout=300) -> list[tuple[int, str, str]]:
    outputs = [p.communicate(timeout=timeout) for p in procs]
    return [(p.returncode, *out) for p, out in zip(procs, outputs, strict=True)]


def _printed_json(stdout: str) -> dict | None:
    """The results JSON the CLI prints (gloo prints its connection lines to stdout too)."""
    start = stdout.find("{")
    return json.loads(stdout[start:]) if start >= 0 else None


def _saved_steps(workdir: Path) -> list[int]:
    d = workdir / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.exists() else []


def _wait_for_checkpoint(procs, workdir: Path, step: int) -> None:
    deadline = time.time() + 300
    while not any(s >= step for s in _saved_steps(workdir)):
        assert time.time() < deadline and all(p.poll() is None for p in procs), "no checkpoint"
        time.sleep(0.05)


def _checkpoint(workdir: Path, step: int = STEPS) -> dict:
    """A checkpoint as numpy arrays (whatever devices wrote it)."""
    path = (workdir / "checkpoints" / str(step) / "default").absolute()
    with ocp.PyTreeCheckpointer() as c:
        tree = c.metadata(path).item_metadata.tree
        args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
        return c.restore(path, args=ocp.args.PyTreeRestore(restore_args=args))


def _max_diff(a, b) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _records(workdir: Path) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def one_process(mnist_data_dir, tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("one_process")
    out = subprocess.run(_command(mnist_data_dir, workdir), env=_env(8), capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return workdir


@pytest.fixture(scope="module")
def two_processes(mnist_data_dir, tmp_path_factory) -> tuple[Path, list]:
    workdir = tmp_path_factory.mktemp("two_processes")
    results = _finish(_start_two(mnist_data_dir, workdir))
    for code, _, err in results:
        assert code == 0, err[-3000:]
    return workdir, results


@pytest.mark.slow
def test_two_processes_of_four_devices_train_like_one_process_of_eight(one_process, two_processes, capsys):
    workdir, results = two_processes
    assert "8 x cpu in 2 process(es)" in results[1][2]
    one, two = _records(one_process), _records(workdir)
    assert [(r["step"], r["split"]) for r in two] == [(r["step"], r["split"]) for r in one]
    assert len([r for r in one if r["split"] == "train"]) == STEPS // 4
    for a, b in zip(one, two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=TOLERANCE, abs=0)
        # exact: a prediction flips only on a top-2 tie within ~1e-7 of the logits
        assert (b["count"], b["accuracy"]) == (a["count"], a["accuracy"])
        if a["split"] == "train":
            assert b["lr"] == pytest.approx(a["lr"], rel=1e-12)
    final_one, final_two = _checkpoint(one_process), _checkpoint(workdir)
    params_diff = _max_diff(final_one["params"], final_two["params"])
    loss_diff = max(abs(b["loss"] - a["loss"]) / abs(a["loss"]) for a, b in zip(one, two, strict=True))
    with capsys.disabled():
        print(f"\n2 processes x 4 devices vs 1 x 8 after {STEPS} steps: max |param difference| "
              f"{params_diff:.1e}, max relative loss difference {loss_diff:.1e}")
    assert params_diff < TOLERANCE
    assert _max_diff(final_one["opt_state"], final_two["opt_state"]) < TOLERANCE


@pytest.mark.slow
def test_only_process_zero_writes_results_and_metrics(two_processes):
    workdir, results = two_processes
    assert _printed_json(results[0][1])["status"] == "finished" and _printed_json(results[1][1]) is None
    assert (workdir / "results.json").is_file() and (workdir / "log.process1.txt").is_file()
    assert len(_records(workdir)) == len(set((r["step"], r["split"]) for r in _records(workdir)))


@pytest.fixture(scope="module")
def killed_run(mnist_data_dir, tmp_path_factory):
    """Two processes; process 1 is killed with SIGKILL after the checkpoint of step 4."""
    workdir = tmp_path_factory.mktemp("killed")
    procs = _start_two(mnist_data_dir, workdir, "--peer-timeout", "10")
    try:
        _wait_for_checkpoint(procs, workdir, 4)
        procs[1].send_signal(signal.SIGKILL)
        killed_at = time.time()
        code, _, err = _finish(procs[:1], timeout=120)[0]
        waited = time.time() - killed_at
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    return workdir, code, err, waited


@pytest.mark.slow
def test_a_killed_process_stops_the_other_within_the_timeout_with_one_line(killed_run, capsys):
    workdir, code, err, waited = killed_run
    with capsys.disabled():
        print(f"\nprocess 0 exited {waited:.1f} s after process 1 was killed (--peer-timeout 10)")
    assert code == 1 and waited < 60, err[-3000:]
    # Either the watchdog notices the silence (10-19 s), or a collective in flight fails first
    # because its connection to the dead process was reset; both end with one line.
    last = err.strip().splitlines()[-1]
    assert (last.startswith("error: process 1 of 2 has sent no heartbeat for 1")
            or last.startswith("error: process 0 of 2 lost a peer in a collective (")), err[-3000:]
    assert "Traceback" not in err and err.count("error:") == 1, err[-3000:]
    assert "Restart every process with the same command" in err
    assert max(_saved_steps(workdir)) < STEPS


@pytest.mark.slow
def test_both_processes_restarted_after_a_kill_resume_to_the_same_parameters(
        mnist_data_dir, killed_run, two_processes):
    workdir = killed_run[0]
    restarted = _finish(_start_two(mnist_data_dir, workdir))
    for code, _, err in restarted:
        assert code == 0, err[-3000:]
    assert "resumed from step" in restarted[0][2]
    # The same process layout from a checkpoint replays the same computation, to the bit.
    final, uninterrupted = _checkpoint(workdir), _checkpoint(two_processes[0])
    for a, b in zip(jax.tree.leaves(final["params"]), jax.tree.leaves(uninterrupted["params"]), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_sigterm_to_one_process_checkpoints_both_at_the_same_step(mnist_data_dir, tmp_path, two_processes):
    # One step per call: 20 calls remain after the checkpoint of step 4, so the processes agree
    # on a stop step before the run ends (with 4 steps per call only 5 calls remain, and a run
    # that ends first simply finishes).
    one_per_call = "--config.steps_per_call=1"
    procs = _start_two(mnist_data_dir, tmp_path, one_per_call)
    _wait_for_checkpoint(procs, tmp_path, 4)
    procs[1].send_signal(signal.SIGTERM)
    results = _finish(procs)
    statuses = [_printed_json(out) for _, out, _ in results]
    assert [code for code, _, _ in results] == [0, 0], results[0][2][-2000:]
    stopped = statuses[0]["step"]
    assert statuses[0]["status"] == "preempted" and stopped < STEPS
    assert all(f"stopped at step {stopped}" in err for _, _, err in results)
    restarted = _finish(_start_two(mnist_data_dir, tmp_path, one_per_call))
    assert [code for code, _, _ in restarted] == [0, 0], restarted[0][2][-2000:]
    assert f"resumed from step {stopped}" in restarted[0][2]
    # The uninterrupted run took 4 steps per call: the same steps, the same bits.
    assert _max_diff(_checkpoint(tmp_path)["params"], _checkpoint(two_processes[0])["params"]) == 0


@pytest.mark.slow
def test_when_the_coordinator_dies_the_other_process_exits_at_once(mnist_data_dir, tmp_path):
    procs = _start_two(mnist_data_dir, tmp_path, "--peer-timeout", "10")
    try:
        _wait_for_checkpoint(procs, tmp_path, 8)
        procs[0].send_signal(signal.SIGKILL)
        killed_at = time.time()
        code, _, err = _finish(procs[1:], timeout=120)[0]
        waited = time.time() - killed_at
    finally:
        for p in procs:
            p.kill()
    # JAX's client notices the lost coordinator within a second and aborts the process (or our
    # watchdog does, whichever is first).
    assert code != 0 and waited < 60
    assert "leader task was preempted/died" in err or "lost the coordinator" in err, err[-2000:]


# ---- where the process group comes from (no processes started) ------------------------------
def test_process_group_comes_from_flags_then_environment_then_cluster_detection():
    from cnn_jax.training.distributed import DistributedOptions

    flags = DistributedOptions.from_args("10.0.0.1:1234", 4, 3, environ={})
    assert (flags.coordinator_address, flags.num_processes, flags.process_id, flags.enabled) == (
        "10.0.0.1:1234", 4, 3, True)
    env = {"JAX_COORDINATOR_ADDRESS": "h0:99", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}
    from_env = DistributedOptions.from_args(environ=env)
    assert (from_env.coordinator_address, from_env.num_processes, from_env.process_id) == ("h0:99", 2, 1)
    assert DistributedOptions.from_args(process_id=0, environ=env).process_id == 0  # flags first
    assert DistributedOptions.from_args(distributed=True, environ={}).auto_detect  # TPU pods etc.
    assert DistributedOptions.from_args(environ={"SLURM_STEP_NUM_TASKS": "8"}).auto_detect  # srun -n 8
    assert not DistributedOptions.from_args(environ={"SLURM_STEP_NUM_TASKS": "1"}).enabled
    assert not DistributedOptions.from_args(environ={}).enabled  # one process, nothing initialised


def test_checkpoint_barriers_of_a_multi_process_run_go_through_the_coordinator():
    # Orbax's default barrier is a device collective, which its background saving thread would
    # run beside the train step's collectives (gloo aborts when two threads' collectives cross).
    code = ("from cnn_jax.training.distributed import _checkpoint_barriers_through_the_coordinator as f\n"
            "from orbax.checkpoint._src.multihost import multihost as m\n"
            "f()\nprint(m.EXPERIMENTAL_ORBAX_USE_DISTRIBUTED_BARRIER.value)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr[-2000:]


def test_a_collective_cut_by_a_dead_peer_is_told_apart_from_a_bug():
    from jax.errors import JaxRuntimeError

    from cnn_jax.training.distributed import is_peer_failure

    reset = JaxRuntimeError("UNKNOWN: Gloo AllGather failed: [external/gloo/gloo/transport/tcp/"
                            "pair.cc:538] Read error [127.0.0.1]:402: Connection reset by peer")
    assert is_peer_failure(reset)
    assert not is_peer_failure(JaxRuntimeError("INVALID_ARGUMENT: shapes (3,) and (4,) differ"))
    assert not is_peer_failure(ValueError("Connection reset by peer"))  # not from a collective


@pytest.mark.parametrize("args, message", [
    (("h0:1234", None, 0), "missing --num-processes"),
    (("h0:1234", 2, 2), "--process-id 2 is not in \\[0, 2\\)"),
    (("h0", 2, 0), "needs a port"),
])
def test_incomplete_process_group_flags_fail_with_the_fix(args, message):
    from cnn_jax.training.distributed import DistributedError, DistributedOptions

    with pytest.raises(DistributedError, match=message):
        DistributedOptions.from_args(*args, environ={})


def test_cli_reports_bad_process_group_flags_in_one_line(capsys):
    from cnn_jax.cli import main

    code = main(["train", "--config", str(CONFIGS / "mnist_lenet5.py"), "--coordinator-address", "h0:1",
                 "--process-id", "0"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "error: a multi-process run needs --coordinator-address, --num-processes and --process-id "
        "together (missing --num-processes), or --distributed to let JAX detect the cluster")


# ---- every process count gives the same global batches ----------------------------------------
AUGMENT = {"random_crop_padding": 2, "rotation": 10.0, "elastic_alpha": 8.0, "horizontal_flip": True,
           "brightness": 0.2, "contrast": 0.2, "cutout": 6, "mixup_alpha": 0.4, "cutmix_alpha": 1.0}


def _global_batch(data_config, processes: int, step: int, **kwargs) -> dict:
    from cnn_jax.data.pipeline import create_input_pipeline

    parts = [create_input_pipeline(data_config, seed=5, process_index=i, process_count=processes, **kwargs)
             .train_batch(1, step) for i in range(processes)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@pytest.mark.parametrize("processes", [2, 4, 8])
def test_augmented_batches_do_not_depend_on_the_process_count(mnist_data_dir, processes):
    data = {"name": "mnist", "data_dir": str(mnist_data_dir), "val_size": 96, "augment": AUGMENT}
    for step in (0, 3):
        one = _global_batch(data, 1, step, batch_size=32, eval_batch_size=32)
        split = _global_batch(data, processes, step, batch_size=32, eval_batch_size=32)
        assert set(one) == {"image", "label", "targets"}
        for key in one:
            np.testing.assert_array_equal(split[key], one[key], err_msg=key)


def test_augmented_photo_batches_do_not_depend_on_the_process_count(shared_data):
    data = {"name": f"folder:{shared_data / 'imagenette_sample'}", "val_size": 0, "image_size": 64,
            "eval_resize": 73, "cache": False,
            "augment": {"random_resized_crop": True, "horizontal_flip": True, "mixup_alpha": 0.4}}
    one = _global_batch(data, 1, 2, batch_size=8, eval_batch_size=8)
    two = _global_batch(data, 2, 2, batch_size=8, eval_batch_size=8)
    for key in one:
        np.testing.assert_array_equal(two[key], one[key], err_msg=key)


def test_mixing_needs_an_even_share_of_the_batch_per_process(mnist_data_dir):
    from cnn_jax.data.pipeline import create_input_pipeline

    data = {"name": "mnist", "data_dir": str(mnist_data_dir), "val_size": 96, "augment": {"mixup_alpha": 0.4}}
    with pytest.raises(ValueError, match="make batch_size=6 a multiple of 4"):
        create_input_pipeline(data, seed=0, batch_size=6, eval_batch_size=6, process_index=0, process_count=2)

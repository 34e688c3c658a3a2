"""The speed benchmarks of experiments/ keep running: each one end to end at toy sizes (--smoke),
checking the shape of what it reports and of the results file it writes, never a time (the numbers
are in experiments/results/, rendered into docs/performance.md)."""

import importlib.util
import json
import sys

import pytest
from conftest import CONFIGS, REPO_ROOT
from experiment_scripts import script

from cnn_jax.config import load_config
from cnn_jax.training.validate import validate_config

EXPERIMENTS = REPO_ROOT / "experiments"


@pytest.mark.parametrize("name,shape,kwargs", [
    ("lenet5", (28, 28, 1), {}), ("lenet5_modern", (28, 28, 1), {}), ("resnet20", (32, 32, 3), {}),
    ("mobilenet_v1_050", (32, 32, 3), {}),
    # the beyond-labels twins, at configs/nuclei_unet.py's U-Net and the benchmark's inputs
    ("unet", (128, 128, 1), {"padding": "same", "base_width": 32, "batch_norm": True}),
    ("c3d_small", (16, 64, 64, 1), {}), ("tcn_seq_mnist", (28, 28, 1), {}),
    ("yolov1_small", (64, 64, 1), {})])
def test_each_pytorch_twin_has_exactly_the_parameters_of_its_cnn_jax_model(name, shape, kwargs):
    import jax
    import torch  # noqa: F401  (a test requirement: CI installs it; without it this fails)

    from cnn_jax.models import create_model
    from cnn_jax.training.state import count_params, init_variables

    twins = script("_torch_models")
    model = create_model(name, num_classes=10, **kwargs)
    variables = jax.eval_shape(lambda: init_variables(model, jax.random.key(0), shape))
    twin = twins.create_torch_model(name, 10, shape, **kwargs)
    assert twins.count_parameters(twin) == count_params(variables["params"])


@pytest.mark.slow  # both sides compile and run in their own processes: CI runs it with -m slow
def test_train_step_benchmark_reports_both_sides_and_their_ratio(tmp_path):
    import torch  # noqa: F401  (a test requirement: CI installs it; without it this fails)
    bench = script("bench_train_step")
    out = bench.main(["--smoke", "--json", str(tmp_path / "out.json")])
    (row,) = out["results"]
    assert row["model"] == "lenet5" and row["batch"] == 8
    assert set(row["images_per_s"]) == {"cnn_jax", "cnn_jax_chunk2", "torch"}
    assert all(v > 0 for v in row["images_per_s"].values())
    assert row["ratio_vs_torch"]["cnn_jax"] == pytest.approx(
        row["images_per_s"]["cnn_jax"] / row["images_per_s"]["torch"], rel=1e-2)
    assert out["settings"]["threads"] >= 1
    assert len(out["machine"]["load_average_before"]) == len(out["machine"]["load_average_after"]) == 3
    assert json.loads((tmp_path / "out.json").read_text()) == json.loads(json.dumps(out))
    assert out["command"].endswith(f"experiments/bench_train_step.py --smoke --json {tmp_path / 'out.json'}")
    assert out["name"] == "bench_train_step" and out["smoke"] is True
    (results_table,) = out["tables"]
    assert results_table["rows"][0][0] == "lenet5 (`configs/mnist_lenet5.py`)"
    assert results_table["rows"][0][-3] == f"**{row['ratio_vs_torch']['cnn_jax']:.2f}x**"
    table = bench.markdown_table(out["results"])
    assert table.splitlines()[2].startswith("| lenet5 | 8 |")


@pytest.mark.slow  # both sides compile and run in their own processes: CI runs it with -m slow
def test_time_to_accuracy_benchmark_trains_both_sides_from_a_cold_start(shared_data, tmp_path):
    import torch  # noqa: F401  (a test requirement: CI installs it; without it this fails)
    bench = script("bench_time_to_accuracy")
    out = bench.main(["--smoke", "--shared-data", str(shared_data), "--workdir", str(tmp_path / "runs"),
                      "--data-dir", str(tmp_path / "tfds")])
    (jax_run,), (torch_run,) = out["runs"]["cnn_jax"], out["runs"]["torch"]
    assert 0.0 <= jax_run["accuracy"] <= 1.0 and 0.0 <= torch_run["accuracy"] <= 1.0
    assert jax_run["compile_s"] > 0 and jax_run["wall_s"] >= jax_run["trainer_wall_s"]
    assert jax_run["epochs"] == 1 and torch_run["epochs"] == 1
    assert out["import_s"] > 0 and out["summary"]["speedup_vs_torch"] > 0


def test_fast_mnist_config_is_valid_and_trains_without_a_validation_split():
    config = load_config(CONFIGS / "mnist_lenet5_fast.py")
    validate_config(config, num_devices=1)
    assert config.data.val_size == 0 and config.optimizer.schedule == "onecycle"


@pytest.mark.slow  # about 20-100 s on 2 cores: CI runs it with -m slow
def test_gpu_benchmark_runs_every_part_on_the_cpu_at_toy_sizes(shared_data, tmp_path):
    bench = script("bench_gpu")
    out = bench.main(["--smoke", "--cifar", str(shared_data / "cifar10_jpeg.npz"), "--json", str(tmp_path / "g.json")])
    assert out["device"]["platform"] == "cpu" and out["machine"]["devices"].startswith("1 x ")
    assert [r[0].split(",")[0] for r in out["tables"][0]["rows"]] == [
        "ResNet-50 training", "ResNet-50 inference", "CIFAR-10"]
    assert out["resnet50_train"]["images_per_s"] > 0 and 0 < out["resnet50_train"]["mfu"] < 1
    assert out["resnet50_infer"]["images_per_s"] > 0
    (run,) = out["airbench"]["runs"]
    assert run["train_images"] == 256 and run["tta"] == "flip" and 0.0 <= run["accuracy"] <= 1.0
    assert json.loads((tmp_path / "g.json").read_text())["airbench"]["runs"][0]["steps"] == 4


def test_airbench_whitening_kernel_whitens_the_training_patches():
    import numpy as np

    bench = script("bench_gpu")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    kernel = bench.whitening_kernel(images, eps=0.0)
    assert kernel.shape == (2, 2, 3, 24)
    x = (images / 255.0 - np.asarray(bench.CIFAR_MEAN)) / np.asarray(bench.CIFAR_STD)
    patches = np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
    patches = patches.reshape(-1, 12)
    out = (patches - patches.mean(0)) @ kernel[..., :12].reshape(12, 12)
    np.testing.assert_allclose(np.cov(out.T, bias=True), np.eye(12), atol=1e-3)


def test_train_step_profile_times_and_sums_the_trace_by_kind_of_operation(capsys):
    profile = script("profile_train_step")
    out = profile.main(["--smoke"])
    assert out["ms_per_step"] > 0 and out["model"] == "lenet5"
    assert out["ms_per_step_by_kind"] and all(v >= 0 for v in out["ms_per_step_by_kind"].values())
    assert not any(k[-1].isdigit() for k in out["ms_per_step_by_kind"])  # numbers folded into kinds


def test_each_convolution_lever_of_the_profile_computes_the_same_convolution_and_gradients():
    import jax
    import jax.numpy as jnp
    import numpy as np

    profile = script("profile_train_step")
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 9, 8, 3)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 3, 4)), jnp.float32)
    args = ((2, 1), ((1, 1), (0, 1)), (1, 2))  # strides, padding, dilation

    def loss(fn):
        return jax.value_and_grad(lambda x, w: jnp.sum(jnp.tanh(fn(x, w, *args))), argnums=(0, 1))(x, w)

    want = loss(profile._xla_conv)
    for fn in (profile.im2col_conv, profile.tap_dw_conv, profile.barrier_conv):
        for a, b in zip(jax.tree.leaves(loss(fn)), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_conv_layer_benchmark_reports_each_side_per_shape(tmp_path):
    rows = script("bench_conv_layer").main(["--smoke", "--out", str(tmp_path / "conv.json")])
    assert len(rows) == 1 and rows[0]["jax_fwd_bwd_ms"] > 0 and rows[0]["jax_transpose_chwn_ms"] > 0
    assert "torch_fwd_bwd_ms" in rows[0]  # CI installs torch (the parity tests need it)
    record = json.loads((tmp_path / "conv.json").read_text())
    assert record["name"] == "bench_conv_layer" and record["rows"] == rows
    assert record["tables"][0]["rows"] == [["8x8x64", *(str(rows[0].get(k, "n/a")) for k in (
        "jax_fwd_bwd_ms", "jax_onednn_fwd_bwd_ms", "torch_fwd_bwd_ms", "jax_transpose_chwn_ms"))]]


def test_a_smoke_results_file_renders_with_its_command_machine_and_table(tmp_path):
    script("bench_conv_layer").main(["--covering", "--smoke", "--out", str(tmp_path / "cov.json")])
    record = json.loads((tmp_path / "cov.json").read_text())
    text = script("render_results").render_record(record)
    first, table = text.split("\n\n")[:2]
    assert first.startswith(f"`{record['command']}` · {record['date'][:10]} ")
    assert f"{record['machine']['cpu']}, {record['machine']['cores_used']} cores, load average" in first
    assert f"jax {record['versions']['jax']}" in first and "smoke run" in first
    assert table.splitlines()[0].startswith("| batch | input ") and table.splitlines()[2].startswith("| 2 ")


def test_smoke_runs_write_no_results_file_unless_asked(tmp_path):
    sys.path.insert(0, str(EXPERIMENTS))
    common = importlib.import_module("_common")  # the module the scripts share, not a copy
    assert common.results_path("bench_gpu", None, smoke=True) is None
    assert common.results_path("bench_gpu", "", smoke=False) == REPO_ROOT / "experiments/results/bench_gpu.json"
    assert common.results_path("bench_gpu", tmp_path / "g.json", smoke=True) == tmp_path / "g.json"


def test_conv_layer_benchmark_times_each_pass_of_an_upsampling_layer_three_ways():
    rows = script("bench_conv_layer").main(["--upsampling", "--smoke"])
    assert len(rows) == 1 and rows[0]["stride"] == 32 and rows[0]["scores"] == [4, 4, 11]
    for pass_ in ("forward", "backward_data", "backward_weights"):
        assert all(rows[0][f"{pass_}_{route}_ms"] > 0 for route in ("onednn", "xla", "blocks"))
    assert rows[0]["backward_data_cnn_jax"] == "blocks"
    assert rows[0]["forward_cnn_jax"] == rows[0]["backward_weights_cnn_jax"] == "onednn"


def test_conv_layer_benchmark_times_covering_kernels_three_ways():
    rows = script("bench_conv_layer").main(["--covering", "--smoke"])
    assert len(rows) == 1 and (rows[0]["size"], rows[0]["in"], rows[0]["out"]) == (5, 16, 120)
    assert all(rows[0][k] > 0 for k in ("xla_ms", "onednn_conv_ms", "cnn_jax_ms"))

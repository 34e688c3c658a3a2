"""`initialize_from_config`: per-layer-type initialisers, and transfer from a run or torchvision weights.

The transfer tests load a real 1-epoch LeNet-5 run on MNIST (trained once per module, a few
seconds) and a LeNet-5-shaped torch state dict saved as .pth and .safetensors.
"""

import functools
import json
import logging
import math
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax.traverse_util import flatten_dict
from trainer_utils import small_config

from cnn_jax.config import base_config
from cnn_jax.convert import from_torch
from cnn_jax.models import create_model
from cnn_jax.training.checkpoint import RunCheckpoints
from cnn_jax.training.init import check_init_config, initialize_from_config
from cnn_jax.training.loop import train_and_evaluate

MNIST = (28, 28, 1)


def init_config(**values):
    cfg = base_config().init
    for key, value in values.items():
        cfg[key] = value
    return cfg


@functools.cache
def lenet_variables(name="lenet5", num_classes=10, seed=0):
    """Fresh-looking {'params', 'batch_stats'}: random numpy arrays of the model's shapes (traced with
    eval_shape, nothing compiled)."""
    model = create_model(name, num_classes=num_classes)
    abstract = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, *MNIST), jnp.float32))
    rng = np.random.default_rng(seed)
    params = jax.tree.map(lambda s: rng.normal(0.0, 0.1, s.shape).astype(s.dtype), abstract["params"])
    return {"params": params, "batch_stats": {}}


def lenet5_variables(num_classes=10, seed=0):
    return lenet_variables("lenet5", num_classes, seed)


def flat(tree) -> dict[str, np.ndarray]:
    return {"/".join(k): np.asarray(v) for k, v in flatten_dict(tree).items()}


def synthetic_variables(dtype=np.float32) -> dict:
    """Every kind of leaf: 2-D, 1-D and depthwise conv kernels, dense kernel, biases, BatchNorm, PReLU."""
    rng = np.random.default_rng(0)

    def r(*shape):
        return rng.normal(size=shape).astype(dtype)

    params = {
        "conv2d": {"kernel": r(3, 3, 64, 128), "bias": r(128)},
        "conv1d": {"kernel": r(5, 16, 32), "bias": r(32)},
        "depthwise": {"kernel": r(3, 3, 1, 64)},
        "bn": {"scale": r(128), "bias": r(128)},
        "act/prelu": {"alpha": r(1)},
        "dense": {"kernel": r(512, 100), "bias": r(100)},
    }
    return {"params": params, "batch_stats": {"bn": {"mean": r(128), "var": r(128)}}}


# --------------------------------------------------------------------------------------------
# Initialisers per layer type
# --------------------------------------------------------------------------------------------
def _assert_std(values: np.ndarray, expected: float) -> None:
    # The sample std of n Gaussian draws has relative standard error 1/sqrt(2n): allow 5 of them.
    n = values.size
    assert abs(values.std() / expected - 1) < 5 / math.sqrt(2 * n), (values.std(), expected, n)


def test_he_normal_conv_kernels_have_std_sqrt_2_over_fan_in_and_other_leaves_keep_their_values():
    fresh = synthetic_variables()
    out = initialize_from_config(init_config(conv_kernel="he_normal", dense_kernel="glorot_normal", bias="ones"),
                                 fresh, rng=jax.random.key(0), model_name="lenet5", image_shape=MNIST)
    p = out["params"]
    _assert_std(np.asarray(p["conv2d"]["kernel"]), math.sqrt(2 / (3 * 3 * 64)))
    _assert_std(np.asarray(p["conv1d"]["kernel"]), math.sqrt(2 / (5 * 16)))
    _assert_std(np.asarray(p["depthwise"]["kernel"]), math.sqrt(2 / (3 * 3 * 1)))
    _assert_std(np.asarray(p["dense"]["kernel"]), math.sqrt(2 / (512 + 100)))
    for layer in ("conv2d", "conv1d", "dense"):
        np.testing.assert_array_equal(p[layer]["bias"], 1.0)
    # A BatchNorm's shift is not a layer bias; scales, PReLU slopes and statistics are untouched.
    for path in ("bn/scale", "bn/bias", "act/prelu/alpha"):
        np.testing.assert_array_equal(flat(p)[path], flat(fresh["params"])[path])
    np.testing.assert_array_equal(flat(out["batch_stats"])["bn/mean"], fresh["batch_stats"]["bn"]["mean"])
    assert all(isinstance(v, jax.Array) and v.dtype == jnp.float32 for v in jax.tree.leaves(out))


def test_only_the_layer_types_that_are_set_are_reinitialised():
    fresh = synthetic_variables()
    out = initialize_from_config(init_config(dense_kernel="zeros"), fresh, rng=jax.random.key(0),
                                 model_name="lenet5", image_shape=MNIST)
    np.testing.assert_array_equal(out["params"]["dense"]["kernel"], 0.0)
    for path, value in flat(fresh["params"]).items():
        if path != "dense/kernel":
            np.testing.assert_array_equal(flat(out["params"])[path], value, err_msg=path)


def test_each_array_draws_from_a_key_of_its_path_independent_of_tree_order():
    fresh = synthetic_variables()
    reordered = {"batch_stats": fresh["batch_stats"],
                 "params": dict(reversed(list(fresh["params"].items())))}
    reordered["params"]["conv2d_twin"] = fresh["params"]["conv2d"]  # one more layer, same shape
    cfg = init_config(conv_kernel="he_uniform", bias="normal")

    def run(variables, seed):
        return flat(initialize_from_config(cfg, variables, rng=jax.random.key(seed), model_name="lenet5",
                                           image_shape=MNIST)["params"])

    a, b, c = run(fresh, 0), run(reordered, 0), run(fresh, 1)
    for path in a:
        np.testing.assert_array_equal(a[path], b[path], err_msg=path)
    assert not np.array_equal(b["conv2d/kernel"], b["conv2d_twin/kernel"])
    assert not np.array_equal(a["conv2d/kernel"], c["conv2d/kernel"])


def test_unknown_initialiser_name_fails_in_one_line_listing_the_known_names():
    with pytest.raises(ValueError, match=r"^init\.dense_kernel='he_gaussian' is not an initialiser: use one of "
                                         r".*glorot_uniform.*he_normal") as err:
        initialize_from_config(init_config(dense_kernel="he_gaussian"), synthetic_variables(),
                               rng=jax.random.key(0), model_name="lenet5", image_shape=MNIST)
    assert "\n" not in str(err.value)


def test_default_init_config_returns_the_fresh_values_as_jax_arrays_of_their_dtype():
    fresh = synthetic_variables(np.float16)
    out = initialize_from_config(init_config(), fresh, rng=jax.random.key(0), model_name="lenet5",
                                 image_shape=MNIST)
    expected = flat(fresh)
    assert flat(out).keys() == expected.keys()
    for path, value in flat(out).items():
        assert value.dtype == np.float16
        np.testing.assert_array_equal(value, expected[path], err_msg=path)
    assert all(isinstance(v, jax.Array) for v in jax.tree.leaves(out))


# --------------------------------------------------------------------------------------------
# Transfer from a cnn-jax run
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_run(mnist_data_dir, tmp_path_factory):
    """A finished 1-epoch LeNet-5 run and the params of its best checkpoint, read back by Orbax."""
    workdir = tmp_path_factory.mktemp("source_run")
    train_and_evaluate(small_config(mnist_data_dir, num_epochs=1), workdir)
    (best_step,) = [p for p in (workdir / "best").iterdir() if p.name.isdigit()]
    restored = ocp.StandardCheckpointer().restore((best_step / "default").absolute())
    return workdir, flat(restored["params"])


def test_loading_a_run_reproduces_its_best_params_bitwise(trained_run):
    workdir, trained = trained_run
    out = initialize_from_config(init_config(checkpoint=str(workdir)), lenet5_variables(seed=7),
                                 rng=jax.random.key(0), model_name="lenet5", image_shape=MNIST)
    loaded = flat(out["params"])
    assert loaded.keys() == trained.keys()
    for path in trained:
        np.testing.assert_array_equal(loaded[path], trained[path], err_msg=path)


def test_loaded_arrays_take_the_dtype_of_the_fresh_ones(trained_run):
    workdir, trained = trained_run
    fresh = jax.tree.map(lambda x: x.astype(jnp.bfloat16), lenet5_variables())  # numpy (ml_dtypes)
    out = initialize_from_config(init_config(checkpoint=str(workdir)), fresh, rng=jax.random.key(0),
                                 model_name="lenet5", image_shape=MNIST)
    kernel = out["params"]["c1"]["kernel"]
    assert kernel.dtype == jnp.bfloat16
    np.testing.assert_array_equal(kernel, trained["c1/kernel"].astype(jnp.bfloat16))


def test_new_head_for_k_classes_stays_fresh_and_everything_else_is_loaded(trained_run, caplog):
    workdir, trained = trained_run
    fresh = lenet5_variables(num_classes=5)
    logger = logging.getLogger("cnn_jax")  # the trainer stops it propagating to the root logger
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="cnn_jax"):
            out = initialize_from_config(init_config(checkpoint=str(workdir), exclude_regex="^output/"), fresh,
                                         rng=jax.random.key(0), model_name="lenet5", image_shape=MNIST)
    finally:
        logger.removeHandler(caplog.handler)
    loaded, fresh_flat = flat(out["params"]), flat(fresh["params"])
    assert loaded["output/kernel"].shape == (84, 5)
    for path in loaded:
        expected = fresh_flat[path] if path.startswith("output/") else trained[path]
        np.testing.assert_array_equal(loaded[path], expected, err_msg=path)
    assert "loaded 8 arrays" in caplog.text and "2 kept fresh" in caplog.text


def test_loaded_arrays_win_over_layer_initialisers_and_excluded_ones_get_them(trained_run):
    workdir, trained = trained_run
    cfg = init_config(checkpoint=str(workdir), exclude_regex="^output/", dense_kernel="zeros", bias="ones")
    out = flat(initialize_from_config(cfg, lenet5_variables(num_classes=5), rng=jax.random.key(0),
                                      model_name="lenet5", image_shape=MNIST)["params"])
    np.testing.assert_array_equal(out["f6/kernel"], trained["f6/kernel"])
    np.testing.assert_array_equal(out["c1/bias"], trained["c1/bias"])
    np.testing.assert_array_equal(out["output/kernel"], 0.0)
    np.testing.assert_array_equal(out["output/bias"], 1.0)


def test_head_of_another_size_without_exclude_fails_naming_the_array_and_exclude_regex(trained_run):
    workdir, _ = trained_run
    with pytest.raises(ValueError, match=r"'output/kernel' has shape \(84, 10\) there and \(84, 5\) here.*"
                                         r"init\.exclude_regex='\^output/'") as err:
        initialize_from_config(init_config(checkpoint=str(workdir)), lenet5_variables(num_classes=5),
                               rng=jax.random.key(0), model_name="lenet5", image_shape=MNIST)
    assert "\n" not in str(err.value)


def test_another_architecture_fails_naming_the_arrays_on_each_side(trained_run):
    workdir, _ = trained_run
    with pytest.raises(ValueError, match=r"arrays there are not here: .*'c5/.*another architecture: point "
                                         r"init\.checkpoint at weights of this model"):
        initialize_from_config(init_config(checkpoint=str(workdir)), lenet_variables("lenet1"),
                               rng=jax.random.key(0), model_name="lenet1", image_shape=MNIST)


def test_best_checkpoint_is_preferred_and_the_latest_used_without_one(trained_run, tmp_path):
    # A newer checkpoint with other params and an optimizer state of another structure: the best
    # one still wins; without best/ the newest is read, its opt_state never needed.
    source, trained = trained_run
    workdir = tmp_path / "run"
    shutil.copytree(source, workdir)
    ckpt = RunCheckpoints(workdir, keep=3)
    shifted = jax.tree.map(lambda x: x + 1.0, {"c": trained})
    items = {"step": np.int32(1000), "params": _unflatten(shifted["c"]), "batch_stats": {},
             "opt_state": {"other_optimizer": np.zeros(3, np.float32)}}
    ckpt.save_latest(1000, items)
    ckpt.wait()
    ckpt.close()

    def load():
        out = initialize_from_config(init_config(checkpoint=str(workdir)), lenet5_variables(),
                                     rng=jax.random.key(0), model_name="lenet5", image_shape=MNIST)
        return flat(out["params"])["c3/kernel"]

    np.testing.assert_array_equal(load(), trained["c3/kernel"])
    shutil.rmtree(workdir / "best")
    np.testing.assert_array_equal(load(), trained["c3/kernel"] + 1.0)


def _unflatten(flat_tree: dict[str, np.ndarray]) -> dict:
    from flax.traverse_util import unflatten_dict

    return unflatten_dict({tuple(k.split("/")): v for k, v in flat_tree.items()})


def test_batch_stats_are_loaded_only_with_init_batch_stats(tmp_path):
    source = synthetic_variables()
    saved = jax.tree.map(lambda x: x + 10.0, source)
    (tmp_path / "config.json").write_text(json.dumps({"model": {"name": "synthetic"}}))
    ckpt = RunCheckpoints(tmp_path, keep=1)
    ckpt.save_latest(5, {"step": np.int32(5), **saved, "opt_state": {}})
    ckpt.wait()
    ckpt.close()
    fresh = synthetic_variables()
    for with_stats in (True, False):
        out = initialize_from_config(init_config(checkpoint=str(tmp_path), batch_stats=with_stats), fresh,
                                     rng=jax.random.key(0), model_name="lenet5", image_shape=MNIST)
        np.testing.assert_array_equal(out["params"]["bn"]["scale"], saved["params"]["bn"]["scale"])
        expected = saved if with_stats else fresh
        np.testing.assert_array_equal(out["batch_stats"]["bn"]["var"], expected["batch_stats"]["bn"]["var"])


def test_a_run_that_kept_a_moving_average_transfers_the_average_it_evaluated(tmp_path):
    source = synthetic_variables()
    (tmp_path / "config.json").write_text(json.dumps({"model": {"name": "synthetic"}}))
    ckpt = RunCheckpoints(tmp_path, keep=1)
    average = jax.tree.map(lambda x: x - 3.0, source["params"])
    ckpt.save_latest(5, {"step": np.int32(5), **source, "opt_state": {}, "ema_params": average})
    ckpt.wait()
    ckpt.close()
    out = initialize_from_config(init_config(checkpoint=str(tmp_path)), synthetic_variables(np.float16),
                                 rng=jax.random.key(0), model_name="lenet5", image_shape=MNIST)
    np.testing.assert_array_equal(out["params"]["dense"]["kernel"],
                                  average["dense"]["kernel"].astype(np.float16))


@pytest.mark.parametrize("case", ["missing", "not_a_run", "not_weights", "no_checkpoint"])
def test_a_path_that_is_not_a_run_with_checkpoints_or_weights_fails_naming_the_fix(tmp_path, case):
    path = tmp_path / ("notes.txt" if case == "not_weights" else "run")
    if case == "not_weights":
        path.write_text("not weights")
    elif case != "missing":
        path.mkdir()
    if case == "no_checkpoint":
        (path / "config.json").write_text(json.dumps({"model": {"name": "lenet5"}}))
    expected = {"missing": r"does not exist: give a cnn-jax run's --workdir or a torchvision weights file",
                "not_a_run": r"is not a cnn-jax run \(no config\.json\): give the --workdir",
                "not_weights": r"is neither a run's workdir nor a weights file: give .*\.safetensors",
                "no_checkpoint": r"holds no checkpoint yet: train that run first"}[case]
    with pytest.raises(ValueError, match=expected) as err:
        initialize_from_config(init_config(checkpoint=str(path)), lenet5_variables(),
                               rng=jax.random.key(0), model_name="lenet5", image_shape=MNIST)
    assert "\n" not in str(err.value)


def test_check_init_config_rejects_bad_names_and_paths_without_reading_weights(tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"not read yet")  # the check looks at names and paths, not at contents
    check_init_config(init_config(conv_kernel="kaiming_normal", checkpoint=str(weights)))
    with pytest.raises(ValueError, match=r"init\.bias='gaussian' is not an initialiser"):
        check_init_config(init_config(bias="gaussian"))
    with pytest.raises(ValueError, match=r"init\.checkpoint=.* does not exist"):
        check_init_config(init_config(checkpoint=str(tmp_path / "missing.safetensors")))
    with pytest.raises(ValueError, match=r"needs that run trained first"):  # a later stage
        check_init_config(init_config(checkpoint=str(tmp_path / "runs" / "stage1")))


# --------------------------------------------------------------------------------------------
# Transfer from torchvision-style weights
# --------------------------------------------------------------------------------------------
def lenet5_torch_state(num_classes=10) -> dict[str, np.ndarray]:
    """A LeNet-5 state dict in torch's layout and names: (O, I, kH, kW) convs, (O, I) linears."""
    rng = np.random.default_rng(1)
    shapes = {"c1": (6, 1, 5, 5), "c3": (16, 6, 5, 5), "c5": (120, 16, 5, 5), "f6": (84, 120),
              "output": (num_classes, 84)}
    state = {}
    for name, shape in shapes.items():
        state[f"{name}.weight"] = rng.normal(size=shape).astype(np.float32)
        state[f"{name}.bias"] = rng.normal(size=shape[:1]).astype(np.float32)
    return state


def save_weights(state: dict, path) -> None:
    if path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file(state, str(path))
    else:
        import torch

        torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_torchvision_weights_load_as_convert_from_torch_gives_them(tmp_path, suffix):
    state = lenet5_torch_state()
    path = tmp_path / f"lenet5{suffix}"
    save_weights(state, path)
    out = initialize_from_config(init_config(checkpoint=str(path)), lenet5_variables(seed=3),
                                 rng=jax.random.key(0), model_name="lenet5", image_shape=MNIST, num_classes=10)
    expected = flat(from_torch("lenet5", state)["params"])
    loaded = flat(out["params"])
    assert loaded.keys() == expected.keys()
    for path_ in expected:
        np.testing.assert_array_equal(loaded[path_], expected[path_], err_msg=path_)


def test_torchvision_weights_with_the_default_head_load_under_a_fresh_head_for_k_classes(tmp_path):
    state = lenet5_torch_state(num_classes=10)  # the registry's default head, as ImageNet files have
    path = tmp_path / "lenet5.safetensors"
    save_weights(state, path)
    fresh = lenet5_variables(num_classes=5)
    out = initialize_from_config(init_config(checkpoint=str(path), exclude_regex="^output/"), fresh,
                                 rng=jax.random.key(0), model_name="lenet5", image_shape=MNIST, num_classes=5)
    expected, loaded, fresh_flat = flat(from_torch("lenet5", state)["params"]), flat(out["params"]), flat(fresh["params"])
    for path_ in loaded:
        want = fresh_flat[path_] if path_.startswith("output/") else expected[path_]
        np.testing.assert_array_equal(loaded[path_], want, err_msg=path_)

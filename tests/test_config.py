"""The config schema: overrides are typed, typos and impossible setups fail early in one line."""

import pytest
from conftest import CONFIGS

from cnn_jax.config import base_config, from_dict, load_config
from cnn_jax.errors import ConfigError
from cnn_jax.training.validate import validate_config

LENET5 = str(CONFIGS / "mnist_lenet5.py")


def test_overrides_are_parsed_to_the_type_of_the_key_they_replace():
    c = load_config(LENET5, ["optimizer.lr=1", "data.augment.horizontal_flip=true",
                             "optimizer.decay_epochs=(3, 6)", "model.name=lenet1", "num_epochs=3"])
    assert c.optimizer.lr == 1.0 and isinstance(c.optimizer.lr, float)
    assert c.data.augment.horizontal_flip is True
    assert c.optimizer.decay_epochs == (3, 6)
    assert c.model.name == "lenet1"
    assert c.num_epochs == 3


def test_model_kwargs_accept_new_keys():
    c = load_config(LENET5, ["model.kwargs.activation=relu", "model.kwargs.dropout_rate=0.5"])
    assert c.model.kwargs.to_dict() == {"activation": "relu", "dropout_rate": 0.5}
    assert base_config().model.kwargs.to_dict() == {}


def test_a_config_file_takes_its_variant_after_a_colon(tmp_path):
    path = tmp_path / "family.py"
    path.write_text("from cnn_jax.config import base_config\n"
                    "def get_config(arg=None):\n    c = base_config()\n"
                    "    c.num_epochs = int(arg or 3)\n    return c\n")
    assert load_config(path).num_epochs == 3
    assert load_config(f"{path}:7", ["seed=2"]).num_epochs == 7


def test_a_config_file_without_get_config_is_named_even_after_another_file_loaded(tmp_path):
    # config_flags loads every file under one module name; a stale get_config must not be reused.
    load_config(LENET5)
    path = tmp_path / "empty.py"
    path.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="empty.py"):
        load_config(path)


@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer.lrr=0.1", "did you mean 'optimizer.lr'"),
        ("optimizr.lr=0.1", "did you mean 'optimizer'"),
        ("optimizer.lr=fast", "takes a number"),
        ("num_epochs=2.5", "takes an integer"),
        ("data.augment.horizontal_flip=maybe", "true or false"),
        ("optimizer=3", "is a section"),
        ("seed", "key=value"),
    ],
)
def test_bad_overrides_fail_with_one_line_naming_the_fix(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(LENET5, [override])
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_a_misspelt_key_in_a_config_file_fails(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("from cnn_jax.config import base_config\n"
                    "def get_config():\n    c = base_config()\n    c.optimiser = 1\n    return c\n")
    with pytest.raises(ConfigError, match="bad.py"):
        load_config(path)


def test_missing_config_file_is_named():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(CONFIGS / "no_such_config.py")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.name=lenet6"], "unknown model 'lenet6'"),
        (["data.name=mnst"], "unknown dataset 'mnst'"),
        (["batch_size=100"], "does not split over 8 devices"),
        (["optimizer.name=adagrad"], "optimizer.name='adagrad' is not one of"),
        (["optimizer.lr=0"], "must be positive"),
        (["model.kwargs.no_such_field=1"], "model.kwargs do not fit model 'lenet5'"),
        (["model.name=unet"], "model 'unet' is a segmentation model and the run's task is "
                              "'classification': set task='segmentation'"),
    ],
)
def test_validate_config_rejects_setups_that_cannot_run(overrides, message):
    c = load_config(LENET5, overrides)
    with pytest.raises(ConfigError, match=message):
        validate_config(c, num_devices=8)


def test_validate_config_rejects_images_too_small_for_the_model():
    # AlexNet's stride-4 11x11 stem and three 3x3/2 poolings cannot run on 28x28 MNIST digits.
    c = load_config(LENET5, ["model.name=alexnet_lrn"])
    with pytest.raises(ConfigError, match=r"cannot take 28x28x1 images from mnist"):
        validate_config(c, num_devices=1)


def test_shipped_configs_validate():
    for name in ("mnist_lenet5", "mnist_lenet1", "mnist_mlp", "cifar10_lenet5"):
        validate_config(load_config(CONFIGS / f"{name}.py"), num_devices=1)


def test_saved_config_round_trips():
    c = load_config(LENET5, ["optimizer.decay_epochs=(3,)", "model.kwargs.activation=relu"])
    assert from_dict(c.to_dict()).to_dict() == c.to_dict()


@pytest.mark.parametrize("spec, message", [
    ("cifar10_resnet.py:18", "cifar10_resnet.py: depth='18' is not one of 20, 32, 44, 56, 110"),
    ("mnist_lenet5.py:7", "mnist_lenet5.py: its get_config() takes no argument"),
])
def test_a_bad_variant_argument_fails_with_the_config_files_own_one_line_message(spec, message):
    with pytest.raises(ConfigError) as e:
        load_config(f"{CONFIGS}/{spec}")
    assert message in str(e.value) and "\n" not in str(e.value)

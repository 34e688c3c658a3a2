"""AlexNet (Krizhevsky et al. 2012 / torchvision) and VGG (Simonyan & Zisserman 2015 Table 1):
parameter counts, the layer table, torchvision-mirroring names, heads and dropout."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.models import create_model
from cnn_jax.models.alexnet import AlexNet
from cnn_jax.models.vgg import CFGS, VGG


def variable_shapes(model, input_shape):
    """All variable shapes from an abstract init: nothing is allocated (VGG has 138M parameters)."""
    x = jnp.zeros((1, *input_shape))
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x))


def count(tree) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def layer_output_shapes(model, input_shape, batch=1) -> dict[str, tuple[int, ...]]:
    """Output shape of every named submodule, from an abstract forward pass."""
    x = jnp.zeros((batch, *input_shape))

    def run():
        variables = model.init(jax.random.key(0), x)
        _, state = model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])
        return state["intermediates"]

    captured = jax.eval_shape(run)
    return {
        name: value["__call__"][0].shape for name, value in captured.items() if name != "__call__"
    }


def conv_names(params) -> list[int]:
    """Sorted torchvision indices of the `features_<i>` layers holding a conv kernel."""
    return sorted(
        int(n.split("_")[1])
        for n, p in params.items()
        if n.startswith("features_") and "kernel" in p
    )


# --- AlexNet -----------------------------------------------------------------------------------------


def test_alexnet_torchvision_form_has_61100840_parameters():
    assert count(variable_shapes(create_model("alexnet"), (224, 224, 3))["params"]) == 61_100_840


def test_alexnet_lrn_single_tower_paper_table_has_62378344_parameters():
    # 34,944 + 614,656 + 885,120 + 1,327,488 + 884,992 (convs) + 37,752,832 + 16,781,312 + 4,097,000 (FC)
    assert (
        count(variable_shapes(create_model("alexnet_lrn"), (227, 227, 3))["params"]) == 62_378_344
    )


def test_alexnet_lrn_conv1_row_is_55x55x96_with_34944_parameters():
    model = create_model("alexnet_lrn")
    params = variable_shapes(model, (227, 227, 3))["params"]
    conv1 = params["features_0"]
    assert conv1["kernel"].shape == (11, 11, 3, 96)
    assert count(conv1) == 34_944  # 11*11*3*96 weights + 96 biases
    shapes = layer_output_shapes(model, (227, 227, 3))
    assert shapes["features_0"] == (1, 55, 55, 96)  # (227 - 11) / 4 + 1 = 55


def test_alexnet_lrn_feature_maps_follow_the_lecture_table():
    shapes = layer_output_shapes(create_model("alexnet_lrn"), (227, 227, 3))
    # conv1 55x55x96, LRN, pool 27x27, conv2 27x27x256, LRN, pool 13x13, conv3-5 13x13, pool 6x6.
    assert shapes["features_2"] == (1, 55, 55, 96)  # LRN keeps the shape
    assert shapes["features_4"] == (1, 27, 27, 256)
    assert shapes["features_8"] == (1, 13, 13, 384)
    assert shapes["features_10"] == (1, 13, 13, 384)
    assert shapes["features_12"] == (1, 13, 13, 256)
    assert shapes["classifier_6"] == (1, 1000)


def test_alexnet_names_mirror_torchvision_features_and_classifier_indices():
    params = variable_shapes(create_model("alexnet"), (224, 224, 3))["params"]
    assert conv_names(params) == [0, 3, 6, 8, 10]
    assert {n for n in params if n.startswith("classifier_")} == {
        "classifier_1",
        "classifier_4",
        "classifier_6",
    }
    assert params["features_3"]["kernel"].shape == (5, 5, 64, 192)
    assert params["classifier_1"]["kernel"].shape == (256 * 6 * 6, 4096)
    # With LRN after conv1 and conv2, each takes one more Sequential index.
    lrn_params = variable_shapes(create_model("alexnet_lrn"), (227, 227, 3))["params"]
    assert conv_names(lrn_params) == [0, 4, 8, 10, 12]


def test_alexnet_accepts_63x63_and_pools_a_1x1_map_to_6x6():
    shapes = layer_output_shapes(create_model("alexnet"), (63, 63, 3), batch=2)
    assert shapes["features_10"] == (2, 3, 3, 256)  # the last max pool then leaves 1x1
    assert shapes["classifier_1"] == (2, 4096)
    assert shapes["classifier_6"] == (2, 1000)


def test_alexnet_flattens_channel_major_like_torch():
    # Make conv5's output channel c equal c + 1 everywhere (zero kernel, bias c + 1, ReLU); the input
    # of classifier_1 must then list channel 0's 36 positions first, as torch's NCHW flatten does.
    model = AlexNet(num_classes=3, hidden_sizes=(4,), dropout_rate=0.0)
    x = jnp.zeros((1, 63, 63, 3))
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))["params"]
    params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    params["features_10"]["bias"] = jnp.arange(1.0, 257.0)
    captured = {}

    def spy(next_fun, args, kwargs, context):
        if context.module.name == "classifier_1":
            captured["input"] = args[0]
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(spy):
        model.apply({"params": params}, x)
    flat = captured["input"][0]
    assert flat.shape == (9216,)
    np.testing.assert_array_equal(flat[:36], np.full(36, 1.0))
    np.testing.assert_array_equal(flat[36:72], np.full(36, 2.0))
    np.testing.assert_array_equal(flat[-36:], np.full(36, 256.0))


def test_alexnet_dropout_is_active_only_in_train_mode_with_the_dropout_rng():
    model = AlexNet(num_classes=5, hidden_sizes=(32, 32))
    x = jax.random.normal(jax.random.key(1), (2, 63, 63, 3))
    variables = jax.jit(model.init)(jax.random.key(0), x)
    eval_a = model.apply(variables, x)
    np.testing.assert_array_equal(eval_a, model.apply(variables, x, train=False))
    train_a = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})
    train_b = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(train_a, train_b)
    assert not np.allclose(train_a, eval_a)


def test_alexnet_lrn_order_option_moves_normalisation_after_pooling():
    x = jax.random.normal(jax.random.key(1), (2, 67, 67, 3))
    paper = create_model("alexnet_lrn", num_classes=4, hidden_sizes=(16,))
    variables = jax.jit(paper.init)(jax.random.key(0), x)
    slides = create_model("alexnet_lrn", num_classes=4, hidden_sizes=(16,), lrn_after_pool=True)
    # Same parameters and names (LRN has none), a different function.
    assert not np.allclose(paper.apply(variables, x), slides.apply(variables, x))


# --- VGG ---------------------------------------------------------------------------------------------

VGG_PARAMS = {
    "vgg11": 132_863_336,
    "vgg11_lrn": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16_c": 133_638_952,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840,
    "vgg13_bn": 133_053_736,
    "vgg16_c_bn": 133_647_400,
    "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
}


@pytest.mark.parametrize("name, expected", VGG_PARAMS.items())
def test_vgg_parameter_counts_match_torchvision(name, expected):
    assert count(variable_shapes(create_model(name), (224, 224, 3))["params"]) == expected


@pytest.mark.parametrize(
    "name, millions",
    [
        ("vgg11", 133),
        ("vgg11_lrn", 133),
        ("vgg13", 133),
        ("vgg16_c", 134),
        ("vgg16", 138),
        ("vgg19", 144),
    ],
)
def test_vgg_parameter_counts_round_to_table_2(name, millions):
    assert round(VGG_PARAMS[name] / 1e6) == millions


def test_vgg16_conv_names_mirror_torchvision_features_indices():
    params = variable_shapes(create_model("vgg16"), (32, 32, 3))["params"]
    assert conv_names(params) == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    assert {n for n in params if n.startswith("classifier_")} == {
        "classifier_0",
        "classifier_3",
        "classifier_6",
    }
    assert params["classifier_0"]["kernel"].shape == (512 * 7 * 7, 4096)


def test_vgg16_bn_puts_batch_norm_at_the_index_after_each_conv():
    variables = variable_shapes(create_model("vgg16_bn"), (32, 32, 3))
    convs = conv_names(variables["params"])
    assert convs == [0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40]
    for i in convs:
        bn = f"features_{i + 1}"
        assert set(variables["params"][bn]) == {"scale", "bias"}
        assert set(variables["batch_stats"][bn]) == {"mean", "var"}
    # torchvision keeps the conv bias before BN; so do we, for weight parity.
    assert variables["params"]["features_0"]["bias"].shape == (64,)


def test_vgg16_c_has_1x1_convolutions_as_third_layer_of_blocks_3_to_5():
    params = variable_shapes(create_model("vgg16_c"), (32, 32, 3))["params"]
    assert conv_names(params) == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    assert params["features_14"]["kernel"].shape == (1, 1, 256, 256)
    assert params["features_21"]["kernel"].shape == (1, 1, 512, 512)
    assert params["features_28"]["kernel"].shape == (1, 1, 512, 512)
    assert params["features_12"]["kernel"].shape == (3, 3, 256, 256)


def test_vgg_configurations_have_the_depths_of_table_1():
    weight_layers = {
        col: sum(1 for e in cfg if e not in ("M", "LRN")) + 3 for col, cfg in CFGS.items()
    }
    assert weight_layers == {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}


def test_vgg11_lrn_normalises_after_the_first_convolution():
    shapes = layer_output_shapes(create_model("vgg11_lrn"), (32, 32, 3))
    assert shapes["features_2"] == (1, 32, 32, 64)  # conv 0, ReLU 1, LRN 2, max pool 3
    assert shapes["features_4"] == (1, 16, 16, 128)


def test_vgg_keeps_spatial_size_within_a_block_and_halves_it_at_each_pool():
    shapes = layer_output_shapes(create_model("vgg16"), (224, 224, 3))
    assert shapes["features_0"] == (1, 224, 224, 64)
    assert shapes["features_5"] == (1, 112, 112, 128)
    assert shapes["features_28"] == (1, 14, 14, 512)
    assert shapes["classifier_6"] == (1, 1000)


def test_vgg_cfg_can_be_given_as_a_layer_list():
    custom = VGG(num_classes=10, cfg=(8, "M", (16, 1), "M"), pooled_size=None, hidden_sizes=(32,))
    params = variable_shapes(custom, (8, 8, 3))["params"]
    assert params["features_3"]["kernel"].shape == (1, 1, 8, 16)
    assert params["classifier_0"]["kernel"].shape == (16 * 2 * 2, 32)
    assert params["classifier_3"]["kernel"].shape == (32, 10)


def test_vgg_bn_train_mode_updates_running_statistics_and_eval_mode_uses_them():
    # A two-block VGG keeps the four compilations cheap; the layers are those of vgg11_bn's first blocks.
    model = VGG(
        num_classes=3,
        cfg=(8, "M", 16, "M"),
        batch_norm=True,
        pooled_size=None,
        hidden_sizes=(16,),
        dropout_rate=0.0,
    )
    apply = jax.jit(model.apply, static_argnames=("train", "mutable"))
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
    variables = jax.jit(model.init)(jax.random.key(0), x)
    train_logits, state = apply(variables, x, train=True, mutable=("batch_stats",))
    mean = state["batch_stats"]["features_1"]["mean"]
    # momentum 0.9 (torch's 0.1): running mean = 0.9 * 0 + 0.1 * batch mean of conv1's output.
    conv1 = (
        jax.lax.conv_general_dilated(
            x,
            variables["params"]["features_0"]["kernel"],
            (1, 1),
            ((1, 1), (1, 1)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        + variables["params"]["features_0"]["bias"]
    )
    np.testing.assert_allclose(mean, 0.1 * conv1.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
    # Train mode normalises with the batch's statistics: one example's logits depend on the other.
    alone, _ = apply(variables, x[:1], train=True, mutable=("batch_stats",))
    assert not np.allclose(alone[0], train_logits[0], atol=1e-4)
    # Eval mode uses the running statistics: each example is computed on its own.
    eval_logits = apply(variables, x, train=False)
    np.testing.assert_allclose(
        apply(variables, x[:1], train=False)[0], eval_logits[0], rtol=1e-5, atol=1e-6
    )

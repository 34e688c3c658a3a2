"""ML-Net (Cornia et al. 2016) and the saliency heads: the paper's layers and parameter count,
VGG16's names (so ImageNet weights load), the learned prior as a log-prior, one logit map at the
input's resolution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from model_helpers import filled_variables, num_params, variable_shapes

from cnn_jax.models import create_model, get_model_spec
from cnn_jax.models.vgg import CFGS

PAPER_INPUT = (480, 640, 3)
SCENES = (64, 64, 3)


def _vgg16_conv_parameters() -> int:
    total, channels = 0, 3
    for entry in CFGS["D"]:
        if entry != "M":
            total, channels = total + 9 * channels * entry + entry, entry
    return total


def test_mlnet_has_15452145_parameters():
    vgg16 = _vgg16_conv_parameters()
    assert vgg16 == 14_714_688
    encoding = 9 * (256 + 512 + 512) * 64 + 64  # 3x3 over the 1,280 concatenated channels
    expected = vgg16 + encoding + (64 + 1) + 6 * 8  # + 1x1 to one map + the 6x8 prior
    assert expected == 15_452_145
    assert num_params(create_model("mlnet"), PAPER_INPUT) == expected
    assert num_params(create_model("mlnet", width=0.25), SCENES) == 966_945
    assert get_model_spec("mlnet").input_shape == PAPER_INPUT


def test_mlnet_takes_three_levels_at_one_eighth_of_a_480x640_input():
    model = create_model("mlnet")
    variables = variable_shapes(model, PAPER_INPUT)

    def run(variables, x):
        return model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])

    images = jax.ShapeDtypeStruct((1, *PAPER_INPUT), jnp.float32)
    out, state = jax.eval_shape(run, variables, images)
    captured = {k: v["__call__"][0].shape[1:] for k, v in state["intermediates"].items()
                if k != "__call__"}
    assert captured["features_14"] == (120, 160, 256)  # conv3_3, then pool3 to 60x80
    assert captured["features_21"] == (60, 80, 512)  # conv4_3; pool4 of stride 1 keeps 60x80
    assert captured["features_28"] == (60, 80, 512)  # conv5_3, undilated, at 1/8 too
    assert captured["encoding_conv"] == (60, 80, 64)
    assert captured["saliency_conv"] == (60, 80, 1)
    params = variables["params"]
    assert params["encoding_conv"]["kernel"].shape == (3, 3, 1280, 64)
    assert params["prior"].shape == (6, 8)
    assert out.shape == (1, 480, 640)  # one logit map at the input's resolution


def test_mlnet_vgg_layers_have_torchvision_vgg16_names_and_shapes():
    mlnet = variable_shapes(create_model("mlnet"), (32, 32, 3))["params"]
    vgg16 = variable_shapes(create_model("vgg16"), (32, 32, 3))["params"]
    features = {name for name in vgg16 if name.startswith("features_")}
    assert features == {name for name in mlnet if name.startswith("features_")}
    assert len(features) == 13
    for name in features:
        shapes = [jax.tree.map(lambda a: a.shape, tree[name]) for tree in (mlnet, vgg16)]
        assert shapes[0] == shapes[1], name


def test_the_learned_prior_starts_at_one_and_acts_as_a_log_prior():
    model = create_model("mlnet", width=0.125)
    variables = filled_variables(model, SCENES)
    # jitted, XLA drops all but the prior's initialiser
    prior = jax.jit(lambda key: model.init(key, jnp.zeros((1, *SCENES)))["params"]["prior"])
    assert not np.any(prior(jax.random.key(0)))  # log-prior 0: a prior of 1 everywhere
    images = jnp.asarray(np.random.default_rng(0).random((2, *SCENES)), jnp.float32)
    forward = jax.jit(model.apply)
    logits = forward(variables, images)
    assert logits.shape == (2, 64, 64)
    # A constant log-prior c multiplies the map exp(logits) by e^c everywhere: logits + c (the
    # bilinear resizes' weights sum to 1, up to float32 rounding of a few products).
    shifted = {"params": {**variables["params"], "prior": jnp.full((6, 8), 0.5)}}
    np.testing.assert_allclose(forward(shifted, images), logits + 0.5, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, expected", [("saliency_resnet18", 13_929_985),
                                            ("saliency_resnet50", 32_552_961)])
def test_saliency_heads_count_backbone_and_decoder(name, expected):
    backbone = name.removeprefix("saliency_")
    fc = 512 * 1000 + 1000 if backbone == "resnet18" else 2048 * 1000 + 1000
    params = variable_shapes(create_model(name), SCENES)["params"]
    assert num_params(create_model(name), SCENES) == expected
    assert _count(params["backbone"]) == num_params(create_model(backbone), SCENES) - fc
    assert "fc" not in params["backbone"] and "layer4_1" in params["backbone"]


def _count(tree) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def test_saliency_head_returns_one_map_at_the_input_resolution():
    model = create_model("saliency_resnet18", decoder_widths=(32, 16))
    shapes = variable_shapes(model, (72, 56, 3))
    out = jax.eval_shape(model.apply, shapes, jax.ShapeDtypeStruct((2, 72, 56, 3), jnp.float32))
    assert out.shape == (2, 72, 56)


def test_saliency_models_predict_one_map():
    for name in ("mlnet", "saliency_resnet18"):
        assert get_model_spec(name).task == "saliency" and get_model_spec(name).num_classes == 1
        with pytest.raises(ValueError, match="one saliency map: num_classes must be 1"):
            create_model(name, num_classes=2)


@pytest.mark.parametrize("name,kwargs", [("mlnet", {"width": 0.25, "prior_shape": (4, 4)}),
                                         ("saliency_resnet18", {})])
def test_saliency_map_starts_at_the_prior_probability(name, kwargs):
    # The logits' 1x1 convolution starts as RetinaNet's classifier: weights of std 0.01 and the bias
    # logit(pi), so every pixel's sigmoid starts near pi whatever the image.
    model = create_model(name, **kwargs)
    x = jax.random.normal(jax.random.key(0), (2, 64, 64, 3))
    variables = jax.jit(model.init)(jax.random.key(1), x)
    bias = variables["params"]["saliency_conv"]["bias"]
    np.testing.assert_allclose(bias, np.log(0.01 / 0.99), rtol=1e-6)
    probabilities = jax.nn.sigmoid(jax.jit(model.apply)(variables, x))
    assert probabilities.shape == (2, 64, 64)
    assert float(jnp.max(jnp.abs(probabilities - 0.01))) < 0.005

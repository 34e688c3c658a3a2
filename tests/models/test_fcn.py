"""FCN-32s/16s/8s (Long, Shelhamer & Darrell 2015): the reference nets' parameter counts, logits
of the input's size for any input, score maps aligned with the input grid, the paper's
initialisation (zero scores, bilinear upsampling) and the width multiplier for CPU experiments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from model_helpers import filled_variables, num_params, variable_shapes

from cnn_jax.analysis import receptive_field
from cnn_jax.layers.initializers import bilinear_taps
from cnn_jax.models import create_model
from cnn_jax.models.fcn import FCN

# VGG16's 13 convolutions (column D): (C_in, C_out), all 3x3 with bias.
VGG16_CONVS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
               (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]


def layer_table_count(stride: int, classes: int = 21, width: float = 1.0) -> int:
    """Parameters of FCN-<stride>s from its layer table, counted independently of the model."""
    def scale(c):
        return max(1, round(c * width))

    w = [(a if a == 3 else scale(a), scale(b)) for a, b in VGG16_CONVS]  # the RGB input stays 3
    fc = round(4096 * width)
    total = sum(9 * a * b + b for a, b in w)
    total += 7 * 7 * w[-1][1] * fc + fc  # fc6
    total += fc * fc + fc  # fc7
    total += fc * classes + classes  # score_fr
    upsample = {32: [64], 16: [4, 32], 8: [4, 4, 16]}[stride]  # kernels 2f, K -> K, no bias
    total += sum(k * k * classes * classes for k in upsample)
    skips = {32: [], 16: [w[9][1]], 8: [w[9][1], w[6][1]]}[stride]  # pool4, pool3 -> K
    total += sum(c * classes + classes for c in skips)
    return total


@pytest.mark.parametrize("name,stride,expected", [
    ("fcn32s", 32, 136_152_917), ("fcn16s", 16, 134_815_994), ("fcn8s", 8, 134_489_759)])
def test_fcn_parameter_counts_follow_the_reference_nets(name, stride, expected):
    assert num_params(create_model(name), (64, 64, 3)) == expected
    assert layer_table_count(stride) == expected


def test_the_paper_134m_is_vgg16_convolutionalised_plus_score_fr():
    # Table 1, FCN-VGG16: 134M. The convolutions, fc6, fc7 and score_fr, without the upsampling.
    shapes = variable_shapes(create_model("fcn32s"), (64, 64, 3))["params"]
    without_upsampling = sum(int(np.prod(leaf.shape)) for name, tree in shapes.items()
                             if name != "upscore" for leaf in jax.tree.leaves(tree))
    assert without_upsampling == 14_714_688 + 102_764_544 + 16_781_312 + 86_037 == 134_346_581


@pytest.mark.parametrize("height,width", [(32, 32), (64, 64), (45, 70), (97, 33)])
def test_logits_have_the_input_size_for_any_input(height, width):
    model = create_model("fcn8s", num_classes=11, width=0.125)
    x = jax.ShapeDtypeStruct((2, height, width, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
    out = jax.eval_shape(lambda v, x: model.apply(v, x), variables, x)
    assert out.shape == (2, height, width, 11)


@pytest.mark.parametrize("name", ["fcn32s", "fcn16s", "fcn8s"])
def test_output_pixel_i_is_centred_on_input_pixel_i(name):
    # Receptive field centre of output (0, 0) (Araujo et al. 2019's start) is input pixel 0 and
    # neighbouring outputs are one pixel apart: the logits sit on the input grid.
    rows = {r.name: r for r in receptive_field(name, (64, 64, 3))}
    last = {"fcn32s": "upscore", "fcn16s": "upscore16", "fcn8s": "upscore8"}[name]
    assert rows[last].start == (0, 0) and rows[last].jump == (1, 1)
    assert rows["score_fr"].start == (15.5, 15.5) and rows["score_fr"].jump == (32, 32)


def test_skips_add_maps_that_cover_the_same_pixels():
    # upscore2(score_fr) lands on pool4's grid, upscore_pool4 on pool3's (module docstring, 3.).
    rows = {r.name: r for r in receptive_field("fcn8s", (64, 64, 3))}
    for upsampled, skip, stride in (("upscore2", "score_pool4", 16),
                                    ("upscore_pool4", "score_pool3", 8)):
        assert rows[upsampled].jump == rows[skip].jump == (stride, stride)
        assert rows[upsampled].start == rows[skip].start == ((stride - 1) / 2,) * 2
        assert rows[upsampled].output_shape == rows[skip].output_shape


def test_a_new_fcn_scores_zero_and_upsamples_bilinearly():
    model = create_model("fcn8s", num_classes=5, width=0.125)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 64, 64, 3)), jnp.float32)
    heads = ("score_fr", "score_pool4", "score_pool3", "upscore2", "upscore_pool4", "upscore8")

    def initial_heads(key):  # jitted: XLA drops the backbone's (slow to compile) initialisers
        params = model.init(key, x)["params"]
        return {name: params[name] for name in heads}

    initial = jax.jit(initial_heads)(jax.random.key(0))
    for name in heads[:3]:
        assert not np.any(initial[name]["kernel"]) and not np.any(initial[name]["bias"])
    # §4.3: zero-initialised class scoring, whatever the backbone holds.
    backbone = filled_variables(model, (64, 64, 3))["params"]
    assert not np.any(jax.jit(model.apply)({"params": {**backbone, **initial}}, x))
    taps = np.outer(bilinear_taps(16), bilinear_taps(16))
    upscore8 = np.asarray(initial["upscore8"]["kernel"])
    assert upscore8.shape == (16, 16, 5, 5) and "bias" not in initial["upscore8"]
    np.testing.assert_allclose(upscore8[:, :, 2, 2], taps, rtol=1e-7)
    assert not np.any(upscore8[:, :, 2, 3])  # class c upsamples class c only


def test_width_scales_every_vgg_and_fc_channel_count():
    model = create_model("fcn8s", num_classes=11, width=0.125)
    shapes = variable_shapes(model, (64, 64, 3))["params"]
    assert shapes["features_0"]["kernel"].shape == (3, 3, 3, 8)
    assert shapes["features_28"]["kernel"].shape == (3, 3, 64, 64)
    assert shapes["fc6"]["kernel"].shape == (7, 7, 64, 512)
    assert shapes["fc7"]["kernel"].shape == (1, 1, 512, 512)
    assert num_params(model, (64, 64, 3)) == layer_table_count(8, 11, 0.125) == 2_140_937
    assert num_params(create_model("fcn8s", num_classes=11, width=0.25), (64, 64, 3)) == (
        layer_table_count(8, 11, 0.25)) == 8_442_193


def test_dropout_acts_in_training_only():
    model = FCN(num_classes=3, width=0.125)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((1, 32, 32, 3)), jnp.float32)
    variables = filled_variables(model, (32, 32, 3))  # non-zero scores: dropout reaches the logits
    apply = jax.jit(model.apply, static_argnames="train")
    evals = [apply(variables, x) for _ in range(2)]
    trains = [apply(variables, x, train=True, rngs={"dropout": jax.random.key(i)})
              for i in range(2)]
    np.testing.assert_array_equal(evals[0], evals[1])
    assert not np.allclose(trains[0], trains[1])


def test_an_unknown_stride_is_refused():
    with pytest.raises(ValueError, match="FCN stride must be 32, 16 or 8"):
        FCN(stride=4).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))

"""U-Net (Ronneberger, Fischer & Brox 2015): every map of the paper's Fig. 1, its parameter count,
'same' padding, the input sizes each padding accepts, BatchNorm and the skip crops."""

import jax
import jax.numpy as jnp
import pytest
from model_helpers import num_params, variable_shapes

from cnn_jax.analysis import summarize_model
from cnn_jax.errors import ConfigError
from cnn_jax.models import create_model

# Fig. 1, read off the figure: (layer, output H = W, channels). 572x572x1 in, 388x388x2 out.
FIGURE_1 = [
    ("down1/conv1", 570, 64), ("down1/conv2", 568, 64), ("max_pool_1", 284, 64),
    ("down2/conv1", 282, 128), ("down2/conv2", 280, 128), ("max_pool_2", 140, 128),
    ("down3/conv1", 138, 256), ("down3/conv2", 136, 256), ("max_pool_3", 68, 256),
    ("down4/conv1", 66, 512), ("down4/conv2", 64, 512), ("max_pool_4", 32, 512),
    ("bottom/conv1", 30, 1024), ("bottom/conv2", 28, 1024),
    ("upconv4", 56, 512), ("slice_1", 56, 512), ("concat_1", 56, 1024),  # 64 cropped to 56
    ("up4/conv1", 54, 512), ("up4/conv2", 52, 512),
    ("upconv3", 104, 256), ("slice_2", 104, 256), ("concat_2", 104, 512),  # 136 -> 104
    ("up3/conv1", 102, 256), ("up3/conv2", 100, 256),
    ("upconv2", 200, 128), ("slice_3", 200, 128), ("concat_3", 200, 256),  # 280 -> 200
    ("up2/conv1", 198, 128), ("up2/conv2", 196, 128),
    ("upconv1", 392, 64), ("slice_4", 392, 64), ("concat_4", 392, 128),  # 568 -> 392
    ("up1/conv1", 390, 64), ("up1/conv2", 388, 64),
    ("classifier", 388, 2),
]


def test_every_map_of_figure_1():
    summary = summarize_model("unet", (572, 572, 1))
    rows = [(r.name, r.output_shape) for r in summary.layers if r.kind != "input"]
    assert rows == [(name, (size, size, channels)) for name, size, channels in FIGURE_1]
    assert summary.layer("upconv4").op == "2x2/2 transposed"


def fig1_parameter_count(classes: int = 2, base: int = 64, depth: int = 4) -> int:
    """Weights and biases of Fig. 1's convolutions, counted level by level."""
    widths = [base * 2**level for level in range(depth + 1)]
    total, c_in = 0, 1
    for c in widths:  # contracting path and bottom: two 3x3 convolutions per level
        total += (9 * c_in * c + c) + (9 * c * c + c)
        c_in = c
    for c in reversed(widths[:-1]):  # expanding path: 2x2 up-conv, then two 3x3 on the concat
        total += 4 * c_in * c + c
        total += (9 * 2 * c * c + c) + (9 * c * c + c)
        c_in = c
    return total + c_in * classes + classes  # 1x1 to the classes


def test_the_paper_unet_has_31_030_658_parameters():
    assert fig1_parameter_count() == 31_030_658
    assert num_params(create_model("unet"), (572, 572, 1)) == 31_030_658
    assert num_params(create_model("unet", padding="same"), (64, 64, 1)) == 31_030_658


def test_base_width_and_classes_scale_the_count():
    model = create_model("unet", num_classes=3, base_width=16)
    assert num_params(model, (188, 188, 1)) == fig1_parameter_count(3, 16) == 1_940_851


def test_same_padding_keeps_the_input_size():
    model = create_model("unet", num_classes=4, base_width=8, padding="same")
    x = jax.ShapeDtypeStruct((2, 48, 80, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
    assert jax.eval_shape(lambda v, x: model.apply(v, x), variables, x).shape == (2, 48, 80, 4)


def test_input_sizes_that_cannot_be_pooled_are_refused_with_the_rule():
    with pytest.raises(ValueError, match=r"16 b \+ 124"):
        variable_shapes(create_model("unet", base_width=8), (190, 190, 1))
    with pytest.raises(ValueError, match="divisible by 16"):
        variable_shapes(create_model("unet", base_width=8, padding="same"), (40, 40, 1))
    with pytest.raises(ConfigError, match="padding='full' is not one of valid, same"):
        variable_shapes(create_model("unet", base_width=8, padding="full"), (188, 188, 1))


def test_the_smallest_valid_input_is_188_and_gives_4x4():
    model = create_model("unet", base_width=8)
    x = jax.ShapeDtypeStruct((1, 188, 188, 1), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
    assert jax.eval_shape(lambda v, x: model.apply(v, x), variables, x).shape == (1, 4, 4, 2)


def test_batch_norm_replaces_the_convolution_biases():
    plain = variable_shapes(create_model("unet", base_width=8), (188, 188, 1))
    normed = variable_shapes(create_model("unet", base_width=8, batch_norm=True), (188, 188, 1))
    assert set(normed["params"]["down1"]) == {"conv1", "bn1", "conv2", "bn2"}
    assert "bias" not in normed["params"]["down1"]["conv1"]
    assert normed["batch_stats"]["up1"]["bn2"]["mean"].shape == (8,)
    assert "batch_stats" not in plain  # the paper's U-Net has no BatchNorm

"""`receptive_field`: Araujo, Norris & Sim (Distill 2019) recurrences on hand-worked cases.

    j_l = j_{l-1} s_l,   r_l = r_{l-1} + (k_l - 1) d_l j_{l-1},
    start_l = start_{l-1} + ((k_l - 1) / 2 d_l - p_l) j_{l-1},   r_0 = j_0 = 1, start_0 = 0,

start being the centre of the first output's field in 0-based input pixels.
"""

import flax.linen as nn
import jax.numpy as jnp
import pytest

from cnn_jax import layers
from cnn_jax.analysis import receptive_field, receptive_field_table


def _by_name(rows):
    return {row.name: row for row in rows}


def _field(rows, name):
    """(r, j, start) along H, checking W agrees (square kernels on square inputs)."""
    row = _by_name(rows)[name]
    assert row.size[0] == row.size[-1] and row.jump[0] == row.jump[-1] and row.start[0] == row.start[-1]
    return row.size[0], row.jump[0], row.start[0]


class Stack(nn.Module):
    """Convolutions / pools given as (kind, kernel, stride, padding[, dilation]) in sequence."""

    spec: tuple

    @nn.compact
    def __call__(self, x, train: bool = False):
        for i, (kind, k, s, p, *d) in enumerate(self.spec):
            if kind == "conv":
                x = layers.Conv(4, k, strides=s, padding=p, dilation=d[0] if d else 1, name=f"conv{i}")(x)
            elif kind == "max":
                x = layers.max_pool(x, k, s, padding=p)
            else:
                x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        return x


def test_lenet5_fields_grow_5_6_14_16_32():
    # Worked by hand. lenet5 pads the 28x28 digit by 2 to the paper's 32x32 field (a 1x1 window
    # with p = 2: start = 0 - 2 = -2), then:
    #   C1 5x5/1 valid: r = 1 + 4*1 = 5,   j = 1, start = -2 + (2 - 0)*1 = 0
    #   S2 2x2/2:       r = 5 + 1*1 = 6,   j = 2, start = 0 + 0.5*1 = 0.5
    #   C3 5x5/1:       r = 6 + 4*2 = 14,  j = 2, start = 0.5 + 2*2 = 4.5
    #   S4 2x2/2:       r = 14 + 1*2 = 16, j = 4, start = 4.5 + 0.5*2 = 5.5
    #   C5 5x5/1:       r = 16 + 4*4 = 32, j = 4, start = 5.5 + 2*4 = 13.5
    # C5's single output sees the whole padded 32x32 field, centred on the digit's centre 13.5.
    rows = receptive_field("lenet5", (28, 28, 1))
    assert _field(rows, "input") == (1, 1, 0)
    assert _field(rows, "pad_1") == (1, 1, -2)
    assert _field(rows, "c1") == (5, 1, 0)
    assert _field(rows, "avg_pool_1") == (6, 2, 0.5)
    assert _field(rows, "c3") == (14, 2, 4.5)
    assert _field(rows, "avg_pool_2") == (16, 4, 5.5)
    assert _field(rows, "c5") == (32, 4, 13.5)
    # F6 flattens C5's 1x1 map: nothing more to mix, but the axes are no longer spatial.
    f6 = _by_name(rows)["f6"]
    assert f6.size == (32, 32) and f6.spatial == (False, False)


def test_three_3x3_convolutions_see_what_one_7x7_sees():
    # r = 1 + 2 + 2 + 2 = 7 with j = 1, the VGG argument (Simonyan & Zisserman 2015 §2.3).
    stacked = receptive_field(Stack((("conv", 3, 1, 1),) * 3), (16, 16, 1))
    single = receptive_field(Stack((("conv", 7, 1, 3),)), (16, 16, 1))
    assert [_field(stacked, f"conv{i}")[0] for i in range(3)] == [3, 5, 7]
    assert _field(stacked, "conv2") == _field(single, "conv0") == (7, 1, 0)


def test_vgg16_conv5_3_sees_196_pixels_and_pool5_212():
    rows = receptive_field("vgg16", (224, 224, 3))
    convs_and_pools = [r for r in rows if r.kind in ("conv", "pool") and r.name != "adaptive_avg_pool_1"]
    sizes = [r.size[0] for r in convs_and_pools]
    assert sizes == [3, 5, 6, 10, 14, 16, 24, 32, 40, 44, 60, 76, 92, 100, 132, 164, 196, 212]
    assert _field(rows, "features_28") == (196, 16, 7.5)  # conv5_3
    assert _field(rows, "max_pool_5") == (212, 32, 15.5)  # pool5
    # fc6 is a 7x7 convolution over pool5 in disguise: 212 + 6 * 32 = 404.
    fc6 = _by_name(rows)["classifier_0"]
    assert fc6.size == (404, 404) and fc6.spatial == (False, False)


def test_alexnet_pool5_sees_195_pixels():
    rows = receptive_field("alexnet_lrn", (227, 227, 3))
    assert _field(rows, "features_0") == (11, 4, 5)  # conv1 11x11/4, no padding: centred on pixel 5
    assert _field(rows, "max_pool_3") == (195, 32, 33)


@pytest.mark.parametrize(
    "spec, size, expected",
    [
        # stride 2, padding 1 (torch): the first window is centred on pixel 0.
        ((("conv", 3, 2, 1),), 8, (3, 2, 0)),
        # then again: r = 3 + 2*2 = 7, j = 4, start = 0 + (1 - 1)*2 = 0.
        ((("conv", 3, 2, 1), ("conv", 3, 2, 1)), 8, (7, 4, 0)),
        # without padding the first window covers pixels 0..2: centre 1.
        ((("conv", 3, 2, "VALID"),), 8, (3, 2, 1)),
        # 'SAME' at stride 2 pads (0, 1) on an even input (XLA puts the odd pixel at the end) ...
        ((("conv", 3, 2, "SAME"),), 8, (3, 2, 1)),
        # ... and (1, 1) on an odd one: the start offset depends on the input size.
        ((("conv", 3, 2, "SAME"),), 9, (3, 2, 0)),
        # a 2x2/2 pool averages pixels 0 and 1: centre 0.5.
        ((("max", 2, 2, 0),), 8, (2, 2, 0.5)),
        # dilation 2 spreads a 3x3 kernel over 5 pixels; padding 2 keeps it centred on pixel 0.
        ((("conv", 3, 1, 2, 2),), 8, (5, 1, 0)),
        # explicit zero padding of 2 then a valid 5x5: centred on pixel 0, as LeNet-5's C1.
        ((("pad", 1, 1, 2), ("conv", 5, 1, "VALID")), 8, (5, 1, 0)),
        # 3x3/2 max pool padded by 1 after a 7x7/2 conv padded by 3 (the ResNet stem):
        # r = 7 + 2*2 = 11, j = 4, start = 0 + (1 - 1)*2 = 0.
        ((("conv", 7, 2, 3), ("max", 3, 2, 1)), 32, (11, 4, 0)),
    ],
)
def test_strides_and_padding_move_the_start_offset(spec, size, expected):
    rows = receptive_field(Stack(spec), (size, size, 1))
    assert _field(rows, rows[-1].name) == expected


def test_non_square_kernels_give_one_field_per_axis():
    class Rect(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            return layers.Conv(2, (3, 5), strides=(1, 2), padding="VALID", name="rect")(x)

    row = _by_name(receptive_field(Rect(), (12, 10, 1)))["rect"]
    assert (row.size, row.jump, row.start) == ((3, 5), (1, 2), (1, 2))


def test_branches_take_the_largest_field_over_paths():
    class TwoPaths(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            a = layers.Conv(2, 1, padding=0, name="one")(x)
            b = layers.Conv(2, 5, padding=2, name="five")(x)
            c = jnp.concatenate([a, b], axis=-1)  # inception-style
            d = layers.Conv(4, 3, padding=1, name="three")(c) + c  # residual-style
            return layers.Conv(1, 1, padding=0, name="after")(d)

    rows = receptive_field(TwoPaths(), (16, 16, 1))
    assert _field(rows, "one") == (1, 1, 0)
    assert _field(rows, "five") == (5, 1, 0)
    assert _field(rows, "concat_1") == (5, 1, 0)  # max(1, 5)
    assert _field(rows, "three") == (7, 1, 0)
    assert _field(rows, "after") == (7, 1, 0)  # after the residual sum: max(7, 5)


def test_resnet20_option_a_shortcut_is_a_strided_1x1_window():
    rows = receptive_field("resnet20", (32, 32, 3))
    # layer1 ends at r = 3 + 6 * 2 = 15; the shortcut samples every 2nd pixel from 0 ...
    assert _field(rows, "layer2_0/slice_1") == (15, 2, 0)
    # ... and the block's main path, 3x3/2 then 3x3/1, gives 15 + 2 + 2*2 = 21, the larger.
    assert _field(rows, "layer2_0/bn2") == (21, 2, 0)
    assert _field(rows, "layer2_1/conv1") == (25, 2, 0)


def test_table_prints_r_j_and_start_and_marks_flattened_axes():
    table = receptive_field_table(receptive_field("lenet5", (28, 28, 1)), title="lenet5")
    lines = table.splitlines()
    assert lines[0] == "lenet5"
    c5 = next(line for line in lines if line.startswith("c5 "))
    assert c5.split()[-3:] == ["32", "4", "13.5"]
    f6 = next(line for line in lines if line.startswith("f6 "))
    assert f6.split()[-3:] == ["32*", "-", "13.5"]


class CausalStack(nn.Module):
    """WaveNet's stack (van den Oord et al. 2016, §2.1): causal 2-tap convolutions, dilations 1, 2, 4."""

    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x, train: bool = False):
        for i, d in enumerate((1, 2, 4)):
            x = layers.CausalConv1D(2, kernel_size=2, dilation=d, conv_impl=self.conv_impl, name=f"c{i}")(x)
        return x


@pytest.mark.parametrize("conv_impl", ["auto", "xla"])
def test_causal_dilated_convolutions_see_8_steps_ending_at_the_current_one(conv_impl):
    # r = 1 + 1*1 + 1*2 + 1*4 = 8, j = 1; the left padding (k - 1) d shifts each centre back by d/2:
    # start = (0.5 - 1) + (1 - 2) + (2 - 4) = -3.5, the centre of steps -7..0. Read the same from
    # the oneDNN convolutions ('auto') as from XLA's.
    row = _by_name(receptive_field(CausalStack(conv_impl), (16, 1)))["c2"]
    assert (row.size, row.jump, row.start, row.output_shape) == ((8,), (1,), (-3.5,), (16, 2))


def test_a_transposed_convolution_divides_the_jump_and_reaches_inputs_a_stride_apart():
    class Up(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            x = layers.Conv(2, 3, strides=2, padding=1, name="down")(x)
            return layers.ConvTranspose(2, 4, strides=2, padding=1, name="up")(x)

    # down: r = 3, j = 2, start = 0 (cell i centred on pixel 2i). up works on that map with a zero
    # between cells (XLA pads the dilated map by F - 1 - crop = 2): j = 2 / 2 = 1, and its 4 taps
    # span 3 dilated positions, which hold real cells at most floor(3 / 2) = 1 cell apart:
    # r = 3 + 1 * 2 = 5 (output 1 reads cells 0 and 1: pixels -1..3). start = 0 + (3/2 - 2) * 1.
    rows = receptive_field(Up(), (16, 16, 1))
    assert _field(rows, "down") == (3, 2, 0)
    assert _field(rows, "up") == (5, 1, -0.5)
    assert _by_name(rows)["up"].output_shape == (16, 16, 2)

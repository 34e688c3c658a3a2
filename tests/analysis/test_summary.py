"""`summarize_model`: the lectures' VGG16 table, AlexNet's conv1, and the papers' totals.

Every summary here is a trace on abstract shapes: VGG16's 138M parameters are never allocated.
Integers that can be worked by hand are asserted exactly; the papers' rounded figures within 1%.
"""

import flax.linen as nn
import pytest

from cnn_jax import layers
from cnn_jax.analysis import summarize_model
from cnn_jax.analysis.summary import BYTES_PER_ACTIVATION
from cnn_jax.cli import parse_input_shape


@pytest.fixture(scope="module")
def vgg16():
    return summarize_model("vgg16", (224, 224, 3))


# CS231n, "VGGNet in detail": (row, output shape, weights without bias) for every layer; our row
# names are the Flax module paths (torchvision's `features.<i>` / `classifier.<i>` positions).
VGG16_LECTURE_ROWS = [
    ("input", (224, 224, 3), 0),
    ("features_0", (224, 224, 64), 3 * 3 * 3 * 64),  # 1,728
    ("features_2", (224, 224, 64), 3 * 3 * 64 * 64),  # 36,864
    ("max_pool_1", (112, 112, 64), 0),
    ("features_5", (112, 112, 128), 3 * 3 * 64 * 128),  # 73,728
    ("features_7", (112, 112, 128), 3 * 3 * 128 * 128),  # 147,456
    ("max_pool_2", (56, 56, 128), 0),
    ("features_10", (56, 56, 256), 3 * 3 * 128 * 256),  # 294,912
    ("features_12", (56, 56, 256), 3 * 3 * 256 * 256),  # 589,824
    ("features_14", (56, 56, 256), 3 * 3 * 256 * 256),
    ("max_pool_3", (28, 28, 256), 0),
    ("features_17", (28, 28, 512), 3 * 3 * 256 * 512),  # 1,179,648
    ("features_19", (28, 28, 512), 3 * 3 * 512 * 512),  # 2,359,296
    ("features_21", (28, 28, 512), 3 * 3 * 512 * 512),
    ("max_pool_4", (14, 14, 512), 0),
    ("features_24", (14, 14, 512), 3 * 3 * 512 * 512),
    ("features_26", (14, 14, 512), 3 * 3 * 512 * 512),
    ("features_28", (14, 14, 512), 3 * 3 * 512 * 512),
    ("max_pool_5", (7, 7, 512), 0),
    ("classifier_0", (4096,), 7 * 7 * 512 * 4096),  # 102,760,448
    ("classifier_3", (4096,), 4096 * 4096),  # 16,777,216
    ("classifier_6", (1000,), 4096 * 1000),  # 4,096,000
]


def test_vgg16_conv1_row_is_the_lectures_conv3_64(vgg16):
    row = vgg16.layer("features_0")
    assert (row.kind, row.op) == ("conv", "3x3/1 pad 1")
    assert row.output_shape == (224, 224, 64)
    assert row.activations == 224 * 224 * 64 == 3_211_264
    # The lecture counts weights only: 1,728; our params add the 64 biases.
    assert row.param_counts == {"features_0/kernel": 1_728, "features_0/bias": 64}
    assert row.params == 1_792
    assert row.macs == 224 * 224 * 64 * (3 * 3 * 3) == 86_704_128


def test_vgg16_every_lecture_row_has_its_shape_weights_and_bias(vgg16):
    for name, shape, weights in VGG16_LECTURE_ROWS:
        row = vgg16.layer(name)
        assert row.output_shape == shape, name
        assert row.param_counts.get(f"{name}/kernel", 0) == weights, name
        bias = shape[-1] if weights else 0
        assert row.params == weights + bias, name


def test_vgg16_fc6_has_102_760_448_weights_plus_4096_biases(vgg16):
    fc6 = vgg16.layer("classifier_0")
    assert (fc6.kind, fc6.op) == ("dense", "25088->4096")
    assert fc6.param_counts == {"classifier_0/kernel": 102_760_448, "classifier_0/bias": 4_096}
    assert fc6.macs == 102_760_448


def test_vgg16_rows_are_in_forward_order_with_the_identity_adaptive_pool_after_pool5(vgg16):
    # torchvision's AdaptiveAvgPool2d((7, 7)) is the one row the lecture does not have (at 224x224
    # it is the identity); ReLU and dropout have no rows (in place / identity in eval).
    names = [row.name for row in vgg16.layers]
    lecture = [name for name, _, _ in VGG16_LECTURE_ROWS]
    assert [n for n in names if n != "adaptive_avg_pool_1"] == lecture
    assert names.index("adaptive_avg_pool_1") == names.index("max_pool_5") + 1


def test_vgg16_has_138_357_544_parameters(vgg16):
    assert vgg16.total_params == 138_357_544
    assert sum(row.params for row in vgg16.layers) == 138_357_544
    assert vgg16.total_state == 0 and vgg16.unused_params == 0


def test_vgg16_forward_activations_are_the_lecture_rows_plus_the_adaptive_pool(vgg16):
    # What we count: the input and every layer output of one image (ReLU in place, as the lecture).
    # The lecture's own rows sum to 15,237,608 values (about 15.2M = 61 MB in float32); its quoted
    # total "24M * 4 bytes ~= 93MB" is not the sum of those rows. Our one extra row is the
    # 7x7x512 adaptive pool: 25,088 values.
    lecture_rows = sum(vgg16.layer(name).activations for name, _, _ in VGG16_LECTURE_ROWS)
    assert lecture_rows == 15_237_608
    assert vgg16.total_activations == 15_237_608 + 7 * 7 * 512 == 15_262_696
    assert vgg16.activation_bytes == 15_262_696 * BYTES_PER_ACTIVATION == 61_050_784


def test_vgg16_multiply_adds_are_15_5_giga(vgg16):
    # Worked from the lecture table: H*W*C_out*(3*3*C_in) per conv plus the FC weights.
    convs = [(224, 3, 64), (224, 64, 64), (112, 64, 128), (112, 128, 128), (56, 128, 256),
             (56, 256, 256), (56, 256, 256), (28, 256, 512), (28, 512, 512), (28, 512, 512),
             (14, 512, 512), (14, 512, 512), (14, 512, 512)]
    expected = sum(h * h * c_out * 9 * c_in for h, c_in, c_out in convs)
    expected += 25_088 * 4_096 + 4_096 * 4_096 + 4_096 * 1_000
    assert vgg16.total_macs == expected == 15_470_264_320
    assert vgg16.total_macs == pytest.approx(15.5e9, rel=0.01)


def test_alexnet_conv1_is_55x55x96_with_34_944_params_and_105_415_200_macs():
    s = summarize_model("alexnet_lrn", (227, 227, 3))
    conv1 = s.layer("features_0")
    assert (conv1.kind, conv1.op) == ("conv", "11x11/4")
    assert conv1.output_shape == (55, 55, 96)  # (227 - 11) / 4 + 1 = 55
    assert conv1.params == 11 * 11 * 3 * 96 + 96 == 34_944
    assert conv1.macs == 55 * 55 * 96 * (11 * 11 * 3) == 105_415_200
    assert s.total_params == 62_378_344


def test_resnet50_multiply_adds_are_4_1_giga():
    # torchvision's ResNet-50 (v1.5, stride on the 3x3) is 4.1 GMACs; the paper's v1 is 3.8.
    s = summarize_model("resnet50", (224, 224, 3))
    assert s.total_macs == pytest.approx(4.1e9, rel=0.01)
    assert s.total_params == 25_557_032
    assert s.layer("conv1").macs == 112 * 112 * 64 * 7 * 7 * 3 == 118_013_952
    # BatchNorm: scale and bias are parameters, running mean and variance are state, no MACs.
    bn1 = s.layer("bn1")
    assert (bn1.kind, bn1.params, bn1.macs, bn1.activations) == ("batchnorm", 128, 0, 112 * 112 * 64)
    assert s.total_state == 53_120  # 2 * the 26,560 BN channels of ResNet-50


def test_mobilenet_v1_has_569m_multiply_adds_and_4_2m_params_as_table_8():
    s = summarize_model("mobilenet_v1", (224, 224, 3))
    assert s.total_macs == pytest.approx(569e6, rel=0.01)
    assert s.total_params == pytest.approx(4.2e6, rel=0.01)
    assert s.total_params == 4_231_976
    dw = s.layer("features_1/depthwise/conv")
    # Depthwise 3x3 on 112x112x32: one 3x3 filter per channel (Howard et al. 2017 §3.1).
    assert (dw.kind, dw.params, dw.macs) == ("conv dw", 3 * 3 * 32, 112 * 112 * 32 * 9)


@pytest.mark.parametrize(
    "name", ["resnet20", "mobilenet_v2", "vgg11_lrn", "vgg16_bn", "mlp_300_100"]
)
def test_every_parameter_is_charged_to_exactly_one_row(name):
    # (GoogLeNet's and DenseNet's branches are checked in their own tests below.)
    s = summarize_model(name, None)
    assert s.total_params > 0
    assert sum(row.params for row in s.layers) == s.total_params
    assert all(row.macs >= 0 for row in s.layers)


def test_googlenet_inception_branches_meet_in_a_concat_row():
    s = summarize_model("googlenet", (224, 224, 3))
    concat = s.layer("inception3a/concat_1")
    assert concat.kind == "concat" and concat.output_shape == (28, 28, 64 + 128 + 32 + 32)
    assert s.layer("inception3a/max_pool_1").op == "max 3x3/1 pad 1"
    assert s.total_macs == pytest.approx(1.5e9, rel=0.01)  # torchvision: 1.50 GFLOPS (MACs)
    assert sum(row.params for row in s.layers) == s.total_params == 6_624_904


def test_densenet121_counts_each_concatenation_as_a_new_tensor():
    s = summarize_model("densenet121", (224, 224, 3))
    assert s.layer("concat_1").output_shape == (56, 56, 64 + 32)
    assert s.layer("concat_58").output_shape == (7, 7, 1024)
    assert s.total_macs == pytest.approx(2.83e9, rel=0.01)  # torchvision: 2.83 GFLOPS (MACs)
    assert sum(row.params for row in s.layers) == s.total_params == 7_978_856


def test_activation_modules_are_in_place_and_left_out_of_the_memory_total():
    s = summarize_model("lenet5", (28, 28, 1))
    act = s.layer("act_c1")
    assert (act.kind, act.in_place, act.activations) == ("act", True, 28 * 28 * 6)
    # input 784, pad to 32x32 1,024, C1 4,704, S2 1,176, C3 1,600, S4 400, C5 120, F6 84, output 10
    assert s.total_activations == 784 + 1_024 + 4_704 + 1_176 + 1_600 + 400 + 120 + 84 + 10 == 9_902
    assert s.layer("avg_pool_1").op == "avg 2x2/2"
    assert s.layer("pad_1").op == "pad 2"


def test_a_module_called_twice_counts_its_weights_once_and_its_macs_twice():
    class Twice(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            dense = nn.Dense(8, name="shared")
            return dense(dense(x.reshape((x.shape[0], -1))))

    s = summarize_model(Twice(), (2, 4, 1))
    assert [row.name for row in s.layers[1:]] == ["shared", "shared"]
    assert [row.params for row in s.layers[1:]] == [8 * 8 + 8, 0]
    assert s.total_macs == 2 * 8 * 8
    assert s.total_params == 72


def test_unused_parameters_are_reported_separately():
    # GoogLeNet's auxiliary heads exist with aux_logits=True but do not run in eval mode.
    from cnn_jax.models import create_model

    s = summarize_model(create_model("googlenet", aux_logits=True), (32, 32, 3))
    aux1 = 512 * 128 + 2 * 128 + (2048 * 1024 + 1024) + (1024 * 1000 + 1000)
    aux2 = 528 * 128 + 2 * 128 + (2048 * 1024 + 1024) + (1024 * 1000 + 1000)
    assert s.unused_params == aux1 + aux2 == 6_379_984
    assert "params unused in eval 6,379,984" in s.table()


@pytest.mark.parametrize("name, shape", [("mobilenet_v1_025", (32, 32, 3)), ("lenet5", (28, 28, 1))])
def test_the_summary_is_the_same_for_every_conv_impl(name, shape):
    # The oneDNN convolutions ('auto', 'onednn') are read as the XLA convolutions they compute:
    # MobileNet's depthwise ones ("conv dw" rows) and LeNet-5's C5, which covers its input.
    from cnn_jax.models import create_model

    tables = {impl: summarize_model(create_model(name, conv_impl=impl), shape).to_dict()
              for impl in ("auto", "xla", "onednn")}
    assert tables["auto"] == tables["xla"] == tables["onednn"]
    kinds = {row["kind"] for row in tables["xla"]["layers"]}
    assert "conv" in kinds and ("conv dw" in kinds) == name.startswith("mobilenet")


def test_grouped_and_strided_convolutions_count_their_macs_per_group():
    class Grouped(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            return layers.Conv(16, 3, strides=2, padding=1, groups=4, use_bias=False, name="g")(x)

    row = summarize_model(Grouped(), (8, 8, 8)).layer("g")
    assert row.output_shape == (4, 4, 16)
    assert row.params == 3 * 3 * (8 // 4) * 16
    assert row.macs == 4 * 4 * 16 * 3 * 3 * (8 // 4)
    assert row.op == "3x3/2 pad 1 groups 4"


def test_to_dict_and_table_carry_the_same_totals(vgg16):
    d = vgg16.to_dict()
    assert d["totals"]["params"] == 138_357_544
    assert d["totals"]["activation_bytes"] == 61_050_784
    assert d["layers"][1]["param_counts"] == {"features_0/kernel": 1_728, "features_0/bias": 64}
    table = vgg16.table()
    assert table.splitlines()[0] == "vgg16 @ 224x224x3, 1000 classes"
    assert table.splitlines()[-1].startswith("total  params 138,357,544")


def test_module_summaries_need_an_input_shape():
    with pytest.raises(ValueError, match="input_shape is required"):
        summarize_model(nn.Dense(3))


def test_num_classes_changes_the_head():
    s = summarize_model("resnet20", None, num_classes=100)
    assert s.layer("fc").params == 64 * 100 + 100
    assert s.num_classes == 100 and s.input_shape == (32, 32, 3)


def test_input_shapes_parse_from_the_command_line_forms():
    assert parse_input_shape("224,224,3") == parse_input_shape("224x224x3") == (224, 224, 3)
    with pytest.raises(ValueError, match="224,224,3"):
        parse_input_shape("224,a,3")


@pytest.mark.parametrize("name, shape", [("fcn8s", (64, 64, 3)), ("unet", (188, 188, 1))])
def test_transposed_convolutions_summarise_the_same_on_every_conv_impl(name, shape):
    # On oneDNN a transposed convolution is a backward-data pass: read as XLA's transposed
    # convolution, whose row is the same as on 'xla'.
    from cnn_jax.models import create_model

    tables = {impl: summarize_model(create_model(name, conv_impl=impl), shape).to_dict()
              for impl in ("auto", "xla")}
    assert tables["auto"] == tables["xla"]
    ops = {row["op"] for row in tables["xla"]["layers"]}
    assert ("16x16/8 transposed crop 4" in ops) == (name == "fcn8s")
    assert ("2x2/2 transposed" in ops) == (name == "unet")


def test_a_transposed_convolution_counts_the_products_with_its_real_inputs():
    class Up(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            return layers.ConvTranspose(6, 4, strides=2, padding=1, groups=2, name="up")(x)

    row = summarize_model(Up(), (5, 7, 4)).layer("up")
    assert (row.kind, row.op, row.output_shape) == (
        "conv", "4x4/2 transposed crop 1 groups 2", (10, 14, 6))
    assert row.params == 4 * 4 * 4 * (6 // 2) + 6
    # Every input element meets every tap of the C_out / groups kernels of its group (the products
    # of the convolution it is the adjoint of), not the zeros XLA interleaves: 5 * 7 * 4 * 16 * 3.
    assert row.macs == 5 * 7 * 4 * 4 * 4 * (6 // 2) == 6_720

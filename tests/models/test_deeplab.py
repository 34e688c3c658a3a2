"""torchvision's segmentation networks on a dilated ResNet-50 (fcn_resnet50, deeplabv3_resnet50):
parameter counts, names, output stride 8 with torchvision's dilations, the ASPP head, the auxiliary
head and logits resized to the input. Weight-for-weight parity: tests/test_convert.py."""

import jax
import jax.numpy as jnp
import pytest
from model_helpers import num_params, variable_shapes

from cnn_jax.analysis import summarize_model
from cnn_jax.models import create_model

# torchvision.models.segmentation.<name>(weights=None, weights_backbone=None[, aux_loss=True]),
# 21 classes: sum(p.numel() for p in model.parameters()).
TORCHVISION_PARAMS = {
    ("fcn_resnet50", False): 32_957_013,
    ("fcn_resnet50", True): 35_322_218,
    ("deeplabv3_resnet50", False): 39_638_869,
    ("deeplabv3_resnet50", True): 42_004_074,
}


@pytest.mark.parametrize("name,aux", list(TORCHVISION_PARAMS))
def test_parameter_counts_equal_torchvisions(name, aux):
    model = create_model(name, aux_loss=aux)
    assert num_params(model, (64, 64, 3)) == TORCHVISION_PARAMS[name, aux]


def test_the_heads_are_torchvisions_layer_for_layer():
    # ResNet-50 without fc is 25,557,032 - (2048 * 1000 + 1000) = 23,508,032 parameters.
    backbone = 23_508_032
    fcn_head = 3 * 3 * 2048 * 512 + 2 * 512 + 512 * 21 + 21
    aspp = (2048 * 256 + 3 * (3 * 3 * 2048 * 256) + 2048 * 256 + 5 * 2 * 256
            + 5 * 256 * 256 + 2 * 256)
    deeplab_head = aspp + 3 * 3 * 256 * 256 + 2 * 256 + 256 * 21 + 21
    aux_head = 3 * 3 * 1024 * 256 + 2 * 256 + 256 * 21 + 21
    assert backbone + fcn_head == TORCHVISION_PARAMS["fcn_resnet50", False]
    assert backbone + deeplab_head == TORCHVISION_PARAMS["deeplabv3_resnet50", False]
    assert backbone + fcn_head + aux_head == TORCHVISION_PARAMS["fcn_resnet50", True]


def test_names_mirror_torchvisions_module_tree():
    shapes = variable_shapes(create_model("deeplabv3_resnet50", aux_loss=True), (64, 64, 3))
    params, stats = shapes["params"], shapes["batch_stats"]
    assert params["backbone"]["layer4_2"]["conv2"]["kernel"].shape == (3, 3, 512, 512)
    assert params["classifier_0"]["convs_1_0"]["kernel"].shape == (3, 3, 2048, 256)  # convs.1.0
    assert params["classifier_0"]["convs_4_1"]["kernel"].shape == (1, 1, 2048, 256)  # pooling
    assert stats["classifier_0"]["convs_4_2"]["var"].shape == (256,)
    assert params["classifier_0"]["project_0"]["kernel"].shape == (1, 1, 1280, 256)
    assert params["classifier_4"]["kernel"].shape == (1, 1, 256, 21)
    assert params["aux_classifier_0"]["kernel"].shape == (3, 3, 1024, 256)
    assert "fc" not in params["backbone"]


@pytest.fixture(scope="module")
def deeplab_summary():
    return summarize_model("deeplabv3_resnet50", (64, 64, 3))


def test_output_stride_8_with_torchvisions_dilations(deeplab_summary):
    ops = {row.name: (row.op, row.output_shape) for row in deeplab_summary.layers}
    assert ops["backbone/layer2_0/conv2"] == ("3x3/2 pad 1", (8, 8, 128))
    # layer3 gives its stride up for dilation 2, layer4 for 4; each first block keeps the previous.
    assert ops["backbone/layer3_0/conv2"] == ("3x3/1 pad 1", (8, 8, 256))
    assert ops["backbone/layer3_0/downsample_0"] == ("1x1/1", (8, 8, 1024))
    assert ops["backbone/layer3_5/conv2"] == ("3x3/1 pad 2 dil 2", (8, 8, 256))
    assert ops["backbone/layer4_0/conv2"] == ("3x3/1 pad 2 dil 2", (8, 8, 512))
    assert ops["backbone/layer4_2/conv2"] == ("3x3/1 pad 4 dil 4", (8, 8, 512))


def test_aspp_branches_meet_and_the_logits_are_resized_to_the_input(deeplab_summary):
    ops = {row.name: (row.kind, row.op, row.output_shape) for row in deeplab_summary.layers}
    for i, rate in enumerate((12, 24, 36), start=1):
        assert ops[f"classifier_0/convs_{i}_0"] == (
            "conv", f"3x3/1 pad {rate} dil {rate}", (8, 8, 256))
    assert ops["classifier_0/adaptive_avg_pool_1"][2] == (1, 1, 2048)  # image pooling
    # Bilinear upsampling of a 1x1 map repeats its pixel: the trace reads it as an adaptive pool.
    assert ops["classifier_0/adaptive_avg_pool_2"] == ("pool", "adaptive avg", (8, 8, 256))
    assert ops["classifier_0/concat_1"] == ("concat", "5 inputs", (8, 8, 1280))
    assert ops["resize_1"] == ("resize", "interpolate", (64, 64, 21))
    assert deeplab_summary.layers[-1].name == "resize_1"


@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50"])
def test_aux_loss_adds_torchvisions_auxiliary_logits(name):
    model = create_model(name, num_classes=5, aux_loss=True)
    x = jax.ShapeDtypeStruct((2, 40, 56, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
    out = jax.eval_shape(lambda v, x: model.apply(v, x), variables, x)
    assert {k: v.shape for k, v in out.items()} == {"out": (2, 40, 56, 5), "aux": (2, 40, 56, 5)}


def test_an_unknown_head_is_refused():
    with pytest.raises(ValueError, match="head must be one of fcn, deeplabv3"):
        variable_shapes(create_model("fcn_resnet50", head="pspnet"), (32, 32, 3))

"""ResNets (He et al. 2016): torchvision's ImageNet counts and names, the CIFAR ResNets of §4.2 with
option-A shortcuts, v1.5 stride placement, zero-init residuals and the initialiser."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.models import create_model
from cnn_jax.models.resnet import BasicBlock, Bottleneck, ResNet, identity_shortcut_a


def variable_shapes(model, input_shape):
    """All variable shapes from an abstract init: nothing is allocated."""
    x = jnp.zeros((1, *input_shape))
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x))


def count(tree) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def module_output_shapes(model, input_shape) -> dict[str, tuple[int, ...]]:
    """'/'-joined module path -> output shape, for every module's __call__, abstractly."""
    x = jnp.zeros((1, *input_shape))

    def run():
        variables = model.init(jax.random.key(0), x)
        _, state = model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])
        return state["intermediates"]

    captured = jax.eval_shape(run)
    shapes = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(captured):
        keys = [k.key for k in path if isinstance(k, jax.tree_util.DictKey)]
        shapes["/".join(keys[:-1])] = leaf.shape  # drop the trailing '__call__'
    return shapes


IMAGENET_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}

# He et al. 2016 Table 6 gives 0.27M, 0.46M, 0.66M, 0.85M, 1.7M.
CIFAR_PARAMS = {
    "resnet20": (269_722, "0.27"),
    "resnet32": (464_154, "0.46"),
    "resnet44": (658_586, "0.66"),
    "resnet56": (853_018, "0.85"),
    "resnet110": (1_727_962, "1.7"),
}


@pytest.mark.parametrize("name, expected", IMAGENET_PARAMS.items())
def test_imagenet_resnet_parameter_counts_match_torchvision(name, expected):
    assert count(variable_shapes(create_model(name), (224, 224, 3))["params"]) == expected


@pytest.mark.parametrize("name, expected", [(n, c) for n, (c, _) in CIFAR_PARAMS.items()])
def test_cifar_resnet_parameter_counts(name, expected):
    assert count(variable_shapes(create_model(name), (32, 32, 3))["params"]) == expected


@pytest.mark.parametrize("name, table6", [(n, t) for n, (_, t) in CIFAR_PARAMS.items()])
def test_cifar_resnet_parameter_counts_round_to_table_6(name, table6):
    params, _ = CIFAR_PARAMS[name]
    digits = len(table6.split(".")[1])
    assert f"{params / 1e6:.{digits}f}" == table6


def test_cifar_resnet_depth_is_6n_plus_2_weighted_layers():
    for name, n in [("resnet20", 3), ("resnet56", 9), ("resnet110", 18)]:
        params = variable_shapes(create_model(name), (32, 32, 3))["params"]
        kernels = [
            p for p in jax.tree_util.tree_leaves_with_path(params) if p[0][-1].key == "kernel"
        ]
        assert len(kernels) == 6 * n + 2, name


def test_option_a_shortcut_has_no_parameters():
    params = variable_shapes(create_model("resnet20"), (32, 32, 3))["params"]
    assert not any(k.startswith("downsample") for block in params.values() for k in block)
    # A downsampling block (layer2_0: 16 -> 32 channels, stride 2) holds exactly its two convs and BNs.
    assert set(params["layer2_0"]) == {"conv1", "bn1", "conv2", "bn2"}
    assert count(params["layer2_0"]) == 3 * 3 * 16 * 32 + 3 * 3 * 32 * 32 + 4 * 32


def test_option_a_shortcut_subsamples_and_appends_zero_channels():
    x = jnp.arange(1 * 4 * 4 * 2, dtype=jnp.float32).reshape(1, 4, 4, 2)
    y = identity_shortcut_a(x, features=5, strides=2)
    assert y.shape == (1, 2, 2, 5)
    np.testing.assert_array_equal(y[..., :2], x[:, ::2, ::2, :])
    np.testing.assert_array_equal(y[..., 2:], 0.0)
    # Odd sizes keep ceil(H / 2) rows, the output size of a 3x3 stride-2 conv with padding 1.
    assert identity_shortcut_a(jnp.zeros((1, 7, 7, 4)), 8, 2).shape == (1, 4, 4, 8)


def test_cifar_resnet_stages_are_32_16_8_maps_of_16_32_64_filters():
    shapes = module_output_shapes(create_model("resnet20"), (32, 32, 3))
    assert shapes["conv1"] == (1, 32, 32, 16)
    assert shapes["layer1_2"] == (1, 32, 32, 16)
    assert shapes["layer2_0"] == (1, 16, 16, 32)
    assert shapes["layer3_2"] == (1, 8, 8, 64)
    assert shapes["fc"] == (1, 10)


def test_resnet50_names_mirror_torchvision():
    variables = variable_shapes(create_model("resnet50"), (224, 224, 3))
    params = variables["params"]
    top = set(params)
    expected_blocks = {
        f"layer{s}_{b}" for s, n in zip((1, 2, 3, 4), (3, 4, 6, 3), strict=True) for b in range(n)
    }
    assert top == {"conv1", "bn1", "fc"} | expected_blocks
    assert set(params["layer1_0"]) == {
        "conv1",
        "bn1",
        "conv2",
        "bn2",
        "conv3",
        "bn3",
        "downsample_0",
        "downsample_1",
    }
    assert set(params["layer1_1"]) == {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3"}
    assert params["layer2_0"]["downsample_0"]["kernel"].shape == (1, 1, 256, 512)
    assert "bias" not in params["conv1"]  # torchvision's convs have no bias
    assert params["conv1"]["kernel"].shape == (7, 7, 3, 64)
    assert set(variables["batch_stats"]["layer2_0"]["downsample_1"]) == {"mean", "var"}
    assert params["fc"]["kernel"].shape == (2048, 1000)


def test_resnet18_projects_only_where_the_shape_changes():
    params = variable_shapes(create_model("resnet18"), (224, 224, 3))["params"]
    with_projection = sorted(n for n, block in params.items() if "downsample_0" in block)
    assert with_projection == ["layer2_0", "layer3_0", "layer4_0"]


def test_bottleneck_strides_on_the_3x3_convolution_v1_5():
    shapes = module_output_shapes(create_model("resnet50"), (224, 224, 3))
    assert shapes["conv1"] == (1, 112, 112, 64)
    assert shapes["layer1_0"] == (1, 56, 56, 256)
    assert shapes["layer2_0/conv1"] == (1, 56, 56, 128)  # the 1x1 keeps the resolution
    assert shapes["layer2_0/conv2"] == (1, 28, 28, 128)  # the 3x3 halves it
    assert shapes["layer2_0/downsample_0"] == (1, 28, 28, 512)
    assert shapes["layer4_2"] == (1, 7, 7, 2048)


def test_imagenet_resnet_accepts_32x32_input():
    shapes = module_output_shapes(create_model("resnet18"), (32, 32, 3))
    assert shapes["layer4_1"] == (1, 1, 1, 512)
    assert shapes["fc"] == (1, 1000)


def test_zero_init_residual_makes_a_block_start_as_the_identity():
    x = jax.nn.relu(jax.random.normal(jax.random.key(1), (2, 8, 8, 16)))  # a post-ReLU input
    for block in (
        BasicBlock(features=16, zero_init_residual=True),
        Bottleneck(features=4, zero_init_residual=True),
    ):
        variables = block.init(jax.random.key(0), x)
        last_bn = "bn2" if isinstance(block, BasicBlock) else "bn3"
        np.testing.assert_array_equal(variables["params"][last_bn]["scale"], 0.0)
        np.testing.assert_allclose(block.apply(variables, x), x, atol=1e-6)
    # Off by default, as in torchvision.
    params = jax.eval_shape(lambda: BasicBlock(features=16).init(jax.random.key(0), x))["params"]
    assert params["bn2"]["scale"].shape == (16,)
    np.testing.assert_array_equal(
        BasicBlock(features=16).init(jax.random.key(0), x)["params"]["bn2"]["scale"], 1.0
    )


def test_resnet_default_init_is_he_normal_fan_out_and_configurable_by_name():
    # One-block-per-stage CIFAR ResNets: layer3_0/conv1 is resnet20's, with less to compile.
    default = create_model("resnet20", stage_sizes=(1, 1, 1))
    by_name = create_model("resnet20", stage_sizes=(1, 1, 1), kernel_init="he_normal")
    x = jnp.zeros((1, 32, 32, 3))

    @jax.jit
    def layer3_kernels(key):
        return tuple(
            m.init(key, x)["params"]["layer3_0"]["conv1"]["kernel"] for m in (default, by_name)
        )

    fan_out_kernel, fan_in_kernel = layer3_kernels(jax.random.key(0))
    assert fan_out_kernel.shape == (3, 3, 32, 64)  # 18,432 draws: std known to ~0.5%
    assert float(jnp.std(fan_out_kernel)) == pytest.approx(
        (2 / (9 * 64)) ** 0.5, rel=0.03
    )  # torchvision
    assert float(jnp.std(fan_in_kernel)) == pytest.approx((2 / (9 * 32)) ** 0.5, rel=0.03)


def test_resnet_rejects_unknown_block_stem_and_shortcut():
    x = jnp.zeros((1, 32, 32, 3))
    with pytest.raises(ValueError, match="block must be one of"):
        ResNet(block="wide").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="stem must be"):
        ResNet(stem="tiny").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="shortcut must be 'A'"):
        ResNet(shortcut="C").init(jax.random.key(0), x)


def test_cifar_resnet_with_projection_shortcuts_option_b():
    params = variable_shapes(create_model("resnet20", shortcut="B"), (32, 32, 3))["params"]
    assert params["layer2_0"]["downsample_0"]["kernel"].shape == (1, 1, 16, 32)
    # Two projections (16->32, 32->64), each a 1x1 conv and a BN.
    assert count(params) == 269_722 + (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


def test_bfloat16_compute_dtype_keeps_float32_parameters():
    model = create_model("resnet20", stage_sizes=(1, 1, 1), dtype=jnp.bfloat16)
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    variables = jax.jit(model.init)(jax.random.key(0), x)
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    logits = jax.jit(model.apply)(variables, x)
    assert logits.dtype == jnp.bfloat16
    reference = create_model("resnet20", stage_sizes=(1, 1, 1)).apply(variables, x)
    # bfloat16 rounds every activation to 2^-8 = 3.9e-3 of itself: through 8 layers ~1e-2 of
    # logits of size ~1, a tenth of the tolerance (measured 2.2e-3)
    np.testing.assert_allclose(logits.astype(jnp.float32), reference, rtol=0.1, atol=0.1)


def test_replacing_strides_with_dilation_keeps_the_resolution_and_the_parameters():
    # torchvision's replace_stride_with_dilation=[False, True, True]: output stride 8, same weights.
    dilated = ResNet(block="bottleneck", stage_sizes=(3, 4, 6, 3),
                     replace_stride_with_dilation=(False, True, True), features_only=True)
    x = jnp.zeros((1, 64, 64, 3))
    stages = jax.eval_shape(lambda: dilated.apply(dilated.init(jax.random.key(0), x), x))
    assert [s.shape for s in stages] == [(1, 16, 16, 256), (1, 8, 8, 512), (1, 8, 8, 1024),
                                         (1, 8, 8, 2048)]
    # features_only drops fc: ResNet-50's 25,557,032 less 2048 * 1000 + 1000.
    assert count(variable_shapes(dilated, (64, 64, 3))["params"]) == 25_557_032 - 2_049_000


def test_a_dilated_stage_dilates_all_but_its_first_block():
    shapes = module_output_shapes(
        ResNet(block="basic", stage_sizes=(1, 2, 2), stage_widths=(4, 8, 16),
               replace_stride_with_dilation=(True, True), num_classes=3), (32, 32, 3))
    assert shapes["layer3_1"] == (1, 8, 8, 16)
    model = ResNet(block="basic", stage_sizes=(1, 2, 2), stage_widths=(4, 8, 16),
                   replace_stride_with_dilation=(True, True), num_classes=3)
    jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x))(
        variable_shapes(model, (32, 32, 3)), jnp.zeros((1, 32, 32, 3)))
    dilations = [e.params["dilation"][0] for e in jaxpr.eqns
                 if e.primitive.name == "onednn_conv_forward" and e.params["w_shape"][:2] == (3, 3)]
    # Two 3x3 per basic block. layer1: 1, 1; layer2 (dilation 2): block 0 keeps 1, block 1 has 2;
    # layer3 (dilation 4): block 0 keeps 2, block 1 has 4.
    assert dilations == [1, 1, 1, 1, 2, 2, 2, 2, 4, 4]


def test_replace_stride_with_dilation_needs_one_flag_per_later_stage():
    model = ResNet(stage_sizes=(1, 1, 1, 1), replace_stride_with_dilation=(True,))
    with pytest.raises(ValueError, match=r"one flag per stage after the first \(3\)"):
        variable_shapes(model, (32, 32, 3))

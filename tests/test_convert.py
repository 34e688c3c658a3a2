"""``cnn_jax.convert.from_torch``: torchvision's weights give torchvision's logits in cnn_jax.

Parity (the proof that each architecture is torchvision's): a torchvision model with seeded random
weights, and every BatchNorm's weight, bias, running mean and running variance also randomised (at
initialisation they are 1, 0, 0, 1, which would hide a swapped or dropped statistic), is converted
and run on the same input in eval mode. The logits must agree to ``1e-4`` times the largest logit
magnitude. Why that much: two float32 programs (torch's kernels against ours, oneDNN's or XLA's)
sum each layer's products in their own orders. In eval mode BatchNorm is a fixed affine map, so
nothing amplifies the rounding: a layer of at most K = 4,608 products (3x3x512) moves by about
sqrt(K) * 2^-24 = 4e-6 of its size, and the 155 layers of ResNet-152 add such errors like a random
walk, sqrt(155) * 4e-6 = 5e-5. Measured: at most 2e-6 of the largest logit (VGG-11, VGG-19), with
either convolution backend (CNN_JAX_ONEDNN=0). Inputs are small and not square (so an H/W mix-up
shows) but within what both implementations accept; batch 2.

torch and torchvision are test requirements: without them the parity tests fail (CI installs them;
a skipped parity test would prove nothing).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from cnn_jax.convert import from_torch
from cnn_jax.models import create_model

TORCH_INSTALL = "pip install torch==2.14.1 torchvision==0.29.1"
RELATIVE_TOLERANCE = 1e-4  # of max |torch logit|

# zoo name -> (torchvision builder keyword arguments, input (H, W)).
PARITY_CASES: dict[str, tuple[dict, tuple[int, int]]] = {
    "alexnet": ({}, (64, 72)),  # >= 63: conv1 11x11/4 then three 3x3/2 pools
    "vgg11": ({}, (32, 40)),
    "vgg11_bn": ({}, (32, 40)),
    "vgg16": ({}, (32, 40)),
    "vgg16_bn": ({}, (32, 40)),
    "vgg19": ({}, (32, 40)),
    "vgg19_bn": ({}, (32, 40)),
    "googlenet": ({"aux_logits": False, "init_weights": True}, (32, 40)),
    "resnet18": ({}, (32, 40)),
    "resnet50": ({}, (32, 40)),
    "resnet152": ({}, (32, 40)),
    "densenet121": ({}, (32, 40)),
    "mobilenet_v2": ({}, (32, 40)),
}


@pytest.fixture(scope="module")
def torch():
    """torch with torchvision importable and limited to 2 threads; their absence fails the test."""
    try:
        import torch
        import torchvision  # noqa: F401
    except ImportError as err:
        pytest.fail(f"the torchvision parity tests need torch and torchvision ({err}): `{TORCH_INSTALL}`")
    torch.set_num_threads(2)
    return torch


def randomise_batchnorm(torch, model, seed: int) -> None:
    """Gives every BatchNorm distinct per-channel weight, bias, running mean and variance.

    The ranges keep activations of deep nets (ResNet-152) within a few orders of magnitude.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.weight.uniform_(0.5, 1.0, generator=generator)
                module.bias.uniform_(-0.2, 0.2, generator=generator)
                module.running_mean.uniform_(-0.2, 0.2, generator=generator)
                module.running_var.uniform_(1.0, 2.0, generator=generator)


def torchvision_model(torch, name: str, seed: int = 0, **kwargs):
    """torchvision's ``name`` with seeded random weights and randomised BatchNorm, in eval mode."""
    import torchvision

    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None, **kwargs)
    randomise_batchnorm(torch, model, seed + 1)
    return model.eval()


def nhwc(torch_images) -> jax.Array:
    return jnp.asarray(torch_images.permute(0, 2, 3, 1).numpy())


def assert_trees_equal(a: dict, b: dict) -> None:
    flat_a, flat_b = flatten_dict(a), flatten_dict(b)
    assert flat_a.keys() == flat_b.keys()
    for key in flat_a:
        np.testing.assert_array_equal(np.asarray(flat_a[key]), np.asarray(flat_b[key]), err_msg=str(key))


@pytest.fixture(scope="module")
def parity_report() -> Iterator[dict[str, tuple[float, float, float]]]:
    """Per parity case: seconds (torch build + forward, conversion, Flax forward), max |logit
    difference| and max |logit|; printed at the end (visible with ``pytest -s``)."""
    rows: dict[str, tuple[float, float, float]] = {}
    yield rows
    if rows:
        lines = [f"  {name:<14} {s:5.1f} s   max diff {d:.2e}   max |logit| {m:.3g}"
                 for name, (s, d, m) in rows.items()]
        total = sum(s for s, _, _ in rows.values())
        print(f"\ntorchvision parity, {total:.1f} s:\n" + "\n".join(lines))


@pytest.mark.parametrize("name", list(PARITY_CASES))
def test_converted_torchvision_weights_give_torchvision_logits(torch, parity_report, name):
    start = time.perf_counter()
    builder_kwargs, (height, width) = PARITY_CASES[name]
    model = torchvision_model(torch, name, **builder_kwargs)
    images = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(images).numpy()
    variables = from_torch(name, model.state_dict())
    del model

    # One XLA program: on CPU faster than dispatching DenseNet's or GoogLeNet's many small ops.
    forward = jax.jit(create_model(name).apply, static_argnames="train")
    logits = np.asarray(forward(variables, nhwc(images), train=False))

    assert logits.shape == expected.shape == (2, 1000)
    scale = np.abs(expected).max()
    difference = np.abs(logits - expected).max()
    parity_report[name] = (time.perf_counter() - start, difference, scale)
    assert difference <= RELATIVE_TOLERANCE * scale, (
        f"{name}: max |logit difference| {difference:.3g} > {RELATIVE_TOLERANCE} * max |logit| {scale:.3g}"
    )


def test_googlenet_auxiliary_heads_match_torchvision_in_training(torch):
    # The auxiliary fc1 reads a flattened 128x4x4 map: torch's (C, H, W) rows must be permuted to
    # the Flax model's (H, W, C) flatten; a 64x64 input gives a 4x4 map at inception 4a, so the
    # permutation is not the identity. Training mode (batch statistics), dropout off on both sides.
    model = torchvision_model(torch, "googlenet", aux_logits=True, init_weights=True, dropout=0.0,
                              dropout_aux=0.0).train()
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected_logits, expected_aux2, expected_aux1 = (t.numpy() for t in model(images))
    variables = from_torch("googlenet", model.state_dict(), aux_logits=True)
    flax_model = create_model("googlenet", aux_logits=True, dropout_rate=0.0, aux_dropout_rate=0.0)

    forward = jax.jit(lambda v, x: flax_model.apply(v, x, train=True, mutable=["batch_stats"])[0])
    logits, aux1, aux2 = forward(variables, nhwc(images))

    for ours, theirs in ((logits, expected_logits), (aux1, expected_aux1), (aux2, expected_aux2)):
        ours = np.asarray(ours)
        assert np.abs(ours - theirs).max() <= RELATIVE_TOLERANCE * np.abs(theirs).max()


def test_googlenet_checkpoint_with_auxiliary_heads_needs_aux_logits_or_ignore(torch):
    # torchvision's pretrained GoogLeNet file holds aux1/aux2 even for aux_logits=False models.
    state = torchvision_model(torch, "googlenet", aux_logits=True, init_weights=True).state_dict()
    with pytest.raises(ValueError, match=r"torch keys with no Flax leaf: aux1\.conv\.conv\.weight"):
        from_torch("googlenet", state)
    variables = from_torch("googlenet", state, ignore=(r"^aux",))
    np.testing.assert_array_equal(np.asarray(variables["params"]["fc"]["bias"]), state["fc.bias"].numpy())


# --- files, wrappers and failures, on a 10-class ResNet-18 -----------------------------------------


@pytest.fixture(scope="module")
def resnet18_state(torch) -> dict:
    """state_dict of a torchvision ResNet-18 with a 10-way head and randomised BatchNorm."""
    return torchvision_model(torch, "resnet18", num_classes=10).state_dict()


@pytest.fixture(scope="module")
def resnet18_variables(resnet18_state) -> dict:
    return from_torch("resnet18", resnet18_state, num_classes=10)


def test_conversion_transposes_layouts_and_splits_batchnorm(resnet18_state, resnet18_variables):
    params, stats = resnet18_variables["params"], resnet18_variables["batch_stats"]
    conv = resnet18_state["layer2.0.conv1.weight"].numpy()  # (O, I, kH, kW) = (128, 64, 3, 3)
    np.testing.assert_array_equal(params["layer2_0"]["conv1"]["kernel"], conv.transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(params["fc"]["kernel"], resnet18_state["fc.weight"].numpy().T)
    assert params["fc"]["kernel"].shape == (512, 10)
    bn = "layer2.0.downsample.1."
    np.testing.assert_array_equal(params["layer2_0"]["downsample_1"]["scale"], resnet18_state[bn + "weight"])
    np.testing.assert_array_equal(stats["layer2_0"]["downsample_1"]["mean"], resnet18_state[bn + "running_mean"])
    np.testing.assert_array_equal(stats["layer2_0"]["downsample_1"]["var"], resnet18_state[bn + "running_var"])


def test_safetensors_file_converts_like_the_state_dict(resnet18_state, resnet18_variables, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in resnet18_state.items()}, str(path))
    assert_trees_equal(from_torch("resnet18", path, num_classes=10), resnet18_variables)


def test_weights_only_pth_checkpoint_is_unwrapped(torch, resnet18_state, resnet18_variables, tmp_path):
    # A training checkpoint: weights nested under 'state_dict', DataParallel's 'module.' prefix.
    path = tmp_path / "checkpoint.pth"
    wrapped = {f"module.{k}": v for k, v in resnet18_state.items()}
    torch.save({"epoch": 3, "state_dict": wrapped}, path)
    assert_trees_equal(from_torch("resnet18", str(path), num_classes=10), resnet18_variables)


class _RunsCodeWhenUnpickled:
    """Pickles to `os.mkdir(marker)`: loading it with plain pickle would run that call."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_pickle_holding_an_arbitrary_object_is_refused_without_running_it(torch, resnet18_state, tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "trojan.pth"
    torch.save({"state_dict": resnet18_state, "hook": _RunsCodeWhenUnpickled(str(marker))}, path)

    with pytest.raises(ValueError, match=r"^refusing to load .*trojan\.pth.*weights_only=True"):
        from_torch("resnet18", path, num_classes=10)
    assert not marker.exists()
    # The file really is dangerous: an unrestricted load runs the call.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_missing_key_fails_in_one_line_naming_it(resnet18_state):
    state = {k: v for k, v in resnet18_state.items() if k != "layer3.1.bn2.running_var"}
    with pytest.raises(ValueError) as error:
        from_torch("resnet18", state, num_classes=10)
    message = str(error.value)
    assert "\n" not in message
    assert "1 Flax leaves not filled: batch_stats/layer3_1/bn2/var (torch layer3.1.bn2.running_var)" in message


def test_wrong_shape_fails_in_one_line_naming_key_and_shapes(resnet18_state):
    state = dict(resnet18_state)
    state["layer1.0.conv2.weight"] = state["layer1.0.conv2.weight"][:32]
    with pytest.raises(ValueError) as error:
        from_torch("resnet18", state, num_classes=10)
    message = str(error.value)
    assert "\n" not in message
    assert "layer1.0.conv2.weight is (32, 64, 3, 3), expected (64, 64, 3, 3)" in message


def test_head_size_mismatch_suggests_num_classes(resnet18_state):
    with pytest.raises(ValueError, match=r"pass num_classes=.*fc\.weight is \(10, 512\), expected \(1000, 512\)"):
        from_torch("resnet18", resnet18_state)


def test_extra_torch_key_fails_unless_ignored(resnet18_state, resnet18_variables):
    state = {**resnet18_state, "projection_head.weight": resnet18_state["fc.weight"]}
    with pytest.raises(ValueError, match=r"1 torch keys with no Flax leaf: projection_head\.weight"):
        from_torch("resnet18", state, num_classes=10)
    assert_trees_equal(
        from_torch("resnet18", state, num_classes=10, ignore=[r"^projection_head\."]), resnet18_variables
    )


def test_densenet_legacy_checkpoint_names_convert_like_current_ones(torch):
    # torchvision's released DenseNet files spell `denselayer1.norm1` as `denselayer1.norm.1`.
    state = torchvision_model(torch, "densenet121").state_dict()
    legacy = {k.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2."): v for k, v in state.items()}
    assert "features.denseblock1.denselayer1.norm.1.running_mean" in legacy
    assert_trees_equal(from_torch("densenet121", legacy), from_torch("densenet121", state))


# --- segmentation: torchvision's dilated-ResNet FCN and DeepLabV3 ---------------------------------

# Both compute the same float32 network; their differences are roundings. Each convolution sums
# at most K = 3 * 3 * 512 = 4,608 products per output, a relative error of about
# sqrt(K) * 2^-24 = 4e-6; over the ~55 layers of the deepest path such errors add like a random
# walk, sqrt(55) * 4e-6 = 3e-5, and the bilinear resize adds a few roundings more. So
# RELATIVE_TOLERANCE (1e-4 of the largest logit) holds with a margin.
SEGMENTATION_INPUT = (2, 3, 96, 128)  # non-square, so an H/W mix-up shows


def torchvision_segmentation(torch, name: str, num_classes: int = 21, stage_sizes=None,
                             aux: bool = False, seed: int = 0):
    """torchvision's ``name`` (fcn_resnet50 / deeplabv3_resnet50) with seeded random weights and
    randomised BatchNorm, eval mode; ``stage_sizes`` builds the same network on a shallower
    dilated ResNet, as torchvision's builders do with resnet50."""
    from torchvision.models import resnet, segmentation
    from torchvision.models._utils import IntermediateLayerGetter

    torch.manual_seed(seed)
    if stage_sizes is None:
        model = getattr(segmentation, name)(weights=None, weights_backbone=None,
                                            num_classes=num_classes, aux_loss=aux or None)
    else:
        backbone = resnet.ResNet(resnet.Bottleneck, list(stage_sizes),
                                 replace_stride_with_dilation=[False, True, True])
        layers = {"layer4": "out", **({"layer3": "aux"} if aux else {})}
        backbone = IntermediateLayerGetter(backbone, return_layers=layers)
        aux_head = segmentation.fcn.FCNHead(1024, num_classes) if aux else None
        if name == "fcn_resnet50":
            model = segmentation.fcn.FCN(backbone, segmentation.fcn.FCNHead(2048, num_classes),
                                         aux_head)
        else:
            head = segmentation.deeplabv3.DeepLabHead(2048, num_classes)
            model = segmentation.deeplabv3.DeepLabV3(backbone, head, aux_head)
    randomise_batchnorm(torch, model, seed + 1)
    return model.eval()


def _segmentation_parity(torch, name, **kwargs):
    aux = kwargs.get("aux", False)
    model = torchvision_segmentation(torch, name, **kwargs)
    images = torch.randn(*SEGMENTATION_INPUT, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = {k: v.permute(0, 2, 3, 1).numpy() for k, v in model(images).items()}
    model_kwargs = {"aux_loss": aux}
    if kwargs.get("stage_sizes"):
        model_kwargs["stage_sizes"] = kwargs["stage_sizes"]
    variables = from_torch(name, model.state_dict(), **model_kwargs)
    forward = jax.jit(create_model(name, **model_kwargs).apply, static_argnames="train")
    out = forward(variables, nhwc(images), train=False)
    ours = {"out": out} if not aux else out
    assert set(ours) == set(expected)
    for key, theirs in expected.items():
        logits = np.asarray(ours[key])
        assert logits.shape == theirs.shape == (2, 96, 128, 21)
        difference, scale = np.abs(logits - theirs).max(), np.abs(theirs).max()
        assert difference <= RELATIVE_TOLERANCE * scale, (name, key, difference, scale)


@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50"])
def test_torchvision_segmentation_heads_on_a_shallow_dilated_resnet_give_its_logits(torch, name):
    # The same layers, names and dilations as the full models (one bottleneck per stage), with
    # torchvision's auxiliary head: fast enough for the default tier.
    _segmentation_parity(torch, name, stage_sizes=(1, 1, 1, 1), aux=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50"])
def test_converted_torchvision_segmentation_weights_give_torchvision_logits(torch, name):
    _segmentation_parity(torch, name)


@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50"])
def test_segmentation_parameter_counts_equal_torchvisions(torch, name):
    for aux in (False, True):
        model = torchvision_segmentation(torch, name, aux=aux)
        ours = jax.eval_shape(lambda x, aux=aux: create_model(name, aux_loss=aux).init(
            jax.random.key(0), x), jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
        assert sum(int(np.prod(p.shape)) for p in jax.tree.leaves(ours["params"])) == sum(
            p.numel() for p in model.parameters())


# --- FCN-8s from torchvision's ImageNet VGG16 -----------------------------------------------------


@pytest.fixture(scope="module")
def vgg16_state(torch) -> dict:
    return torchvision_model(torch, "vgg16").state_dict()


@pytest.fixture(scope="module")
def fcn8s_from_vgg16(vgg16_state) -> dict:
    from cnn_jax.convert import fcn_from_vgg16

    return fcn_from_vgg16("fcn8s", vgg16_state)


def test_fc6_as_a_7x7_convolution_over_pool5_is_vgg16s_classifier_0(torch, vgg16_state,
                                                                      fcn8s_from_vgg16):
    from cnn_jax.backends import xla

    pool5 = torch.randn(2, 512, 7, 7, generator=torch.Generator().manual_seed(4))
    fc = torch.nn.Linear(25088, 4096)
    fc.load_state_dict({"weight": vgg16_state["classifier.0.weight"],
                        "bias": vgg16_state["classifier.0.bias"]})
    with torch.no_grad():
        expected = fc(pool5.flatten(1)).numpy()
    fc6 = fcn8s_from_vgg16["params"]["fc6"]
    assert fc6["kernel"].shape == (7, 7, 512, 4096)
    ours = xla.conv(nhwc(pool5), fc6["kernel"], (1, 1), ((0, 0), (0, 0)), (1, 1)) + fc6["bias"]
    assert ours.shape == (2, 1, 1, 4096)
    # One sum of K = 25,088 products per output: float32 rounding is about sqrt(K) * 2^-24 = 1e-5
    # of the output's scale (at most K * 2^-24 = 1.5e-3); 1e-4 is ten times the typical error.
    scale = np.abs(expected).max()
    assert np.abs(np.asarray(ours)[:, 0, 0] - expected).max() <= 1e-4 * scale


def test_fc7_is_classifier_3_and_the_features_are_vgg16s(vgg16_state, fcn8s_from_vgg16):
    params = fcn8s_from_vgg16["params"]
    np.testing.assert_array_equal(params["fc7"]["kernel"][0, 0],
                                  vgg16_state["classifier.3.weight"].numpy().T)
    np.testing.assert_array_equal(params["fc7"]["bias"], vgg16_state["classifier.3.bias"].numpy())
    np.testing.assert_array_equal(params["features_28"]["kernel"],
                                  vgg16_state["features.28.weight"].numpy().transpose(2, 3, 1, 0))


def test_fcn8s_from_vgg16_has_every_parameter_with_zero_scores(fcn8s_from_vgg16):
    model = create_model("fcn8s")
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x),
                            jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))
    got = jax.tree.map(lambda a: (a.shape, a.dtype), fcn8s_from_vgg16["params"])
    assert got == jax.tree.map(lambda a: (a.shape, a.dtype), shapes["params"])
    assert fcn8s_from_vgg16["batch_stats"] == {}
    for name in ("score_fr", "score_pool4", "score_pool3"):
        assert not np.any(fcn8s_from_vgg16["params"][name]["kernel"])
    assert float(fcn8s_from_vgg16["params"]["upscore8"]["kernel"][7, 7, 3, 3]) == pytest.approx(
        (1 - 0.5 / 8) ** 2)  # bilinear, centre taps of the 16x16 kernel


def test_fcn_from_vgg16_refuses_other_models_and_widths(vgg16_state):
    from cnn_jax.convert import fcn_from_vgg16

    with pytest.raises(ValueError, match="builds fcn32s, fcn16s or fcn8s, not 'unet'"):
        fcn_from_vgg16("unet", vgg16_state)
    with pytest.raises(ValueError, match=r"features_0/kernel \(3, 3, 3, 32\) != VGG16's "
                                         r"\(3, 3, 3, 64\).*width=1"):
        fcn_from_vgg16("fcn32s", vgg16_state, width=0.5)

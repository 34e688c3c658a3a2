"""DenseNet-BC for ImageNet (Huang et al. 2017 Table 1) in torchvision's form.

Shapes and parameter counts come from ``jax.eval_shape`` (tracing only, nothing allocated).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from flax.traverse_util import flatten_dict
from model_helpers import filled_variables, num_params, variable_shapes

from cnn_jax.layers import BatchNorm, Conv
from cnn_jax.models import create_model, get_model_spec, list_models
from cnn_jax.models.densenet import DenseNet


@pytest.mark.parametrize(
    "name, expected",
    [
        ("densenet121", 7_978_856),  # torchvision
        ("densenet169", 14_149_480),  # torchvision
        ("densenet201", 20_013_928),  # torchvision
        ("densenet264", 33_337_704),  # not in torchvision: Table 1's blocks, same recipe
    ],
)
def test_parameter_count_matches_torchvision(name, expected):
    assert num_params(create_model(name)) == expected


def test_hand_counted_tiny_densenet():
    # Stem 7x7x3x24 + BN(24); layer on c inputs: BN(c) + 1x1 c->48 + BN(48) + 3x3 48->12;
    # two layers per block (24 -> 36 -> 48 channels), transition 48 -> 24, final BN(48), FC 48->10.
    def layer(c):
        return 2 * c + c * 48 + 2 * 48 + 9 * 48 * 12

    block = layer(24) + layer(36)
    expected = 7 * 7 * 3 * 24 + 2 * 24 + block + (2 * 48 + 48 * 24) + block + 2 * 48 + 48 * 10 + 10
    assert expected == 32_530
    model = DenseNet(num_classes=10, block_config=(2, 2), growth_rate=12, num_init_features=24)
    assert num_params(model, (32, 32, 3)) == expected


@pytest.mark.parametrize(
    "name, final_channels",
    # 64 -> +6k -> /2 -> +12k -> /2 -> +nk -> /2 -> +mk, k = 32 (Table 1, compression 0.5)
    [("densenet121", 1024), ("densenet169", 1664), ("densenet201", 1920), ("densenet264", 2688)],
)
def test_channels_grow_by_k_per_layer_and_halve_at_each_transition(name, final_channels):
    params = flatten_dict(variable_shapes(create_model(name))["params"], sep="/")
    assert params["features_norm5/scale"].shape == (final_channels,)
    assert params["classifier/kernel"].shape == (final_channels, 1000)
    # Block 1 starts from the 64 stem maps; layer l sees 64 + 32 (l - 1) of them.
    assert params["features_denseblock1_denselayer1/norm1/scale"].shape == (64,)
    assert params["features_denseblock1_denselayer6/conv1/kernel"].shape == (1, 1, 64 + 5 * 32, 128)
    assert params["features_denseblock1_denselayer6/conv2/kernel"].shape == (3, 3, 128, 32)
    assert params["features_transition1/conv/kernel"].shape == (1, 1, 256, 128)
    assert params["features_transition2/conv/kernel"].shape == (1, 1, 512, 256)


def test_parameter_names_mirror_torchvision_features_tree():
    params = variable_shapes(create_model("densenet121"))["params"]
    layers = [
        f"features_denseblock{b}_denselayer{i}"
        for b, n in enumerate((6, 12, 24, 16), start=1)
        for i in range(1, n + 1)
    ]
    transitions = [f"features_transition{b}" for b in (1, 2, 3)]
    assert set(params) == {
        "features_conv0",
        "features_norm0",
        "features_norm5",
        "classifier",
        *layers,
        *transitions,
    }
    assert set(params["features_denseblock1_denselayer1"]) == {"norm1", "conv1", "norm2", "conv2"}
    assert set(params["features_transition1"]) == {"norm", "conv"}
    assert set(params["features_conv0"]) == {"kernel"}  # convolutions have no bias
    assert params["features_conv0"]["kernel"].shape == (7, 7, 3, 64)


def test_convolutions_pad_like_torch_and_batchnorms_use_torch_defaults():
    convs, norms = {}, set()

    def record(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and isinstance(context.module, Conv):
            m = context.module
            convs.setdefault((m.kernel_size, m.strides), set()).add(m.padding)
        if context.method_name == "__call__" and isinstance(context.module, BatchNorm):
            norms.add((context.module.epsilon, context.module.momentum))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        variable_shapes(create_model("densenet121"), (32, 32, 3))
    assert convs == {(7, 2): {3}, (1, 1): {0}, (3, 1): {1}}
    assert norms == {(1e-5, 0.9)}


def test_logits_shape_at_224_and_at_32():
    model = create_model("densenet121", num_classes=10)
    for size in (224, 32):
        variables = variable_shapes(model, (size, size, 3))
        x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
        out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
        assert out.shape == (2, 10)


def test_registry_metadata():
    assert list_models("densenet") == ["densenet121", "densenet169", "densenet201", "densenet264"]
    for name in list_models("densenet"):
        spec = get_model_spec(name)
        assert spec.input_shape == (224, 224, 3)
        assert spec.test_input_shape == (32, 32, 3)
        assert spec.num_classes == 1000


def test_tiny_densenet_trains_batch_stats_and_its_logits_are_finite():
    model = DenseNet(num_classes=10, block_config=(2, 2), growth_rate=12, num_init_features=24)
    variables = filled_variables(model, (32, 32, 3))
    x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
    logits, state = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(
        variables, x
    )
    assert logits.shape == (4, 10) and bool(jnp.all(jnp.isfinite(logits)))
    # Running means move from their zero start towards the batch means (momentum 0.9).
    mean0 = state["batch_stats"]["features_norm0"]["mean"]
    assert mean0.shape == (24,) and float(jnp.max(jnp.abs(mean0))) > 0

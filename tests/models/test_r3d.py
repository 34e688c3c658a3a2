"""R3D-18 is torchvision's ``r3d_18``: the same parameter count and names, and torchvision's logits
from its converted weights (random weights and random BatchNorm statistics, as tests/test_convert.py
does for the image models).

Tolerance: the two programs sum each convolution's K products in float32 in different orders, an
error of about sqrt(K) * 2^-24 of the sum's scale per layer that accumulates like a random walk over
the layers. R3D-18 has 18 weighted layers and at most K = 27 * 512 = 13,824 products:
sqrt(18) * sqrt(13,824) * 6e-8 = 3e-5 of the logits' scale, under the 1e-4 of test_convert.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from model_helpers import num_params, variable_shapes
from test_convert import RELATIVE_TOLERANCE, randomise_batchnorm, torch  # noqa: F401 (fixture)

from cnn_jax.convert import from_torch
from cnn_jax.models import create_model

R3D_18_PARAMETERS = 33_371_472  # torchvision.models.video.r3d_18(weights=None)


def _torchvision_r3d_18(torch, seed: int = 0):  # noqa: F811 (the fixture's torch module)
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.video.r3d_18(weights=None)
    randomise_batchnorm(torch, model, seed + 1)
    return model.eval()


def _logits_match(torch, clip_shape):  # noqa: F811
    model = _torchvision_r3d_18(torch)
    clips = torch.randn(*clip_shape, generator=torch.Generator().manual_seed(2))  # (N, C, T, H, W)
    with torch.no_grad():
        expected = model(clips).numpy()
    variables = from_torch("r3d_18", model.state_dict())
    forward = jax.jit(create_model("r3d_18").apply, static_argnames="train")
    logits = np.asarray(forward(variables, jnp.asarray(clips.permute(0, 2, 3, 4, 1).numpy()),
                                train=False))
    assert logits.shape == expected.shape == (clip_shape[0], 400)
    scale = np.abs(expected).max()
    assert np.abs(logits - expected).max() <= RELATIVE_TOLERANCE * scale


def test_r3d_18_parameter_count_is_torchvisions(torch):  # noqa: F811
    model = _torchvision_r3d_18(torch)
    assert sum(p.numel() for p in model.parameters()) == R3D_18_PARAMETERS
    assert num_params(create_model("r3d_18"), (16, 112, 112, 3)) == R3D_18_PARAMETERS


def test_r3d_18_layers_follow_torchvisions_tree():
    variables = variable_shapes(create_model("r3d_18"), (16, 112, 112, 3))
    params = variables["params"]
    assert params["stem"]["conv"]["kernel"].shape == (3, 7, 7, 3, 64)  # 3x7x7, no bias
    assert "bias" not in params["stem"]["conv"]
    assert params["layer1_0"]["conv1"]["conv"]["kernel"].shape == (3, 3, 3, 64, 64)
    assert "downsample" not in params["layer1_0"]  # stage 1 keeps the shape
    assert params["layer2_0"]["downsample"]["conv"]["kernel"].shape == (1, 1, 1, 64, 128)
    assert "downsample" not in params["layer2_1"]
    assert params["fc"]["kernel"].shape == (512, 400)
    assert variables["batch_stats"]["layer4_1"]["conv2"]["bn"]["var"].shape == (512,)


def test_r3d_18_strides_time_in_stages_2_to_4_but_not_in_the_stem():
    model = create_model("r3d_18")
    variables = variable_shapes(model, (16, 112, 112, 3))

    def run(variables, x):
        return model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])

    clips = jax.ShapeDtypeStruct((1, 16, 112, 112, 3), jnp.float32)
    _, state = jax.eval_shape(run, variables, clips)
    shapes = {k: v["__call__"][0].shape[1:] for k, v in state["intermediates"].items()
              if k.startswith(("stem", "layer"))}
    assert shapes["stem"] == (16, 56, 56, 64)
    assert shapes["layer1_1"] == (16, 56, 56, 64)
    assert shapes["layer2_1"] == (8, 28, 28, 128)
    assert shapes["layer3_1"] == (4, 14, 14, 256)
    assert shapes["layer4_1"] == (2, 7, 7, 512)


def test_converted_torchvision_r3d_18_gives_its_logits_on_a_small_clip(torch):  # noqa: F811
    _logits_match(torch, (2, 3, 8, 56, 48))  # not square, so an H/W mix-up shows


@pytest.mark.slow
def test_converted_torchvision_r3d_18_gives_its_logits_on_a_16x112x112_clip(torch):  # noqa: F811
    _logits_match(torch, (2, 3, 16, 112, 112))

"""C3D (Tran et al. 2015 Fig. 3): the layer table and parameter count of the paper's network, the
reduced Moving MNIST variant and its per-frame 2-D twin, which cannot see the order of frames."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from model_helpers import filled_variables, num_params, variable_shapes

from cnn_jax.models import create_model, get_model_spec
from cnn_jax.models.c3d import LAYERS

CLIP = (16, 112, 112, 3)


def _conv_outputs(model, shape):
    """Output shape of every convolution (and the logits) for one clip of ``shape``."""
    variables = variable_shapes(model, shape)

    def run(variables, x):
        return model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])

    _, state = jax.eval_shape(run, variables, jax.ShapeDtypeStruct((1, *shape), jnp.float32))
    return {name: state["intermediates"][name]["__call__"][0].shape[1:] for name, *_ in LAYERS}


def test_c3d_has_79991015_parameters_for_sports1m():
    # Convolutions 27,655,936; fc6 8192 * 4096 + 4096; fc7 4096^2 + 4096; fc8 4096 * 487 + 487.
    inputs = [3] + [c for _, c, _ in LAYERS[:-1]]
    conv = sum(27 * c_in * c_out + c_out
               for c_in, (_, c_out, _) in zip(inputs, LAYERS, strict=True))
    assert conv == 27_655_936
    expected = conv + (8192 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 487 + 487)
    assert expected == 79_991_015
    assert num_params(create_model("c3d"), CLIP) == expected
    assert get_model_spec("c3d").num_classes == 487 and get_model_spec("c3d").input_shape == CLIP


def test_c3d_layer_table_of_a_16x112x112_clip():
    shapes = _conv_outputs(create_model("c3d"), CLIP)
    assert shapes == {
        "conv1a": (16, 112, 112, 64), "conv2a": (16, 56, 56, 128),  # pool1 keeps time
        "conv3a": (8, 28, 28, 256), "conv3b": (8, 28, 28, 256),
        "conv4a": (4, 14, 14, 512), "conv4b": (4, 14, 14, 512),
        "conv5a": (2, 7, 7, 512), "conv5b": (2, 7, 7, 512),
    }
    params = variable_shapes(create_model("c3d"), CLIP)["params"]
    assert params["conv1a"]["kernel"].shape == (3, 3, 3, 3, 64)
    # pool5 rounds up as Caffe's: 2x7x7 -> 1x4x4, 512 * 16 = 8192 inputs to fc6.
    assert params["fc6"]["kernel"].shape == (8192, 4096)
    assert params["fc8"]["kernel"].shape == (4096, 487)


def test_c3d_small_frames2d_small_and_frame2d_small_parameter_counts():
    assert num_params(create_model("c3d_small"), (16, 64, 64, 1)) == 566_200
    assert num_params(create_model("c3d_small"), (20, 64, 64, 1)) == 631_736  # pool5 keeps 2 frames
    # Same head, 1x3x3 kernels: the convolutions have 144,416 parameters instead of 432,560.
    assert num_params(create_model("frames2d_small"), (16, 64, 64, 1)) == 278_056
    assert num_params(create_model("frames2d_small"), (20, 64, 64, 1)) == 278_056
    assert num_params(create_model("frame2d_small"), (16, 64, 64, 1)) == 278_056
    params = variable_shapes(create_model("frames2d_small"), (16, 64, 64, 1))["params"]
    assert params["conv2a"]["kernel"].shape == (3, 3, 8, 16)  # a 2-D kernel per frame


def test_frames2d_small_is_blind_to_the_order_of_frames_and_c3d_small_is_not():
    rng = np.random.default_rng(0)
    clip = rng.standard_normal((16, 32, 32, 1)).astype(np.float32)
    # One batch: the clip, the clip played backwards, its frames shuffled.
    clips = jnp.asarray(np.stack([clip, clip[::-1], clip[rng.permutation(16)]]))
    for name, blind in (("frames2d_small", True), ("c3d_small", False)):
        model = create_model(name)
        variables = filled_variables(model, clip.shape)
        logits = jax.jit(model.apply)(variables, clips)
        if blind:
            # Averaging over time is symmetric in the frames: only float32 summation order differs.
            np.testing.assert_allclose(logits[1:], logits[:1].repeat(2, 0), rtol=1e-5, atol=1e-6)
        else:
            difference = float(jnp.max(jnp.abs(logits[1] - logits[0])))
            assert difference > 1e-3 * float(jnp.max(jnp.abs(logits)))


def test_c3d_rejects_images_without_a_time_axis():
    model = create_model("c3d_small")
    with pytest.raises(ValueError, match=r"clips \(N, T, H, W, C\)"):
        model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 1)))


def test_frames2d_small_is_the_mean_of_its_frames_classified_one_at_a_time():
    # The single-frame model: a clip's logits are the mean of the logits of its frames, each
    # classified as a one-frame clip by the same 2-D network.
    model = create_model("frames2d_small")
    clip = np.random.default_rng(1).standard_normal((4, 32, 32, 1)).astype(np.float32)
    variables = filled_variables(model, (16, 32, 32, 1))
    logits = model.apply(variables, jnp.asarray(clip[None]))
    each = model.apply(variables, jnp.asarray(clip[:, None]))  # 4 clips of one frame
    np.testing.assert_allclose(logits[0], each.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_frame2d_small_sees_the_first_frame_alone():
    # The single-frame model: its logits are those of the first frame as a one-frame clip, and
    # no other frame reaches them (their gradient is exactly zero).
    model = create_model("frame2d_small")
    clip = jnp.asarray(np.random.default_rng(2).standard_normal((1, 3, 32, 32, 1)).astype(np.float32))
    variables = filled_variables(model, (16, 32, 32, 1))
    apply = jax.jit(model.apply)
    np.testing.assert_array_equal(apply(variables, clip), apply(variables, clip[:, :1]))
    grad = jax.jit(jax.grad(lambda x: jnp.sum(model.apply(variables, x) ** 2)))(clip)
    assert float(jnp.max(jnp.abs(grad[:, 0]))) > 0 and not np.any(np.asarray(grad[:, 1:]))


def test_frame_outside_the_clip_or_with_3d_kernels_is_refused():
    clip = jnp.zeros((1, 4, 32, 32, 1))
    with pytest.raises(ValueError, match=r"frame=4.*0 to 3"):
        create_model("frame2d_small", frame=4).init(jax.random.key(0), clip)
    with pytest.raises(ValueError, match="temporal=False"):
        create_model("c3d_small", frame=0).init(jax.random.key(0), jnp.zeros((1, 16, 32, 32, 1)))

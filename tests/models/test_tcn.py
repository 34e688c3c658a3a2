"""TCN (Bai, Kolter & Koltun 2018): the sequential-MNIST configuration's size and receptive field,
causality (output step t has an exactly zero gradient with respect to every later input step),
weight normalisation, and the fixed pixel order of permuted sequential MNIST."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from model_helpers import filled_variables, num_params

from cnn_jax.models import create_model, get_model_spec
from cnn_jax.models.tcn import TCN, WeightNormCausalConv1D, pixel_permutation, receptive_field


def test_sequential_mnist_tcn_has_66910_parameters():
    # Level 1: conv 1->25 (175 + 25 + 25), conv 25->25 (4,375 + 25 + 25), 1x1 skip 25 + 25.
    level1 = (7 * 1 * 25 + 25 + 25) + (7 * 25 * 25 + 25 + 25) + (25 + 25)
    later = 2 * (7 * 25 * 25 + 25 + 25)
    assert (level1, later) == (4_700, 8_850)
    expected = level1 + 7 * later + (25 * 10 + 10)
    assert expected == 66_910  # Table 1 rounds it to 70K
    for name in ("tcn_seq_mnist", "tcn_pmnist"):
        assert num_params(create_model(name), (28, 28, 1)) == expected
        assert get_model_spec(name).input_shape == (28, 28, 1)


def test_receptive_field_of_8_levels_of_kernel_7_covers_the_784_pixels():
    model = create_model("tcn_seq_mnist")
    assert (model.num_levels, model.channels, model.kernel_size) == (8, 25, 7)
    assert receptive_field(7, 8) == 1 + 2 * 6 * 255 == 3_061 >= 784
    assert receptive_field(2, 3) == 15


def _input_gradients(model: TCN, variables, x: jax.Array, steps: list[int]) -> np.ndarray:
    """|d features[t] / d input| summed over channels, one row per step t: (len(steps), L)."""

    def feature_sum(x, t):
        features = model.apply(variables, x, method=TCN.sequence_features)
        return jnp.sum(features[0, t])

    grad = jax.jit(jax.vmap(jax.grad(feature_sum), in_axes=(None, 0)))(x, jnp.asarray(steps))
    return np.abs(np.asarray(grad)).reshape(len(steps), -1)


def test_output_at_step_t_has_exactly_zero_gradient_wrt_later_inputs():
    model = create_model("tcn_seq_mnist", dropout_rate=0.0)
    x = jnp.asarray(np.random.default_rng(0).random((1, 28, 28, 1)), jnp.float32)
    variables = filled_variables(model, x.shape[1:])
    steps = [0, 1, 27, 391, 700, 783]
    grads = _input_gradients(model, variables, x, steps)  # raster order: pixel index = step
    for row, t in zip(grads, steps, strict=True):
        assert np.all(row[t + 1:] == 0.0), f"step {t} depends on later inputs"
        assert row[t] > 0.0 and row[: t + 1].sum() > 0.0


def test_output_depends_on_no_input_before_its_receptive_field():
    # Kernel 2, 3 levels: a receptive field of 15 steps, so step t sees only t - 14 ... t.
    model = TCN(channels=4, num_levels=3, kernel_size=2, dropout_rate=0.0)
    x = jnp.asarray(np.random.default_rng(1).random((1, 8, 8, 1)), jnp.float32)
    variables = filled_variables(model, x.shape[1:])
    steps = [20, 40, 63]
    for row, t in zip(_input_gradients(model, variables, x, steps), steps, strict=True):
        assert np.all(row[: t - 14] == 0.0) and np.all(row[t + 1:] == 0.0)
        assert row[t - 14: t + 1].sum() > 0.0


def test_permuted_tcn_reads_pixels_in_one_fixed_order():
    permutation = pixel_permutation(784, 0)
    assert np.array_equal(permutation, pixel_permutation(784, 0))  # a constant of the model
    assert sorted(permutation) == list(range(784))
    assert not np.array_equal(permutation, np.arange(784))
    images = jnp.asarray(np.random.default_rng(2).random((2, 28, 28, 1)), jnp.float32)
    plain, permuted = create_model("tcn_seq_mnist"), create_model("tcn_pmnist")
    variables = filled_variables(plain, (28, 28, 1))  # the same parameters fit both
    # Reading the images in the permuted order = reading the permuted images in raster order.
    reordered = images.reshape(2, 784, 1)[:, permutation].reshape(2, 28, 28, 1)
    in_order, out_of_order = jax.jit(lambda v, x: (plain.apply(v, x), permuted.apply(v, x)))(
        variables, images)
    # The same operations on the same numbers in two compiled programs: at most XLA's fusion may
    # reorder a sum (the weight-norm's over 175 or 4,375 taps), a few float32 roundings.
    np.testing.assert_allclose(out_of_order, jax.jit(plain.apply)(variables, reordered), rtol=1e-6)
    assert not np.allclose(in_order, out_of_order)


def test_weight_norm_starts_at_the_plain_convolution_and_ignores_the_scale_of_v():
    layer = WeightNormCausalConv1D(features=3, kernel_size=2, dilation=2)
    x = jnp.asarray(np.random.default_rng(3).standard_normal((1, 10, 2)), jnp.float32)
    variables = layer.init(jax.random.key(0), x)
    params = variables["params"]
    v = params["conv"]["kernel"]
    # torch's weight_norm starts g at ||v|| per output channel: the layer computes the conv with v.
    np.testing.assert_allclose(params["scale"], jnp.sqrt(jnp.sum(v**2, axis=(0, 1))), rtol=1e-6)
    padded = jnp.pad(x, ((0, 0), (2, 0), (0, 0)))  # causal: (k - 1) d zeros on the left
    plain = padded[:, :-2] @ v[0] + padded[:, 2:] @ v[1]
    np.testing.assert_allclose(layer.apply(variables, x), plain, rtol=1e-5, atol=1e-6)
    # w = g v / ||v||: scaling v changes nothing; scaling g scales the output.
    scaled_v = {"params": {**params, "conv": {"kernel": 3.0 * v}}}
    np.testing.assert_allclose(layer.apply(scaled_v, x), plain, rtol=1e-5, atol=1e-6)
    scaled_g = {"params": {**params, "scale": 2.0 * params["scale"]}}
    np.testing.assert_allclose(layer.apply(scaled_g, x), 2.0 * plain, rtol=1e-5, atol=1e-6)


def test_tcn_rejects_sequences_that_are_not_images():
    with pytest.raises(ValueError, match="pixel by pixel"):
        create_model("tcn_seq_mnist").init(jax.random.key(0), jnp.zeros((1, 784, 1)))

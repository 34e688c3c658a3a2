"""Specification of cnn_jax.layers.initializers: each name gives the statistics its paper defines."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.layers import Conv, ConvTranspose, get_initializer
from cnn_jax.layers.initializers import bilinear_taps

KEY = jax.random.key(42)
# A conv kernel big enough (590k weights) that sample statistics are within ~0.3% of the truth.
SHAPE = (3, 3, 256, 256)
FAN_IN, FAN_OUT = 3 * 3 * 256, 3 * 3 * 256
WIDE = (3, 3, 64, 512)  # fan_in 576 != fan_out 4608, to tell the modes apart


def _sample(name: str, shape=SHAPE, **kw) -> np.ndarray:
    return np.asarray(get_initializer(name, **kw)(KEY, shape, jnp.float32))


@pytest.mark.parametrize(
    "name,expected_std",
    [
        ("he_normal", math.sqrt(2 / FAN_IN)),
        ("kaiming_normal", math.sqrt(2 / FAN_IN)),
        ("lecun_normal", math.sqrt(1 / FAN_IN)),
        ("glorot_normal", math.sqrt(2 / (FAN_IN + FAN_OUT))),
        ("xavier_normal", math.sqrt(2 / (FAN_IN + FAN_OUT))),
        ("he_uniform", math.sqrt(2 / FAN_IN)),
        ("lecun_uniform", math.sqrt(1 / FAN_IN)),
        ("glorot_uniform", math.sqrt(2 / (FAN_IN + FAN_OUT))),
    ],
)
def test_variance_scaling_initialiser_has_the_papers_standard_deviation(name, expected_std):
    w = _sample(name)
    assert w.std() == pytest.approx(expected_std, rel=0.01)
    assert abs(w.mean()) < 0.01 * expected_std


def test_he_normal_is_an_untruncated_gaussian_like_the_paper():
    w = _sample("he_normal")
    std = math.sqrt(2 / FAN_IN)
    # A Gaussian puts 4.55% of its mass beyond two standard deviations; JAX's truncated one puts 0%.
    assert np.mean(np.abs(w) > 2 * std) == pytest.approx(0.0455, abs=0.002)
    truncated = _sample("he_normal", distribution="truncated_normal")
    assert np.abs(truncated).max() <= 2 * std / 0.87962566 + 1e-6
    assert truncated.std() == pytest.approx(std, rel=0.01)


def test_uniform_variance_scaling_bounds_are_sqrt_three_standard_deviations():
    w = _sample("he_uniform")
    limit = math.sqrt(6 / FAN_IN)
    assert w.max() <= limit and w.min() >= -limit
    assert w.max() == pytest.approx(limit, rel=1e-3) and w.min() == pytest.approx(-limit, rel=1e-3)


def test_glorot_uniform_uses_the_average_of_both_fans():
    w = _sample("glorot_uniform", shape=WIDE)
    limit = math.sqrt(6 / (576 + 4608))  # Glorot & Bengio 2010, eq. 16
    assert w.max() == pytest.approx(limit, rel=1e-3)


def test_he_normal_fan_out_mode_uses_the_output_fan():
    w = _sample("he_normal", shape=WIDE, mode="fan_out")
    assert w.std() == pytest.approx(math.sqrt(2 / 4608), rel=0.01)
    assert _sample("he_normal", shape=WIDE).std() == pytest.approx(math.sqrt(2 / 576), rel=0.01)


def test_he_normal_negative_slope_scales_the_variance_by_one_over_one_plus_a_squared():
    w = _sample("he_normal", negative_slope=0.25)  # He et al. 2015 eq. 15 with PReLU's a = 0.25
    assert w.std() == pytest.approx(math.sqrt(2 / ((1 + 0.25**2) * FAN_IN)), rel=0.01)


def test_aliases_give_identical_values():
    np.testing.assert_array_equal(
        _sample("kaiming_uniform", (3, 3, 4, 4)), _sample("he_uniform", (3, 3, 4, 4))
    )
    np.testing.assert_array_equal(
        _sample("xavier_normal", (3, 3, 4, 4)), _sample("glorot_normal", (3, 3, 4, 4))
    )
    np.testing.assert_array_equal(
        _sample("He_Normal", (3, 3, 4, 4)), _sample("he_normal", (3, 3, 4, 4))
    )


def test_zeros_ones_and_constant_fill_the_whole_tensor():
    np.testing.assert_array_equal(_sample("zeros", (2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(_sample("ones", (2, 3)), np.ones((2, 3)))
    np.testing.assert_array_equal(
        _sample("constant", (2, 3), value=0.1), np.full((2, 3), 0.1, np.float32)
    )


def test_constant_without_a_value_explains_how_to_pass_one():
    with pytest.raises(TypeError, match="value=0.1"):
        get_initializer("constant")


def test_normal_has_the_requested_mean_and_standard_deviation():
    w = _sample("normal", (100_000,), stddev=0.01)  # AlexNet's N(0, 0.01^2)
    assert w.std() == pytest.approx(0.01, rel=0.01)
    assert abs(w.mean()) < 2e-4
    shifted = _sample("normal", (100_000,), stddev=0.5, mean=1.0)
    assert shifted.mean() == pytest.approx(1.0, abs=0.01)


def test_uniform_is_symmetric_around_zero_within_the_scale():
    w = _sample("uniform", (100_000,), scale=0.05)
    assert w.min() >= -0.05 and w.max() < 0.05
    assert w.min() < -0.049 and w.max() > 0.049
    assert w.std() == pytest.approx(0.05 / math.sqrt(3), rel=0.01)


def test_truncated_normal_stays_within_two_standard_deviations():
    w = _sample("truncated_normal", (100_000,), stddev=0.1)
    assert np.abs(w).max() <= 0.2 + 1e-6
    assert np.abs(w).max() > 0.19


def test_a_callable_initialiser_passes_through_unchanged():
    def init(key, shape, dtype=jnp.float32):
        return jnp.full(shape, 7.0, dtype)

    assert get_initializer(init) is init
    kernel = Conv(2, 3, kernel_init=init).init(KEY, jnp.ones((1, 4, 4, 1)))["params"]["kernel"]
    np.testing.assert_array_equal(np.asarray(kernel), np.full((3, 3, 1, 2), 7.0))


def test_conv_kernel_initialised_by_name_has_the_fan_in_of_the_grouped_kernel():
    # groups=4 on 64 channels: fan_in = 3 * 3 * 16, as in torch.
    conv = Conv(256, 3, groups=4, kernel_init="he_normal")
    kernel = conv.init(KEY, jnp.ones((1, 3, 3, 64)))["params"]["kernel"]
    assert float(jnp.std(kernel)) == pytest.approx(math.sqrt(2 / (3 * 3 * 16)), rel=0.02)


def test_unknown_initialiser_name_raises_a_value_error_listing_the_names():
    with pytest.raises(
        ValueError, match="unknown initialiser 'he_gaussian'.*he_normal.*kaiming_uniform"
    ):
        get_initializer("he_gaussian")


def test_arguments_that_do_not_apply_are_rejected():
    with pytest.raises(TypeError):
        get_initializer("zeros", value=1.0)
    with pytest.raises(ValueError, match="negative_slope only applies to he_"):
        get_initializer("glorot_normal", negative_slope=0.1)


def test_bilinear_taps_are_the_weights_of_linear_interpolation():
    # Factor f = ceil(k / 2): x2 upsampling (k = 4) weighs neighbours 3:1, x3 (k = 5, odd,
    # centred on a tap) 2:1 (Long et al. 2015 §3.3; the reference's surgery.upsample_filt).
    np.testing.assert_allclose(bilinear_taps(4), [0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(bilinear_taps(5), [1 / 3, 2 / 3, 1, 2 / 3, 1 / 3])
    assert bilinear_taps(64).sum() == 32  # stride 32: the weights per output phase sum to 1


def test_bilinear_kernel_maps_each_channel_to_itself():
    kernel = np.asarray(get_initializer("bilinear")(KEY, (4, 4, 3, 3), jnp.float32))
    taps = np.outer(bilinear_taps(4), bilinear_taps(4))
    for c in range(3):
        np.testing.assert_allclose(kernel[:, :, c, c], taps)
    assert np.count_nonzero(kernel) == 3 * 16  # nothing off the channel diagonal
    grouped = np.asarray(get_initializer("bilinear")(KEY, (4, 4, 3, 1), jnp.float32))
    np.testing.assert_allclose(grouped[:, :, 2, 0], taps)
    with pytest.raises(ValueError, match=r"must end in \(C, C\) or \(C, 1\)"):
        get_initializer("bilinear")(KEY, (4, 4, 3, 2), jnp.float32)


@pytest.mark.parametrize("factor", [2, 8, 32])
def test_bilinear_transposed_convolution_interpolates_a_ramp_on_the_finer_grid(factor):
    # Kernel 2f, stride f, crop f/2: input sample i sits at output f i + (f - 1) / 2, the centre
    # of the f pixels it covers. A ramp sampled at the coarse cells' centres comes back as the
    # same ramp at every fine pixel between the first and last centre (exactly: bilinear
    # interpolation reproduces linear functions).
    coarse = 6
    centres = factor * np.arange(coarse) + (factor - 1) / 2
    x = jnp.asarray((0.5 * centres + 3.0).reshape(1, coarse, 1, 1), jnp.float32)
    up = ConvTranspose(1, (2 * factor, 1), strides=(factor, 1),
                       padding=((factor // 2,) * 2, (0, 0)), use_bias=False, kernel_init="bilinear")
    y = np.asarray(up.apply(up.init(KEY, x), x))[0, :, 0, 0]
    assert y.shape == (coarse * factor,)
    inner = np.arange(int(np.ceil(centres[0])), int(centres[-1]) + 1)
    np.testing.assert_allclose(y[inner], 0.5 * inner + 3.0, rtol=1e-6)

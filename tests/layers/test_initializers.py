"""Specification of cnn_jax.layers.initializers: each name gives the statistics its paper defines."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.layers import Conv, get_initializer

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

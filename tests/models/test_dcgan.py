"""DCGAN (Radford et al. 2016): generator and discriminator sizes for 28x28x1 and the paper's
64x64 layout, the generator's tanh range, and the two halves' parameter subtrees."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from model_helpers import filled_variables, num_params, variable_shapes

from cnn_jax.models import create_model
from cnn_jax.models.dcgan import DCGAN, base_and_doublings

MNIST = (28, 28, 1)


def _count(tree) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def test_dcgan_for_28x28_has_a_generator_and_a_discriminator_under_their_names():
    params = variable_shapes(create_model("dcgan"), MNIST)["params"]
    assert set(params) == {"generator", "discriminator"}
    # Generator: 100 -> 7x7x128 (7x7 projection), -> 14x14x64, -> 28x28x1; BN but on the output.
    generator = (100 * 49 * 128 + 2 * 128) + (128 * 16 * 64 + 2 * 64) + (64 * 16 * 1 + 1)
    # Discriminator: 28x28x1 -> 14x14x64 (no BN), -> 7x7x128 (BN), 7x7 convolution -> 1 logit.
    discriminator = (16 * 64 + 64) + (64 * 16 * 128 + 2 * 128) + (128 * 49 + 1)
    assert _count(params["generator"]) == generator == 759_681
    assert _count(params["discriminator"]) == discriminator == 138_689
    assert num_params(create_model("dcgan"), MNIST) == 898_370
    assert "bn1" not in params["discriminator"] and "bias" not in params["generator"]["deconv1"]


def test_dcgan_64x64_generator_is_the_papers_figure_1():
    model = DCGAN(image_size=64, channels=3, features=128)
    params = variable_shapes(model, (64, 64, 3))["params"]["generator"]
    widths = [params[f"deconv{i}"]["kernel"].shape[-1] for i in range(1, 6)]
    assert widths == [1024, 512, 256, 128, 3]
    assert params["deconv1"]["kernel"].shape == (4, 4, 100, 1024)  # z projected to 4x4x1024
    assert base_and_doublings(64) == (4, 4) and base_and_doublings(28) == (7, 2)
    with pytest.raises(ValueError, match="not b \\* 2\\^n"):
        base_and_doublings(36)


def test_generator_output_is_an_image_in_minus_one_to_one():
    model = create_model("dcgan")
    variables = filled_variables(model, MNIST)

    @jax.jit
    def generate(z):
        return model.apply(variables, z, method="generate")

    # Far out in the latent space: tanh saturates, never goes beyond.
    z = 10.0 * jax.random.normal(jax.random.key(0), (4, 100))
    images = generate(z)
    assert images.shape == (4, *MNIST)
    assert float(jnp.min(images)) >= -1.0 and float(jnp.max(images)) <= 1.0
    assert float(jnp.max(jnp.abs(images))) > 0.9


def test_call_runs_both_halves_on_real_images_and_on_samples_from_the_sample_stream():
    model = create_model("dcgan")
    variables = filled_variables(model, MNIST)
    images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, *MNIST)), jnp.float32)

    @jax.jit
    def run(key):
        return model.apply(variables, images, train=True, rngs={"sample": key},
                           mutable=["batch_stats"])

    (out, state), (again, _) = run(jax.random.key(1)), run(jax.random.key(1))
    assert {k: v.shape for k, v in out.items()} == {
        "real_logits": (2,), "fake_logits": (2,), "samples": (2, *MNIST)}
    np.testing.assert_array_equal(out["samples"], again["samples"])
    assert not np.allclose(out["samples"], run(jax.random.key(2))[0]["samples"])
    assert set(state["batch_stats"]) == {"generator", "discriminator"}
    assert model.apply(variables, images, method="discriminate").shape == (2,)
    with pytest.raises(ValueError, match="28x28"):
        model.apply(variables, jnp.zeros((1, 32, 32, 1)), method="discriminate")

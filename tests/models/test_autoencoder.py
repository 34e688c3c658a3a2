"""The convolutional autoencoder and the VAE (Kingma & Welling 2014): sizes and shapes for 28x28x1,
and the reparameterisation's use of the 'sample' random stream."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from model_helpers import filled_variables, num_params, variable_shapes

from cnn_jax.models import create_model, get_model_spec

MNIST = (28, 28, 1)


@pytest.fixture(scope="module")
def images():
    return jnp.asarray(np.random.default_rng(0).random((3, *MNIST)), jnp.float32)


@pytest.fixture(scope="module")
def vae_and_variables(images):
    model = create_model("vae")
    return model, filled_variables(model, MNIST)


def test_parameter_counts_with_a_20_unit_code():
    encoder = (16 * 1 * 32 + 32) + (16 * 32 * 64 + 64)  # two 4x4 stride-2 convolutions
    decoder = (20 * 3136 + 3136) + (16 * 64 * 32 + 32) + (16 * 32 * 1 + 1)  # project, 2 deconvs
    code = 3136 * 20 + 20  # 7 * 7 * 64 features -> 20
    assert num_params(create_model("autoencoder"), MNIST) == encoder + code + decoder == 195_285
    assert num_params(create_model("vae"), MNIST) == encoder + 2 * code + decoder == 258_025
    assert get_model_spec("vae").num_classes == 0


def test_autoencoder_returns_reconstruction_logits_of_the_image_shape(images):
    model = create_model("autoencoder", latent=8)
    variables = variable_shapes(model, MNIST)
    assert variables["params"]["bottleneck"]["kernel"].shape == (3136, 8)
    shapes = jax.eval_shape(lambda v, x: (model.apply(v, x), model.apply(v, x, method="encode")),
                            variables, images)
    assert [s.shape for s in shapes] == [images.shape, (3, 8)]


def test_vae_returns_logits_mean_and_log_variance(vae_and_variables, images):
    model, variables = vae_and_variables
    out = model.apply(variables, images, rngs={"sample": jax.random.key(1)})
    assert set(out) == {"logits", "mean", "log_variance"}
    assert out["logits"].shape == images.shape
    assert out["mean"].shape == out["log_variance"].shape == (3, 20)


def test_reparameterisation_draws_eps_from_the_sample_stream(vae_and_variables, images):
    model, variables = vae_and_variables
    reparameterize = jax.jit(lambda mean, log_variance, key: model.apply(
        variables, mean, log_variance, method="reparameterize", rngs={"sample": key}))
    mean, log_variance = jax.jit(lambda x: model.apply(variables, x, method="encode"))(images)

    first = reparameterize(mean, log_variance, jax.random.key(1))
    again = reparameterize(mean, log_variance, jax.random.key(1))
    other = reparameterize(mean, log_variance, jax.random.key(2))
    np.testing.assert_array_equal(first, again)  # same key, same z
    assert not np.allclose(first, other)  # another key, another z
    # z = mean + exp(log_variance / 2) * eps: with mean 0 and log-variance 0 the same key gives eps.
    eps = reparameterize(jnp.zeros_like(mean), jnp.zeros_like(mean), jax.random.key(1))
    np.testing.assert_allclose(first, mean + jnp.exp(0.5 * log_variance) * eps, rtol=1e-6,
                               atol=1e-6)
    # 60 draws of N(0, 1)
    assert abs(float(jnp.mean(eps))) < 0.5 and 0.5 < float(jnp.std(eps)) < 1.5
    # The call samples by default and needs the stream; sample=False decodes the mean.
    with pytest.raises(Exception, match="sample"):
        model.apply(variables, images)
    np.testing.assert_allclose(model.apply(variables, images, sample=False)["logits"],
                               model.apply(variables, mean, method="decode"), rtol=1e-5, atol=1e-6)


def test_vae_gradient_reaches_the_encoder_through_z(vae_and_variables, images):
    model, variables = vae_and_variables

    def reconstruction_term(params):  # no KL: the encoder is reached only through z
        outputs = model.apply({"params": params}, images, rngs={"sample": jax.random.key(3)})
        logits = outputs["logits"]
        return jnp.sum(jax.nn.softplus(logits) - images * logits)

    grads = jax.jit(jax.grad(reconstruction_term))(variables["params"])
    for name in ("encoder", "mean", "log_variance", "decoder"):
        assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads[name])) > 0, name


def test_sample_prior_decodes_codes_from_the_sample_stream(vae_and_variables):
    model, variables = vae_and_variables
    draw = jax.jit(lambda key: model.apply(variables, 4, method="sample_prior",
                                           rngs={"sample": key}))
    samples = draw(jax.random.key(5))
    assert samples.shape == (4, *MNIST)
    np.testing.assert_array_equal(samples, draw(jax.random.key(5)))
    assert not np.allclose(samples, draw(jax.random.key(6)))


def test_models_name_the_image_shape_they_were_built_for(images):
    with pytest.raises(ValueError, match=r"built for images \(28, 28, 1\)"):
        create_model("vae").init(jax.random.key(0), jnp.zeros((1, 32, 32, 1)))
    with pytest.raises(ValueError, match="num_classes must be 0"):
        create_model("autoencoder", num_classes=10)


def test_vae_loss_is_the_negative_elbo_in_nats_per_image():
    model = create_model("vae")
    outputs = {"logits": jnp.zeros((2, *MNIST)),  # p = 1/2 for every pixel: ln 2 each
               "mean": jnp.stack([jnp.zeros(20), jnp.ones(20)]),
               "log_variance": jnp.zeros((2, 20))}
    batch = {"image": np.random.default_rng(0).integers(0, 256, (2, *MNIST), dtype=np.uint8)}
    loss, parts = model.loss(outputs, batch)
    # KL(N(m, 1) || N(0, 1)) = m^2 / 2 per dimension: 0 and 20 * 1/2 for the two images.
    np.testing.assert_allclose(parts["reconstruction"], 784 * np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(parts["kl"], (0.0 + 10.0) / 2, rtol=1e-6)
    np.testing.assert_allclose(loss, 784 * np.log(2.0) + 5.0, rtol=1e-6)
    masked, _ = model.loss(outputs, {**batch, "mask": np.array([True, False])})  # padding row
    np.testing.assert_allclose(masked, 784 * np.log(2.0), rtol=1e-6)

"""Every registered model threads ``conv_impl`` to its convolutions (transposed ones included: on
oneDNN they are backward-data passes), and under the default ('auto':
oneDNN on this CPU) forward-mode derivatives, second derivatives and training gradients match the
same model on XLA's convolutions (``conv_impl='xla'``).

Tolerances: oneDNN and XLA sum each convolution's K products in float32 in different orders, an
error that grows like sqrt(K) * 2^-24 of the sum's scale per layer and adds up over the layers a
result passes through. ResNet-20 in eval mode is 19 convolutions of at most K = 3 * 3 * 64 = 576
and a dense layer (BatchNorm then is a fixed affine map): 20 * sqrt(576) * 6e-8 = 3e-5 of the
logits' scale, and its JVP passes through each layer twice as often; 1e-4 of the largest entry
leaves a margin over that. LeNet-5's loss passes through three convolutions (K <= 400) and three
dense layers forward, twice as many backward and again as many in the second derivative: about
20 * sqrt(400) * 6e-8 = 2.4e-5 of the Hessian's scale, under the same 1e-4.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from model_helpers import SLOW_TWINS, filled_variables, variable_shapes

from cnn_jax.models import create_model, get_model_spec, list_models

MODELS = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_TWINS else n for n in list_models()]


def _close(a, b, tol=1e-4):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert u.shape == v.shape
        scale = float(jnp.max(jnp.abs(v))) or 1.0
        assert float(jnp.max(jnp.abs(u - v))) <= tol * scale


def _count(jaxpr, primitive: str) -> int:
    """Equations of ``primitive`` in ``jaxpr`` and its sub-jaxprs."""
    return sum((eqn.primitive.name == primitive)
               + sum(_count(sub, primitive) for sub in jax.extend.core.jaxprs_in_params(eqn.params))
               for eqn in jaxpr.eqns)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_threads_conv_impl_to_every_convolution(name):
    spec = get_model_spec(name)
    x = jax.ShapeDtypeStruct((1, *spec.test_input_shape), jnp.float32)
    variables = variable_shapes(create_model(name, conv_impl="xla"), spec.test_input_shape)

    def counts(impl):
        model = create_model(name, conv_impl=impl)
        # Generative models draw from the 'sample' stream in evaluation too.
        rngs = {"sample": jax.random.key(0)}
        jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x, train=False, rngs=rngs))(
            variables, x).jaxpr
        onednn_calls = (_count(jaxpr, "onednn_conv_forward")
                        + _count(jaxpr, "onednn_conv_backward_data"))
        return onednn_calls, _count(jaxpr, "conv_general_dilated")

    on_xla = counts("xla")
    # Every convolution switches, 1-D, 2-D and 3-D (the models' are all float32, zero-padded).
    assert counts("auto") == (on_xla[1], 0) and on_xla[0] == 0
    assert (on_xla[1] > 0) == (spec.family != "mlp")  # an MLP accepts conv_impl and has none


def test_an_unknown_conv_impl_on_a_model_is_a_one_line_error():
    with pytest.raises(ValueError, match="conv_impl='fast' is not one of auto, xla, onednn"):
        create_model("resnet20", conv_impl="fast").init(jax.random.key(0), jnp.ones((1, 32, 32, 3)))


def test_jvp_of_resnet20_in_eval_mode_matches_xla():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((4, 32, 32, 3)), jnp.float32)
    variables = filled_variables(create_model("resnet20"), (32, 32, 3))
    tangents = (jax.tree.map(lambda a: jnp.asarray(rng.standard_normal(a.shape), a.dtype) * 0.1, variables),
                jnp.asarray(rng.standard_normal(x.shape), jnp.float32))

    def jvp(impl):
        model = create_model("resnet20", conv_impl=impl)
        fn = jax.jit(lambda v, x: jax.jvp(lambda v, x: model.apply(v, x, train=False), (v, x), tangents))
        return fn(variables, x), fn.lower(variables, x).as_text()

    (auto, auto_hlo), (xla, xla_hlo) = jvp("auto"), jvp("xla")
    assert "cnn_jax_onednn_conv_forward" in auto_hlo and "cnn_jax_onednn" not in xla_hlo
    _close(auto, xla)


def _lenet_loss(impl, variables, x, labels):
    model = create_model("lenet5", num_classes=10, conv_impl=impl)

    def loss(params):
        logits = model.apply({**variables, "params": params}, x)
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(len(labels)), labels])

    return loss


def test_hessian_of_a_lenet_loss_matches_xla():
    # Forward-over-reverse through every pass, with respect to C1's 150 weights.
    x = jnp.asarray(np.random.default_rng(1).standard_normal((4, 28, 28, 1)), jnp.float32)
    labels = jnp.arange(4)
    variables = create_model("lenet5").init(jax.random.key(0), x)

    def hessian(impl):
        loss = _lenet_loss(impl, variables, x, labels)

        def of_c1(kernel):
            params = {**variables["params"], "c1": {**variables["params"]["c1"], "kernel": kernel}}
            return loss(params)

        fn = jax.jit(jax.hessian(of_c1))
        return fn(variables["params"]["c1"]["kernel"]), fn.lower(variables["params"]["c1"]["kernel"])

    (auto, auto_lowered), (xla, _) = hessian("auto"), hessian("xla")
    assert "cnn_jax_onednn_conv_backward_weights" in auto_lowered.as_text()
    assert auto.shape == (5, 5, 1, 6) * 2 and float(jnp.max(jnp.abs(xla))) > 0
    _close(auto, xla)


def test_lenet_training_gradients_match_xla():
    x = jnp.asarray(np.random.default_rng(2).standard_normal((8, 28, 28, 1)), jnp.float32)
    labels = jnp.arange(8) % 10
    variables = create_model("lenet5").init(jax.random.key(0), x)

    def grads(impl):
        return jax.jit(jax.grad(_lenet_loss(impl, variables, x, labels)))(variables["params"])

    # The largest sum (C1's weight gradient) has 8 * 28 * 28 = 6,272 products: sqrt(K) * 2^-24 = 5e-6.
    _close(grads("auto"), grads("xla"), tol=1e-5)

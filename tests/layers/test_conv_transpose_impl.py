"""Transposed convolutions on oneDNN: ``ConvTranspose`` with ``conv_impl`` 'auto' binds the
backward-data pass of the convolution it is the adjoint of, and equals XLA's route and torch's
``ConvTranspose2d`` forward and backward, under every transformation.

Tolerances: an output of a transposed convolution sums at most ``k * k * C_in / groups`` products
(fewer: strides leave taps on inserted zeros), its input gradient (a forward convolution) as many,
its weight gradient ``N * H_in * W_in`` (at most 2 * 8 * 7 = 112 here). In float32 such a sum is
within about sqrt(K) * 2^-24 of its scale (at most K * 2^-24: 1.5e-5 for K = 256, the 16x16
kernel), so 2e-5 of the largest entry holds for those cases; JVPs and second derivatives compose
two or three passes and get 1e-4. The stride-16 and -32 cases' input gradients sum up to 64 * 64 *
5 = 20,480 products (typically sqrt(K) * 2^-24 = 8.5e-6 of the scale, at most 1.2e-3): 1e-4.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.backends.onednn.routing import BLOCKS_MIN_STRIDE
from cnn_jax.layers import ConvTranspose

BACKWARD_DATA = "cnn_jax_onednn_conv_backward_data"

# (C_in, C_out, kernel, stride, padding, output_padding, dilation, groups, input H x W)
CASES = {
    "stride2_pad1_outpad1": (4, 6, 3, 2, 1, 1, 1, 1, (5, 7)),
    "grouped_kernel4": (4, 6, 4, 2, 1, 0, 1, 2, (6, 5)),
    "dilated_outpad_over_stride": (6, 4, 3, 1, 2, 1, 2, 2, (7, 6)),  # output_padding >= stride
    "fcn_upscore8": (5, 5, 16, 8, 4, 0, 1, 1, (3, 2)),
    "unet_upconv": (8, 4, 2, 2, 0, 0, 1, 1, (4, 4)),
    "stride3_uneven": (3, 5, 3, 3, (0, 2), 2, 1, 1, (4, 5)),
    # strides of 16 and more run as stride-1 convolutions of blocks (routing.by_blocks)
    "fcn_upscore32": (5, 5, 64, 32, 16, 0, 1, 1, (2, 3)),
    "stride16_kernel20_outpad": (3, 4, 20, 16, (2, 5), 3, 1, 1, (2, 2)),
}


def _close(a, b, tol=2e-5):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert u.shape == v.shape
        scale = float(np.max(np.abs(v))) or 1.0
        assert float(np.max(np.abs(np.asarray(u) - np.asarray(v)))) <= tol * scale


def _case(name, seed=0):
    c_in, c_out, k, s, p, op, d, g, (h, w) = CASES[name]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, h, w, c_in)).astype(np.float32)
    torch_weight = rng.standard_normal((c_in, c_out // g, k, k)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    module = ConvTranspose(c_out, k, strides=s, padding=p, output_padding=op, dilation=d, groups=g)
    # torch's (C_in, C_out / g, kH, kW) -> ours (kH, kW, C_in, C_out / g): no flip.
    params = {"kernel": jnp.asarray(torch_weight.transpose(2, 3, 0, 1)), "bias": jnp.asarray(bias)}
    return module, params, x, torch_weight, bias


def _torch(torch, module, x, weight, bias, cotangent):
    """torch's output and the gradients of <output, cotangent> in our layouts."""
    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    wt = torch.tensor(weight, requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    y = torch.nn.functional.conv_transpose2d(
        xt, wt, bt, stride=module.strides, padding=module.padding,
        output_padding=module.output_padding, groups=module.groups, dilation=module.dilation)
    (y * torch.tensor(cotangent.transpose(0, 3, 1, 2))).sum().backward()
    grads = {"kernel": wt.grad.numpy().transpose(2, 3, 0, 1), "bias": bt.grad.numpy()}
    return y.detach().numpy().transpose(0, 2, 3, 1), grads, xt.grad.numpy().transpose(0, 2, 3, 1)


@pytest.fixture(scope="module")
def torch():
    import torch

    torch.set_num_threads(2)
    return torch


@pytest.mark.parametrize("case", sorted(CASES))
def test_conv_transpose_equals_torch_and_xla_forward_and_backward(torch, case):
    module, params, x, weight, bias = _case(case)
    y_shape = jax.eval_shape(module.apply, {"params": params}, x).shape
    cotangent = np.random.default_rng(1).standard_normal(y_shape).astype(np.float32)
    expected, expected_grads, expected_dx = _torch(torch, module, x, weight, bias, cotangent)

    for impl in ("auto", "xla"):
        apply = module.clone(conv_impl=impl).apply

        def loss(p, x, apply=apply):
            return jnp.sum(apply({"params": p}, x) * cotangent)

        forward = jax.jit(apply)
        text = forward.lower({"params": params}, x).as_text()
        on_blocks = module.strides >= BLOCKS_MIN_STRIDE
        assert (BACKWARD_DATA in text) == (impl == "auto" and not on_blocks), impl
        tol = 1e-4 if module.strides >= BLOCKS_MIN_STRIDE else 2e-5  # module docstring
        _close(forward({"params": params}, x), expected, tol)
        grads, dx = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)
        _close((grads, dx), (expected_grads, expected_dx), tol)


def test_the_parameters_are_the_same_on_every_route():
    module, _, x, _, _ = _case("grouped_kernel4")
    shapes = {impl: jax.tree.map(jnp.shape, module.clone(conv_impl=impl).init(jax.random.key(0), x))
              for impl in ("auto", "xla")}
    assert shapes["auto"] == shapes["xla"] == {"params": {"kernel": (4, 4, 4, 3), "bias": (6,)}}


def test_forward_mode_second_derivatives_and_vmap_match_xla():
    module, params, x, _, _ = _case("stride2_pad1_outpad1")
    rng = np.random.default_rng(2)
    tangents = (jax.tree.map(lambda a: jnp.asarray(rng.standard_normal(a.shape), a.dtype), params),
                jnp.asarray(rng.standard_normal(x.shape), jnp.float32))

    def transforms(impl):
        apply = module.clone(conv_impl=impl).apply

        def f(p, x):
            return apply({"params": p}, x)

        def penalty(p, x):  # a gradient of a gradient: every pass transposed once more
            gx = jax.grad(lambda x: jnp.sum(jnp.tanh(f(p, x))))(x)
            return jnp.sum(gx ** 2)

        return (jax.jvp(f, (params, x), tangents),
                jax.grad(penalty, argnums=(0, 1))(params, x),
                jax.vmap(lambda xi: f(params, xi[None])[0])(x))

    auto = jax.jit(lambda: transforms("auto"))
    assert BACKWARD_DATA in auto.lower().as_text()
    _close(auto(), jax.jit(lambda: transforms("xla"))(), tol=1e-4)


def test_same_padding_with_a_kernel_smaller_than_the_stride_adds_zero_rows():
    # 'SAME' crops F - S < 0: the output grows by zeros that no input reaches, on either route.
    module = ConvTranspose(3, 1, strides=2, padding="SAME", use_bias=False)
    x = jnp.asarray(np.random.default_rng(3).standard_normal((1, 3, 4, 2)), jnp.float32)
    variables = module.init(jax.random.key(0), x)
    auto = jax.jit(module.apply)(variables, x)
    assert auto.shape == (1, 6, 8, 3)
    _close(auto, module.clone(conv_impl="xla").apply(variables, x))
    assert not np.any(np.asarray(auto)[:, 1::2]) and not np.any(np.asarray(auto)[:, :, 1::2])


def test_one_d_and_3d_go_to_onednn_while_bfloat16_stays_on_xla():
    cases = [(ConvTranspose(4, (3,), strides=2), (2, 5, 3), True),
             (ConvTranspose(4, (2, 2, 2), strides=2), (1, 3, 3, 3, 2), True),
             (ConvTranspose(4, 2, strides=2, dtype=jnp.bfloat16), (1, 3, 3, 2), False)]
    for module, shape, on_onednn in cases:
        x = jnp.ones(shape)
        variables = module.init(jax.random.key(0), x)
        text = jax.jit(module.apply).lower(variables, x).as_text()
        assert (BACKWARD_DATA in text) == on_onednn, (module, shape)


@pytest.mark.parametrize("module", [
    ConvTranspose(6, (3, 3, 3), strides=(1, 2, 2), padding=1, output_padding=(0, 1, 1)),
    ConvTranspose(6, (2, 3, 3), strides=2, padding=((0, 1), (1, 0), (2, 1)), dilation=(1, 2, 1),
                  groups=2),
], ids=["stride122_outpad", "grouped_dilated_uneven"])
def test_a_3d_transposed_convolution_matches_xla_forward_and_backward(module):
    # Sums of at most 3 * 3 * 3 * 4 = 108 products (outputs) and 2 * 3 * 4 * 5 = 120 (the weight
    # gradient): under the K = 256 of the module docstring's 2e-5.
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.standard_normal((2, 3, 4, 5, 4)), jnp.float32)
    variables = module.init(jax.random.key(0), x)
    cotangent = jnp.asarray(rng.standard_normal(jax.eval_shape(module.apply, variables, x).shape),
                            jnp.float32)

    def run(impl):
        apply = module.clone(conv_impl=impl).apply
        loss = lambda v, x: jnp.sum(apply(v, x) * cotangent)  # noqa: E731
        fn = jax.jit(lambda v, x: (apply(v, x), jax.grad(loss, argnums=(0, 1))(v, x)))
        return fn(variables, x), fn.lower(variables, x).as_text()

    (auto, text), (ref, _) = run("auto"), run("xla")
    assert BACKWARD_DATA in text and "stablehlo.convolution" not in text
    _close(auto, ref)


def test_a_transposed_convolution_of_a_one_pixel_map_runs_as_a_dot_and_matches_xla():
    # DCGAN's projection (1x1 -> 4x4): the convolution it is the adjoint of covers its input, a
    # matrix product (cnn_jax.backends.onednn.routing.covers_input) on either pass.
    module = ConvTranspose(8, 4)
    x = jnp.asarray(np.random.default_rng(4).standard_normal((2, 1, 1, 16)), jnp.float32)
    variables = module.init(jax.random.key(0), x)
    text = jax.jit(module.apply).lower(variables, x).as_text()
    assert "dot_general" in text and "cnn_jax_onednn" not in text

    def grads(impl):
        apply = module.clone(conv_impl=impl).apply
        return jax.jit(jax.grad(lambda v: jnp.sum(jnp.sin(apply(v, x)))))(variables)

    _close(jax.jit(module.apply)(variables, x), module.clone(conv_impl="xla").apply(variables, x))
    _close(grads("auto"), grads("xla"))

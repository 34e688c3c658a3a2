"""Specification of cnn_jax.ops.box_coder: encode/decode equal to torchvision's BoxCoder (weights,
the log(1000/16) clamp), smooth L1 and L1 equal to torch's, under jit."""

import math

import jax
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection._utils import BoxCoder

from cnn_jax import ops

# encode/decode are about ten float32 operations plus one log or exp per value, each accurate to
# a couple of units in the last place (2^-24 relative): both programs agree to about 1e-6 of the
# values' sizes (codes of order 1, coordinates of order 100).
TOL = dict(rtol=2e-6, atol=1e-6)


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 300, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(2, 200, (n, 2))], axis=1).astype(np.float32)


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_encode_equals_torchvisions_box_coder(weights):
    rng = np.random.default_rng(0)
    gt, anchors = random_boxes(rng, 64), random_boxes(rng, 64)
    ours = jax.jit(lambda g, a: ops.encode(g, a, weights))(gt, anchors)
    ref = BoxCoder(weights).encode_single(torch.from_numpy(gt), torch.from_numpy(anchors))
    np.testing.assert_allclose(np.asarray(ours), ref.numpy(), **TOL)


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_decode_equals_torchvisions_box_coder_with_several_boxes_per_reference(weights):
    rng = np.random.default_rng(1)
    anchors = random_boxes(rng, 32)
    codes = rng.normal(0, 1, (32, 4 * 3)).astype(np.float32)  # e.g. 3 classes per proposal
    codes[0, 2:4] = 30.0  # 30 / 5 = 6 > log(1000/16) = 4.14: clamped in both weightings
    ours = np.asarray(jax.jit(lambda c, a: ops.decode(c, a, weights))(codes, anchors))
    ref = BoxCoder(weights).decode_single(torch.from_numpy(codes), torch.from_numpy(anchors))
    assert ours.shape == (32, 12)
    np.testing.assert_allclose(ours, ref.numpy(), **TOL)
    # The clamp: box 0 is exactly 1000/16 times as wide as its anchor.
    width = ours[0, 2] - ours[0, 0]
    assert width == pytest.approx(62.5 * (anchors[0, 2] - anchors[0, 0]), rel=1e-5)
    assert math.log(62.5) == ops.BBOX_XFORM_CLIP


def test_decode_of_encode_returns_the_ground_truth():
    rng = np.random.default_rng(2)
    gt, anchors = random_boxes(rng, 16), random_boxes(rng, 16)
    back = ops.decode(ops.encode(gt, anchors, (10, 10, 5, 5)), anchors, (10, 10, 5, 5))
    np.testing.assert_allclose(np.asarray(back), gt, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("beta", [1 / 9, 1.0, 0.0])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_smooth_l1_loss_equals_torch(beta, reduction):
    rng = np.random.default_rng(3)
    x, y = rng.normal(0, 0.5, (40, 4)).astype(np.float32), rng.normal(0, 0.5, (40, 4))
    y = y.astype(np.float32)
    ours = jax.jit(lambda a, b: ops.smooth_l1_loss(a, b, beta, reduction))(x, y)
    ref = F.smooth_l1_loss(torch.from_numpy(x), torch.from_numpy(y), beta=beta,
                           reduction=reduction)
    # A sum of 160 terms below 2 accumulates 160 roundings in another order: 160 x 6e-8 x 2.
    np.testing.assert_allclose(np.asarray(ours), ref.numpy(), rtol=1e-6, atol=2e-5)


def test_smooth_l1_loss_gradient_equals_torch_autograd():
    rng = np.random.default_rng(4)
    x, y = rng.normal(0, 0.3, (20, 4)).astype(np.float32), np.zeros((20, 4), np.float32)
    ours = jax.jit(jax.grad(lambda a: ops.smooth_l1_loss(a, y, 1 / 9, "sum")))(x)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    F.smooth_l1_loss(tx, torch.from_numpy(y), beta=1 / 9, reduction="sum").backward()
    np.testing.assert_allclose(np.asarray(ours), tx.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_l1_loss_equals_torch():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(10, 4)).astype(np.float32), rng.normal(size=(10, 4)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(ops.l1_loss(x, y)),
                               F.l1_loss(torch.from_numpy(x), torch.from_numpy(y)).numpy(),
                               rtol=1e-6)

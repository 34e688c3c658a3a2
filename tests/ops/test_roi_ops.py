"""Specification of cnn_jax.ops.roi: RoIAlign, RoI pooling and multi-scale RoIAlign equal to
torchvision's on NHWC features, values and gradients, with regions crossing the border, malformed
and empty ones, under jit."""

from collections import OrderedDict

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torchvision.ops as tvo
from torchvision.ops._utils import convert_boxes_to_roi_format
from torchvision.ops.poolers import LevelMapper, _infer_scale

from cnn_jax import ops

N, H, W, C = 2, 12, 10, 3

# RoIAlign averages at most G^2 x 4 = 36 weighted features (G = 3 samples per axis) of size up
# to about 4 (standard normal), in a different order from torchvision's loop: reordering a sum
# of n terms changes it by at most n x 2^-24 of its terms' magnitudes, 36 x 6e-8 x 4 = 9e-6.
# The same bound holds for the gradient, a sum of as many weighted cotangents per pixel.
ALIGN_TOL = dict(rtol=0, atol=1e-5)


def nchw(a) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(a).transpose(0, 3, 1, 2)))


def nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().transpose(0, 2, 3, 1)


def random_rois(rng: np.random.Generator, k: int, extent: float) -> np.ndarray:
    """(k, 5) regions over an `extent`-sized image: some cross the border, some are malformed."""
    xy = rng.uniform(-0.3 * extent, extent, (k, 2))
    wh = rng.uniform(0, 0.8 * extent, (k, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    boxes[0] = [2, 3, 2, 3]  # a point
    boxes[1] = [5, 6, 3, 4]  # inverted
    boxes[2] = [-9, -9, -4, -4]  # wholly outside
    boxes[3] = [0, 0, extent, extent]  # the whole image
    index = rng.integers(0, N, (k, 1))
    return np.concatenate([index, boxes], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def features():
    return np.random.default_rng(0).standard_normal((N, H, W, C)).astype(np.float32)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio,spatial_scale", [(-1, 1.0), (1, 0.5), (2, 1.0), (3, 0.5)])
def test_roi_align_equals_torchvision(features, aligned, sampling_ratio, spatial_scale):
    rois = random_rois(np.random.default_rng(1), 24, extent=W / spatial_scale)
    # Adaptive sampling needs ceil(roi / out) samples, here at most ceil(10 x 0.8 / 2) + 1 = 5.
    fn = jax.jit(lambda f, r: ops.roi_align(f, r, (3, 2), spatial_scale, sampling_ratio, aligned,
                                            max_sampling_ratio=6))
    ours = np.asarray(fn(features, rois))
    ref = tvo.roi_align(nchw(features), torch.from_numpy(rois), (3, 2), spatial_scale,
                        sampling_ratio, aligned)
    assert ours.shape == (24, 3, 2, C)
    np.testing.assert_allclose(ours, nhwc(ref), **ALIGN_TOL)
    np.testing.assert_array_equal(ours[2], 0)  # wholly outside: every sample dropped


def test_roi_align_samples_on_exact_quotients_as_torchvision():
    # A 21-pixel box in 7 bins needs exactly 3 samples per bin: 21 / 7 computed as 21 x (1/7),
    # XLA's rewrite of a division by a constant, gives 3.0000002 and ceil would take 4.
    rois = np.array([[0, 0, 0, 21, 21], [1, 1.5, 0.5, 22.5, 7.5]], np.float32)
    big = np.random.default_rng(2).standard_normal((N, 24, 24, C)).astype(np.float32)
    ours = jax.jit(lambda f, r: ops.roi_align(f, r, 7, 1.0, -1, True))(big, rois)
    ref = tvo.roi_align(nchw(big), torch.from_numpy(rois), 7, 1.0, -1, True)
    np.testing.assert_allclose(np.asarray(ours), nhwc(ref), **ALIGN_TOL)


def test_roi_align_beyond_max_sampling_ratio_takes_that_many_samples(features):
    # The whole 12 x 10 map in 2 x 2 bins asks for 6 x 5 samples; with a bound of 2 it takes 2 x 2,
    # which is torchvision's fixed sampling_ratio=2.
    rois = np.array([[1, 0, 0, 10, 12]], np.float32)
    ours = jax.jit(lambda f: ops.roi_align(f, rois, 2, 1.0, -1, max_sampling_ratio=2))(features)
    ref = tvo.roi_align(nchw(features), torch.from_numpy(rois), 2, 1.0, 2)
    np.testing.assert_allclose(np.asarray(ours), nhwc(ref), **ALIGN_TOL)
    adaptive = tvo.roi_align(nchw(features), torch.from_numpy(rois), 2, 1.0, -1)
    assert np.abs(np.asarray(ours) - nhwc(adaptive)).max() > 1e-3


@pytest.mark.parametrize("aligned,sampling_ratio", [(False, -1), (True, 2), (False, 3)])
def test_roi_align_gradient_equals_torchvision_backward(features, aligned, sampling_ratio):
    rois = random_rois(np.random.default_rng(3), 16, extent=W)
    cotangent = np.random.default_rng(4).standard_normal((16, 4, 3, C)).astype(np.float32)

    def loss(f):
        out = ops.roi_align(f, rois, (4, 3), 1.0, sampling_ratio, aligned, max_sampling_ratio=6)
        return (out * cotangent).sum()

    ours = jax.jit(jax.grad(loss))(features)
    x = nchw(features).requires_grad_()
    ref = tvo.roi_align(x, torch.from_numpy(rois), (4, 3), 1.0, sampling_ratio, aligned)
    ref.backward(nchw(cotangent))
    np.testing.assert_allclose(np.asarray(ours), nhwc(x.grad), **ALIGN_TOL)
    assert np.abs(np.asarray(ours)).max() > 0.1


def test_roi_align_passes_no_gradient_to_the_regions_as_torchvision(features):
    rois = random_rois(np.random.default_rng(5), 6, extent=W)
    grad = jax.jit(jax.grad(lambda r: ops.roi_align(features, r, 2, 1.0, 2).sum()))(rois)
    np.testing.assert_array_equal(np.asarray(grad), 0)


def test_roi_align_of_boxes_per_image_equals_torchvisions_list_form(features):
    rng = np.random.default_rng(6)
    per_image = [random_rois(rng, 5, W)[:, 1:], random_rois(rng, 4, W)[:, 1:]]
    rois = ops.boxes_to_rois(per_image)
    np.testing.assert_array_equal(
        np.asarray(rois), convert_boxes_to_roi_format([torch.from_numpy(b) for b in per_image]))
    ref = tvo.roi_align(nchw(features), [torch.from_numpy(b) for b in per_image], 2, 1.0, 2)
    ours = jax.jit(lambda f, r: ops.roi_align(f, r, 2, 1.0, 2))(features, rois)
    np.testing.assert_allclose(np.asarray(ours), nhwc(ref), **ALIGN_TOL)


def test_boxes_to_rois_numbers_the_images_of_a_padded_batch():
    boxes = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    rois = np.asarray(jax.jit(ops.boxes_to_rois)(boxes))
    np.testing.assert_array_equal(rois[:, 0], [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(rois[:, 1:], boxes.reshape(6, 4))


@pytest.mark.parametrize("spatial_scale", [1.0, 0.5, 0.7])
def test_roi_pool_equals_torchvision(features, spatial_scale):
    rois = random_rois(np.random.default_rng(7), 24, extent=W / spatial_scale)
    # Corners on halves after scaling: C's round takes them away from zero (2.5 -> 3, -1.5 -> -2).
    rois[4, 1:] = np.array([5, -3, 13, 9], np.float32) / 2 / spatial_scale
    fn = jax.jit(lambda f, r: ops.roi_pool(f, r, (3, 4), spatial_scale))
    ours = np.asarray(fn(features, rois))
    ref = tvo.roi_pool(nchw(features), torch.from_numpy(rois), (3, 4), spatial_scale)
    # A max selects one input exactly: no rounding at all.
    np.testing.assert_array_equal(ours, nhwc(ref))
    np.testing.assert_array_equal(ours[2], 0)  # wholly outside: every bin empty


def test_roi_pool_gradient_equals_torchvision_backward(features):
    rois = random_rois(np.random.default_rng(8), 12, extent=W)
    cotangent = np.random.default_rng(9).standard_normal((12, 3, 3, C)).astype(np.float32)
    ours = jax.jit(jax.grad(lambda f: (ops.roi_pool(f, rois, 3, 1.0) * cotangent).sum()))(features)
    x = nchw(features).requires_grad_()
    tvo.roi_pool(x, torch.from_numpy(rois), 3, 1.0).backward(nchw(cotangent))
    # Each pixel's gradient sums the cotangents of the bins whose max it is (at most about 12 x 9
    # terms of size <= 4): 108 x 6e-8 x 4 < 3e-5.
    np.testing.assert_allclose(np.asarray(ours), nhwc(x.grad), rtol=0, atol=3e-5)


def test_fpn_levels_equal_torchvisions_level_mapper_on_powers_of_two():
    # Sides 112, 224, 448 sit exactly on level boundaries (eq. 1 gives 3, 4, 5); eps keeps them
    # there. A zero-area box goes to the finest level.
    sides = np.array([1, 55.9, 56, 111.9, 112, 223.9, 224, 447.9, 448, 900, 0], np.float32)
    boxes = np.stack([np.zeros_like(sides), np.zeros_like(sides), sides, sides], axis=1)
    ours = np.asarray(jax.jit(lambda b: ops.fpn_levels(b, 2, 5))(boxes))
    ref = LevelMapper(2, 5)([torch.from_numpy(boxes)]).numpy()
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(ours, [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 0])


def test_fpn_levels_equal_torchvision_on_random_boxes():
    rng = np.random.default_rng(10)
    boxes = random_rois(rng, 200, extent=800)[4:, 1:]
    ours = np.asarray(jax.jit(lambda b: ops.fpn_levels(b, 2, 5))(boxes))
    np.testing.assert_array_equal(ours, LevelMapper(2, 5)([torch.from_numpy(boxes)]).numpy())


def test_infer_scale_equals_torchvision():
    for feature, image in [(200, 800), (100, 800), (13, 800), (7, 224), (25, 100)]:
        assert ops.infer_scale(feature, image) == _infer_scale(torch.zeros(1, 1, feature, 5),
                                                               [image, 5])


@pytest.mark.parametrize("n_levels", [1, 4])
def test_multiscale_roi_align_equals_torchvision(n_levels):
    rng = np.random.default_rng(11)
    image_sizes = [(64, 60), (56, 64)]  # torchvision takes the largest height and width
    levels = [rng.standard_normal((2, 16 >> i, 16 >> i, C)).astype(np.float32)
              for i in range(n_levels)]
    boxes = [random_rois(rng, 12, extent=60)[:, 1:] for _ in range(2)]
    boxes[0][5] = [0, 0, 56, 56]  # on the level-3 boundary once scaled: 224 / 4
    names = [f"p{i}" for i in range(n_levels)]
    pooler = tvo.MultiScaleRoIAlign(names, (3, 2), sampling_ratio=2, canonical_scale=56)
    ref = pooler(OrderedDict((n, nchw(f)) for n, f in zip(names, levels, strict=True)),
                 [torch.from_numpy(b) for b in boxes], image_sizes)
    rois = ops.boxes_to_rois(boxes)
    fn = jax.jit(lambda fs, r: ops.multiscale_roi_align(fs, r, (64, 64), (3, 2), 2,
                                                        canonical_scale=56))
    ours = np.asarray(fn(levels, rois))
    assert ours.shape == (24, 3, 2, C)
    np.testing.assert_allclose(ours, nhwc(ref), **ALIGN_TOL)
    if n_levels > 1:  # the regions really are spread over the levels
        mapped = set(np.asarray(ops.fpn_levels(rois[:, 1:], 2, 5, 56)).tolist())
        assert len(mapped) >= 3


def test_multiscale_roi_align_gradient_reaches_each_level():
    rng = np.random.default_rng(12)
    levels = [rng.standard_normal((2, 16 >> i, 16 >> i, C)).astype(np.float32) for i in range(3)]
    rois = ops.boxes_to_rois([np.array([[0, 0, 4, 4], [0, 0, 30, 30], [0, 0, 64, 64]],
                                       np.float32)])

    def loss(fs):
        return ops.multiscale_roi_align(fs, rois, (64, 64), 2, 2, canonical_scale=16).sum()

    grads = jax.jit(jax.grad(loss))(levels)
    # Sides 4, 30, 64 with canonical scale 16 at level 4: levels 2, 4 and 6 clipped to 4.
    assert [float(jnp.abs(g).sum()) > 0 for g in grads] == [True, False, True]


def test_roi_ops_of_no_regions_return_empty_outputs_as_torchvision(features):
    none = np.zeros((0, 5), np.float32)
    ref = tvo.roi_align(nchw(features), torch.from_numpy(none), (3, 2), 1.0, 2)
    assert tuple(ref.shape) == (0, C, 3, 2)
    assert jax.jit(lambda f, r: ops.roi_align(f, r, (3, 2), 1.0, 2))(features, none).shape == (
        0, 3, 2, C)
    assert jax.jit(lambda f, r: ops.roi_pool(f, r, (3, 2)))(features, none).shape == (0, 3, 2, C)
    levels = [features, features[:, ::2, ::2]]
    assert ops.multiscale_roi_align(levels, none, (H, W), (3, 2), 2).shape == (0, 3, 2, C)

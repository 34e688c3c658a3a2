"""Specification of cnn_jax.ops.anchors: anchors equal to torchvision's AnchorGenerator for the
Faster R-CNN and RetinaNet configurations, from NHWC shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator as TorchAnchorGenerator
from torchvision.models.detection.image_list import ImageList

from cnn_jax import ops

FPN_SIZES = ((32,), (64,), (128,), (256,), (512,))  # Faster R-CNN + FPN (Lin et al. 2017)
RETINANET_SIZES = tuple((x, int(x * 2 ** (1 / 3)), int(x * 2 ** (2 / 3)))
                        for x in (32, 64, 128, 256, 512))  # torchvision's retinanet anchors


def torchvision_anchors(generator, image_hw, grid_sizes) -> np.ndarray:
    images = ImageList(torch.zeros(1, 3, *image_hw), [image_hw])
    maps = [torch.zeros(1, 1, h, w) for h, w in grid_sizes]
    return generator(images, maps)[0].numpy()


@pytest.mark.parametrize("sizes,ratios", [
    (((128, 256, 512),), ((0.5, 1.0, 2.0),)),  # the defaults: the Faster R-CNN paper's 3 x 3
    (FPN_SIZES, ((0.5, 1.0, 2.0),) * 5),
    (RETINANET_SIZES, ((0.5, 1.0, 2.0),) * 5),
    ((16, 40, 100), (0.25, 1.0, 3.0)),  # torchvision's flat shorthand: one size per level
])
def test_anchors_equal_torchvisions_anchor_generator(sizes, ratios):
    # An image whose sides are not multiples of the strides: 200 // 13 = 15 etc.
    image_hw = (200, 168)
    grids = [(50, 42), (25, 21), (13, 11), (7, 6), (4, 3)][: len(sizes)]
    generator = ops.AnchorGenerator(sizes, ratios)
    images = jnp.zeros((2, *image_hw, 3))
    maps = [jnp.zeros((2, h, w, 8)) for h, w in grids]
    ours = np.asarray(jax.jit(generator)(images, maps))
    ref = torchvision_anchors(TorchAnchorGenerator(sizes, ratios), image_hw, grids)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, ref)
    assert ours.shape[0] == sum(h * w * a for (h, w), a in
                                zip(grids, generator.num_anchors_per_location(), strict=True))


def test_cell_anchors_round_half_to_even_as_torchvision():
    # Size 3 with ratio 1 gives half-sides of 1.5: torch.round takes them to 2 (even), and
    # size 5 gives 2.5 -> 2.
    cell = ops.cell_anchors((3, 5), (1.0,))
    np.testing.assert_array_equal(cell, [[-2, -2, 2, 2], [-2, -2, 2, 2]])
    ref = TorchAnchorGenerator(((3, 5),), ((1.0,),)).cell_anchors[0].numpy()
    np.testing.assert_array_equal(cell, ref)


def test_anchors_are_row_major_over_positions_with_cell_anchors_innermost():
    anchors = ops.AnchorGenerator(((8,),), ((1.0, 4.0),)).anchors((8, 12), [(2, 3)])
    # Stride 4: position (row 0, column 1) is shifted by x = 4; the two ratios alternate.
    np.testing.assert_array_equal(anchors[2], [0, -4, 8, 4])
    np.testing.assert_array_equal(anchors[3], [2, -8, 6, 8])
    assert anchors.shape == (2 * 3 * 2, 4)


def test_anchor_generator_names_the_fix_for_mismatched_levels():
    with pytest.raises(ValueError, match="one tuple of sizes and ratios per feature map"):
        ops.AnchorGenerator(((32,), (64,)), (1.0,)).anchors((64, 64), [(16, 16)])
    with pytest.raises(ValueError, match="give one tuple of each per level"):
        ops.AnchorGenerator(((32,), (64,)), ((1.0,),))


def test_anchor_generator_normalises_the_shorthands_to_one_tuple_per_level():
    generator = ops.AnchorGenerator([16, 32], [0.5, 1.0])
    assert generator.sizes == ((16,), (32,))
    assert generator.aspect_ratios == ((0.5, 1.0), (0.5, 1.0))
    assert generator.num_anchors_per_location() == [2, 2]
    assert hash(generator) == hash(ops.AnchorGenerator(((16,), (32,)), ((0.5, 1.0),) * 2))

"""instance_masks: one binary mask per box row, id i + 1 <-> row i, on numpy and under jit."""

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax.ops import instance_masks


def test_instance_masks_reads_id_row_plus_one_on_host_and_under_jit():
    instances = np.array([[0, 1, 1], [2, 2, 0], [0, 0, 3]], np.uint8)
    masks = instance_masks(instances, np.array([0, 2]))
    assert isinstance(masks, np.ndarray) and masks.dtype == bool
    np.testing.assert_array_equal(masks, [instances == 1, instances == 3])
    assert instance_masks(instances, np.array([], np.int64)).shape == (0, 3, 3)  # no boxes
    batch = np.stack([instances, np.where(instances > 0, 4 - instances, 0).astype(np.uint8)])
    got = jax.jit(instance_masks)(jnp.asarray(batch), jnp.arange(3, dtype=jnp.uint8))
    assert got.shape == (2, 3, 3, 3)
    np.testing.assert_array_equal(got, batch[:, None] == np.arange(1, 4)[None, :, None, None])

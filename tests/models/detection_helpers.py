"""Synthetic batches for the models whose outputs are dicts and whose loss is a method
(``task='localization'``: a class and one box per image; ``task='detection'``: boxes, classes and
a box mask per image), so that a forward/backward check can run their own loss."""

import jax
import numpy as np

BOX_TASKS = ("localization", "detection")


def synthetic_batch(task: str, input_shape, batch_size: int, num_classes: int,
                    max_boxes: int = 3, seed: int = 0) -> dict:
    """A batch of ``task``'s keys: uint8 images, boxes at least a quarter of the image wide and
    tall inside it, classes (or labels) cycling through the classes; in a detection batch the last
    box row of every image is padding (zeros, ``box_mask`` False), and ``instances`` the boxes
    filled with their row + 1."""
    if task not in BOX_TASKS:
        raise ValueError(f"no synthetic batch for task {task!r}: one of {', '.join(BOX_TASKS)}")
    rng = np.random.default_rng(seed)
    height, width = input_shape[:2]
    rows = 1 if task == "localization" else max_boxes
    size = rng.uniform(0.25, 0.5, (batch_size, rows, 2)) * (width, height)
    corner = rng.uniform(0.0, 0.5, (batch_size, rows, 2)) * (width, height)
    boxes = np.concatenate([corner, corner + size], axis=-1).astype(np.float32)
    classes = np.arange(batch_size * rows).reshape(batch_size, rows) % num_classes
    classes = classes.astype(np.int32)
    box_mask = np.ones((batch_size, rows), bool)
    if task == "detection":
        box_mask[:, -1] = False
        boxes[:, -1], classes[:, -1] = 0.0, 0
    batch = {"image": rng.integers(0, 256, (batch_size, *input_shape), dtype=np.uint8),
             "boxes": boxes, "box_mask": box_mask}
    if task == "localization":
        batch["label"] = classes[:, 0]
    else:
        batch["classes"] = classes
        # the instance map Mask R-CNN's loss reads: box row i's pixels hold i + 1 (later rows on top)
        instances = np.zeros((batch_size, height, width), np.int32)
        for n in range(batch_size):
            for i in np.flatnonzero(box_mask[n]):
                x1, y1, x2, y2 = np.round(boxes[n, i]).astype(int)
                instances[n, y1:y2, x1:x2] = i + 1
        batch["instances"] = instances
    return batch


def leading_dims(outputs: dict) -> set[int]:
    """The batch sizes of every output array (one value when the outputs agree)."""
    return {leaf.shape[0] for leaf in jax.tree.leaves(outputs)}

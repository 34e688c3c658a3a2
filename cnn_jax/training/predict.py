"""`cnn-jax predict`: a trained run's predictions for image files, shown as its task shows them
(the top-5 classes of a classifier; a PNG of the predicted classes over the image for dense tasks)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
from PIL import Image

from cnn_jax.errors import ConfigError
from cnn_jax.training.runs import load_run


def read_image(path: str | Path, shape: Sequence[int]) -> np.ndarray:
    """The image file as uint8 (H, W, C) of the model's input `shape`: converted to grey or RGB
    as C says and resized (bilinear) to H x W."""
    height, width, channels = shape
    try:
        image = Image.open(path)
        image.load()
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is not an image file PIL can read ({e})") from None
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.BILINEAR)
    array = np.asarray(image, np.uint8)
    return array[..., None] if channels == 1 else array


def predict_files(workdir: str | Path, paths: Sequence[str | Path], checkpoint: str = "best") -> list[str]:
    """One line per image file: what the run in `workdir` predicts for it (and where a picture
    of the prediction was written, for dense tasks)."""
    run = load_run(workdir, checkpoint)
    if run.task.input_key != "image":
        raise ConfigError(f"`predict` reads image files, and the run in {workdir} takes "
                          f"{run.task.input_key}s: call cnn_jax.training.load_run({str(workdir)!r})"
                          f".predict on an array of them")
    images = np.stack([read_image(p, run.spec.image_shape) for p in paths])
    outputs = jax.device_get(run.predict(images))
    if isinstance(outputs, tuple):  # auxiliary heads (training only) are not predictions
        outputs = outputs[0]
    return [run.task.show(image, jax.tree.map(lambda x, i=i: x[i], outputs), str(path), run.spec.class_names)
            for i, (image, path) in enumerate(zip(images, paths, strict=True))]

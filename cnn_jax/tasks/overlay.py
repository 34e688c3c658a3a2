"""Dense predictions drawn over their image: one colour per class, blended."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


# Pascal VOC's colour map (Everingham et al. 2010): class c's RGB from the bits of c.
def palette(num_classes: int = 256) -> np.ndarray:
    """(num_classes, 3) uint8 colours; class 0 (background) is black."""
    colours = np.zeros((num_classes, 3), np.uint8)
    for c in range(num_classes):
        value, r, g, b = c, 0, 0, 0
        for shift in range(8):
            r |= ((value >> 0) & 1) << (7 - shift)
            g |= ((value >> 1) & 1) << (7 - shift)
            b |= ((value >> 2) & 1) << (7 - shift)
            value >>= 3
        colours[c] = (r, g, b)
    return colours


def overlay(image: np.ndarray, classes: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """RGB uint8 (H, W, 3): `image` (H, W, C) with every non-background pixel of `classes` (H, W)
    blended with its class colour."""
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
    colours = palette(int(classes.max()) + 1)[classes]
    blended = (1 - alpha) * rgb.astype(np.float32) + alpha * colours.astype(np.float32)
    return np.where((classes > 0)[..., None], blended, rgb).round().astype(np.uint8)


def draw_boxes(image: np.ndarray, boxes, labels, path) -> Path:
    """Writes `image` with each xyxy box outlined and labelled to `<path>.detections.png`; returns
    the file written."""
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
    picture = Image.fromarray(np.asarray(rgb, np.uint8))
    draw = ImageDraw.Draw(picture)
    colours = palette(len(boxes) + 2)[2:]
    for (x1, y1, x2, y2), label, colour in zip(np.asarray(boxes), labels, colours, strict=True):
        draw.rectangle((float(x1), float(y1), float(x2) - 1, float(y2) - 1), outline=tuple(int(c) for c in colour))
        draw.text((float(x1) + 1, float(y1)), label, fill=tuple(int(c) for c in colour))
    target = Path(path).with_suffix(".detections.png")
    picture.save(target)
    return target

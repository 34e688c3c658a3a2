"""Classification and localisation: a class and one box per image, the "N x K + N x 4" outputs of
localisation as regression (Sermanet et al. 2014, OverFeat §4; the CS231n lecture on detection).

A :class:`Localizer` composes a registered classifier of the zoo (its ``backbone``) built with
K + 4 outputs instead of K. Its last layer is linear in the backbone's features, so its K + 4 rows
are exactly two heads on the same features, a K-way classification head and a 4-number box head
(one matrix holding both); nothing of the classifier is copied or changed, every zoo model serves
as a backbone, and a pretrained classifier's weights load into everything but that last layer.
Parameters: the backbone's at K + 4 classes, that is its own at K plus 4 (F + 1) for F features
before the last layer: ``localizer_lenet5`` (64x64x1, K = 10) 868,446; ``localizer_resnet18``
(K = 1000) 11,691,564; ``localizer_resnet20`` (K = 10) 269,982; ``localizer_alexnet`` (K = 1000)
61,117,228.

Outputs ``{'logits': (N, K), 'box': (N, 4)}``, the box xyxy in pixels of the input. The four box
numbers pass through a sigmoid, and each pair (x1, x2), (y1, y2) is sorted and scaled by the
image's width and height, so a box is always valid (x1 <= x2, y1 <= y2) and inside the image.

Loss: softmax cross-entropy on ``label`` plus ``box_loss_weight`` times a box loss on the single
box of ``batch['boxes']`` (row 0), counted only where ``box_mask`` holds it (an augmentation may
crop it away):

* ``'smooth_l1'``: smooth L1 (Girshick 2015, eqs. 2-3: summed over the four coordinates) of the
  coordinates divided by the image's width and height, with ``smooth_l1_beta`` (1/9, the beta of
  torchvision's detection box losses: quadratic within 1/9 of the image, about 7 pixels of 64);
* ``'giou'``: ``1 - GIoU`` (Rezatofighi et al. 2019, :func:`cnn_jax.ops.generalized_box_iou_loss`).

Both terms are averaged over the batch's images (those whose ``mask`` is True when the batch has
one; the box term over those with a box).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import losses
from cnn_jax.models.registry import get_model_spec, register_model
from cnn_jax.ops import generalized_box_iou_loss, smooth_l1_loss

BOX_LOSSES = ("smooth_l1", "giou")


def sigmoid_box(raw: jax.Array, image_size: tuple[int, int]) -> jax.Array:
    """xyxy pixel boxes (N, 4) inside an image of ``image_size`` (H, W) from 4 numbers (N, 4): the
    sigmoids of numbers 0 and 2, sorted, times W are x1, x2; those of 1 and 3 times H are y1, y2."""
    u = jax.nn.sigmoid(raw.astype(jnp.float32))
    height, width = image_size
    x = jnp.sort(u[:, 0::2], axis=-1) * width
    y = jnp.sort(u[:, 1::2], axis=-1) * height
    return jnp.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=-1)


def _masked_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


class Localizer(nn.Module):
    """A registered classifier ``backbone`` with K + 4 outputs read as class logits and a box.

    Fields:
      backbone: the registered classifier's name (``'lenet5'``, ``'resnet18'``, ...).
      num_classes: K.
      box_loss: ``'smooth_l1'`` or ``'giou'`` (module docstring); smooth_l1_beta: its beta.
      box_loss_weight: the box term's weight against the cross-entropy.
      dtype, conv_impl: passed to the backbone (:mod:`cnn_jax.layers.conv`).
    """

    backbone: str = "resnet18"
    num_classes: int = 1000
    box_loss: str = "smooth_l1"
    smooth_l1_beta: float = 1.0 / 9.0
    box_loss_weight: float = 1.0
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
        net = get_model_spec(self.backbone).factory(
            num_classes=self.num_classes + 4, dtype=self.dtype, conv_impl=self.conv_impl,
            name="backbone")
        out = net(x, train=train)
        return {"logits": out[:, : self.num_classes],
                "box": sigmoid_box(out[:, self.num_classes:], x.shape[1:3])}

    def loss(self, outputs: dict, batch: dict) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Cross-entropy plus ``box_loss_weight`` times the box loss (module docstring); the parts
        are ``classification`` and ``box`` (unweighted). The image size is that of
        ``batch['image']``."""
        if self.box_loss not in BOX_LOSSES:
            raise ValueError(f"box_loss={self.box_loss!r} is not one of {', '.join(BOX_LOSSES)}")
        weights = jnp.asarray(batch.get("mask", jnp.ones(batch["label"].shape)), jnp.float32)
        ce = losses.cross_entropy(outputs["logits"], batch["label"])
        predicted = outputs["box"].astype(jnp.float32)
        target = batch["boxes"][:, 0].astype(jnp.float32)
        if self.box_loss == "giou":
            box = generalized_box_iou_loss(predicted, target)
        else:
            height, width = batch["image"].shape[1:3]
            scale = jnp.asarray([width, height, width, height], jnp.float32)
            box = jnp.sum(smooth_l1_loss(predicted / scale, target / scale, self.smooth_l1_beta,
                                         reduction="none"), axis=-1)
        has_box = weights * jnp.asarray(batch["box_mask"][:, 0], jnp.float32)
        parts = {"classification": _masked_mean(ce, weights), "box": _masked_mean(box, has_box)}
        return parts["classification"] + self.box_loss_weight * parts["box"], parts


def _localizer(backbone: str, num_classes: int, kwargs) -> Localizer:
    return Localizer(backbone=backbone, num_classes=num_classes, **kwargs)


@register_model("localizer_lenet5", family="localizer", input_shape=(64, 64, 1), num_classes=10,
                task="localization",
                description="LeNet-5 with a class and a box head, for 64x64 single-digit canvases; "
                            "868,446 parameters")
def localizer_lenet5(num_classes: int = 10, **kwargs: Any) -> Localizer:
    """LeNet-5 (tanh, average pooling) localiser; on 64x64 C5 is 9x9x120, so F6 has 9,720 inputs."""
    return _localizer("lenet5", num_classes, kwargs)


@register_model("localizer_resnet18", family="localizer", input_shape=(224, 224, 3),
                test_input_shape=(32, 32, 3), num_classes=1000, task="localization",
                description="ResNet-18 with a class and a box head; 11,691,564 parameters")
def localizer_resnet18(num_classes: int = 1000, **kwargs: Any) -> Localizer:
    """ResNet-18 localiser: class and box heads on the 512 pooled features."""
    return _localizer("resnet18", num_classes, kwargs)


@register_model("localizer_resnet20", family="localizer", input_shape=(32, 32, 3), num_classes=10,
                task="localization",
                description="CIFAR ResNet-20 with a class and a box head; 269,982 parameters")
def localizer_resnet20(num_classes: int = 10, **kwargs: Any) -> Localizer:
    """CIFAR ResNet-20 localiser: class and box heads on the 64 pooled features."""
    return _localizer("resnet20", num_classes, kwargs)


@register_model("localizer_alexnet", family="localizer", input_shape=(224, 224, 3),
                test_input_shape=(63, 63, 3), num_classes=1000, task="localization",
                description="AlexNet with a class and a box head (the lecture's example); "
                            "61,117,228 parameters")
def localizer_alexnet(num_classes: int = 1000, **kwargs: Any) -> Localizer:
    """AlexNet localiser: class and box heads on the 4096 features of its second FC layer."""
    return _localizer("alexnet", num_classes, kwargs)

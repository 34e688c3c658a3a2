"""RetinaNet, Faster R-CNN and Mask R-CNN equal torchvision's, with converted random weights.

A torchvision detector (the ``*_resnet50_fpn`` builders with ``weights=None,
weights_backbone=None``; for the digit-scene variants the same classes assembled from
``resnet18`` with our fields) gets seeded random weights that keep activations at unit scale:
BatchNorm affine parameters drawn at random and running statistics set to the statistics of a
random batch (an uncalibrated random ResNet-50 has logits of 1e2), He-initialised heads
(torchvision's N(0, 0.01) heads score every box at the prior, under the detection threshold),
their output layers rescaled to a spread of 1-2 on the test image (no saturated scores, no ties
at 1.0). It is converted with ``from_torch`` and both run in eval mode on one non-square image.

torchvision's ``GeneralizedRCNNTransform`` is matched, not bypassed: ``image_mean = 0``,
``image_std = 1`` make its normalisation the identity, ``min_size = H``, ``max_size = W`` its
resize (scale factor exactly 1), and ``H``, ``W`` multiples of 32 leave nothing to pad (asserted).

Checked: the pyramid levels, the heads' raw outputs (RetinaNet's per-anchor logits and deltas, the
RPN's), the box and mask heads on the same given boxes; each post-processing stage (RetinaNet's
detection, the RPN's proposal selection, the RoI heads' detection) on torchvision's own inputs;
for RetinaNet also the detections end to end. Two-stage detections are not compared end to end:
proposals that differ by float32 rounding flip NMS decisions at IoU 0.7 among hundreds of
overlapping proposals, and the two programs then legitimately keep different sets.

Tolerances. Each network output is a float32 computation of some 20 (ResNet-18, C2-C4) to 60
(ResNet-50 and the heads) layers, each summing at most K = 3 x 3 x 512 = 4608 products in another
order than torch's: a relative rounding error of about sqrt(K) 2^-24 = 4e-6 per layer, growing
like the square root of the depth when independent, about 3e-5 of the output's scale for 60
layers. Values are compared to ``1e-4`` of the largest magnitude (observed: 1e-5 to 1e-7).
Post-processing on identical inputs evaluates the same float32 formulas in another order: boxes
to 1e-6 of the image size, scores to 1e-6. End to end, a score (sigmoid) moves by at most a quarter
of its logit's error, under ``1e-4`` of the logits' scale, and a box side by its delta's error
times the box size, under ``1e-4`` of the deltas' scale times the image size. Nearly tied scores
may swap places, so each detection is paired with torchvision's equal one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.convert import from_torch
from cnn_jax.models import create_model
from cnn_jax.models.rcnn import paste_masks

TORCH_INSTALL = "pip install torch==2.14.1 torchvision==0.29.1"
TOL = 1e-4


@pytest.fixture(scope="module")
def torch():
    try:
        import torch
        import torchvision  # noqa: F401
    except ImportError as err:
        pytest.fail(f"the torchvision parity tests need torch and torchvision ({err}): "
                    f"`{TORCH_INSTALL}`")
    torch.set_num_threads(2)
    return torch


# --- torchvision twins ---------------------------------------------------------------------------


def _transform(size, channels):
    return dict(min_size=size[0], max_size=size[1], image_mean=[0.0] * channels,
                image_std=[1.0] * channels)


def _small_backbone(torch, extra):
    """torchvision's ResNet-18 C2-C4 + a 64-channel FPN, one input channel (our digit models)."""
    import torchvision
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    body = torchvision.models.resnet18()
    body.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    backbone = BackboneWithFPN(body, {"layer1": "0", "layer2": "1", "layer3": "2"},
                               [64, 128, 256], 64, extra_blocks=LastLevelMaxPool())
    if extra is None:
        backbone.fpn.extra_blocks = None
    return backbone


def torchvision_twin(torch, name, size):
    """The torchvision model our ``name`` converts from, its transform the identity at ``size``."""
    from torchvision.models import detection as tvd
    from torchvision.models.detection import faster_rcnn, mask_rcnn
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    if name.endswith("resnet50_fpn"):
        return getattr(tvd, name)(weights=None, weights_backbone=None, **_transform(size, 3))
    if name == "retinanet_resnet18_fpn":
        sizes = ((12, 15, 19), (24, 30, 38), (48, 60, 76))
        return tvd.RetinaNet(_small_backbone(torch, None), 10,
                             anchor_generator=AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * 3),
                             topk_candidates=300, detections_per_img=100, **_transform(size, 1))
    anchors = AnchorGenerator(((12,), (24,), (48,), (96,)), ((0.5, 1.0, 2.0),) * 4)
    kwargs = dict(rpn_anchor_generator=anchors, rpn_pre_nms_top_n_test=500,
                  rpn_post_nms_top_n_test=100,
                  box_roi_pool=MultiScaleRoIAlign(["0", "1", "2"], 7, 2),
                  box_head=faster_rcnn.TwoMLPHead(64 * 7 * 7, 256),
                  box_predictor=faster_rcnn.FastRCNNPredictor(256, 11), **_transform(size, 1))
    backbone = _small_backbone(torch, "maxpool")
    if name == "fasterrcnn_resnet18_fpn":
        return tvd.FasterRCNN(backbone, None, **kwargs)
    return tvd.MaskRCNN(backbone, None, mask_roi_pool=MultiScaleRoIAlign(["0", "1", "2"], 14, 2),
                        mask_head=mask_rcnn.MaskRCNNHeads(64, [64] * 4, 1),
                        mask_predictor=mask_rcnn.MaskRCNNPredictor(64, 64, 11), **kwargs)


# The layers whose outputs leave the network: rescaled to a set spread on the test image.
OUTPUT_LAYERS = {"cls_logits": 2.0, "cls_score": 2.0, "bbox_reg": 1.0, "bbox_pred": 1.0,
                 "mask_fcn_logits": 2.0}


def randomise(torch, model, image, seed=0):
    """Seeded random weights that keep activations at unit scale (module docstring)."""
    torch.manual_seed(seed)
    outputs = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = 1.0  # the next training-mode batch sets the running statistics
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
            elif not name.startswith("backbone") and isinstance(
                    module, torch.nn.Conv2d | torch.nn.ConvTranspose2d | torch.nn.Linear):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                torch.nn.init.uniform_(module.bias, -0.1, 0.1)
                if name.rpartition(".")[2] in OUTPUT_LAYERS:
                    outputs[name] = (module, [])
                    module.register_forward_hook(
                        lambda m, args, out, seen=outputs[name][1]: seen.append(out.flatten()))
        model.backbone.train()
        model.backbone(torch.randn(2, *image.shape[1:]))
        model.eval()
        # Logits and deltas of a He-initialised head reach 1e2 on a ResNet-50: saturated scores,
        # ties at 1.0 and exploding boxes. One pass measures each output layer's spread.
        model([image[0]])
        for name, (module, seen) in outputs.items():
            factor = OUTPUT_LAYERS[name.rpartition(".")[2]] / float(torch.cat(seen).std())
            module.weight.mul_(factor)
            module.bias.mul_(factor)
        for module in model.modules():
            module._forward_hooks.clear()
    return model


def _close(ours, theirs, tol=TOL, what=""):
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    scale = max(float(np.abs(theirs).max()), 1e-30)
    err = float(np.abs(ours - theirs).max())
    assert err <= tol * scale, f"{what}: max error {err:.3g} > {tol} x {scale:.3g}"


def _pair(boxes, scores, labels, theirs, score_tol, box_tol):
    """torchvision's row equal to each of ours: ``theirs = (boxes, scores, labels)`` numpy, the
    same label, score to ``score_tol``, box to ``box_tol``. Equal lists may differ in the order
    of nearly tied scores, which float32 rounding can swap."""
    their_boxes, their_scores, their_labels = theirs
    assert len(boxes) == len(their_boxes) > 0, (len(boxes), len(their_boxes))
    free, order = np.ones(len(their_boxes), bool), []
    box_tols = np.broadcast_to(np.asarray(box_tol, np.float64), (len(boxes),))
    for box, score, label, tol in zip(boxes, scores, labels, box_tols, strict=True):
        same = (free & (their_labels == label) & (np.abs(their_scores - score) <= score_tol)
                & (np.abs(their_boxes - box).max(axis=1) <= tol))
        assert same.any(), f"no torchvision detection equals {label} {score} {box}"
        order.append(int(np.argmax(same)))
        free[order[-1]] = False
    return order


def _numpy(*tensors):
    return [t.numpy() for t in tensors]


# --- the check ---------------------------------------------------------------------------------


def check_parity(torch, name, size, seed=0):
    from torchvision.models.detection.rpn import concat_box_prediction_layers

    channels = 3 if name.endswith("resnet50_fpn") else 1
    generator = torch.Generator().manual_seed(seed + 1)
    image = torch.randn(1, channels, *size, generator=generator)
    tv = randomise(torch, torchvision_twin(torch, name, size), image, seed)
    model = create_model(name)
    variables = from_torch(name, tv.state_dict())
    assert sum(int(np.prod(p.shape)) for p in jax.tree.leaves(variables["params"])) == sum(
        p.numel() for p in tv.parameters())
    corners = torch.rand(12, 2, 2, generator=generator) * torch.tensor([size[1], size[0]])
    boxes = torch.cat([corners.min(1).values, corners.max(1).values + 1.0], dim=1)
    rcnn = not name.startswith("retinanet")

    theirs, stage = {}, {}  # torchvision's outputs; torchvision's inputs of our later stages
    with torch.no_grad():
        images, _ = tv.transform([image[0]])
        assert torch.equal(images.tensors, image)  # the matched transform is the identity
        features = tv.backbone(image)
        levels = list(features.values())
        if rcnn:
            anchors = tv.rpn.anchor_generator(images, levels)[0]
            objectness, deltas = concat_box_prediction_layers(*tv.rpn.head(levels))
            theirs["rpn_objectness"], theirs["rpn_box_deltas"] = objectness.T, deltas[None]
            per_level = [int(np.prod(o.shape[1:])) for o in tv.rpn.head(levels)[0]]
            decoded = tv.rpn.box_coder.decode(deltas, [anchors]).view(1, -1, 4)
            (proposals,), _ = tv.rpn.filter_proposals(decoded, objectness, images.image_sizes,
                                                      per_level)
            theirs["proposals"] = proposals
            pooled = tv.roi_heads.box_roi_pool(features, [proposals], images.image_sizes)
            class_logits, box_regression = tv.roi_heads.box_predictor(
                tv.roi_heads.box_head(pooled))
            theirs["detections"] = tv.roi_heads.postprocess_detections(
                class_logits, box_regression, [proposals], images.image_sizes)
            stage = dict(objectness=objectness[:, 0], deltas=deltas, anchors=anchors,
                         class_logits=class_logits, box_regression=box_regression,
                         proposals=proposals)
            pooled = tv.roi_heads.box_roi_pool(features, [boxes], [size])
            theirs["class_logits"], theirs["box_regression"] = tv.roi_heads.box_predictor(
                tv.roi_heads.box_head(pooled))
            if model.masks:
                pooled = tv.roi_heads.mask_roi_pool(features, [boxes], [size])
                theirs["mask_logits"] = tv.roi_heads.mask_predictor(
                    tv.roi_heads.mask_head(pooled)).permute(0, 2, 3, 1)
        else:
            anchors = tv.anchor_generator(images, levels)[0]
            head = tv.head(levels)
            theirs.update(head)
            per_level = [level.shape[2] * level.shape[3] * 9 for level in levels]
            split = {k: list(v.split(per_level, dim=1)) for k, v in head.items()}
            (found,) = tv.postprocess_detections(split, [list(anchors.split(per_level))],
                                                 images.image_sizes)
            theirs["detections"] = [[found["boxes"]], [found["scores"]], [found["labels"]]]
            stage = dict(cls_logits=head["cls_logits"][0], bbox_regression=head[
                "bbox_regression"][0], anchors=anchors)
            theirs["end_to_end"] = tv([image[0]])[0]

    def run(variables, x, boxes, stage):
        outputs = model.apply(variables, x, train=False)
        ours = {"levels": model.apply(variables, x, method=lambda m, x: m.backbone(x))}
        if rcnn:
            pooled = ours["levels"][:len(model.returned_layers)]
            ours.update(model.apply(variables, pooled, boxes, size, method="box_outputs"))
            if model.masks:
                ours["mask_logits"] = model.apply(variables, pooled, boxes, size,
                                                  method="mask_logits")
            ours["proposals"] = model.select_proposals(
                stage["objectness"], stage["deltas"], anchors=stage["anchors"],
                per_level=per_level, image_size=size, train=False)
            ours["detections"] = model.postprocess_detections(
                stage["class_logits"], stage["box_regression"], stage["proposals"],
                jnp.ones(len(stage["proposals"]), bool), image_size=size)
        else:
            ours["detections"] = model.postprocess_detections(
                stage["cls_logits"], stage["bbox_regression"], stage["anchors"], per_level, size)
        return outputs, ours

    x = jnp.asarray(image.permute(0, 2, 3, 1).numpy())
    stage = {k: jnp.asarray(v.numpy()) for k, v in stage.items()}
    outputs, ours = jax.jit(run)(variables, x, jnp.asarray(boxes.numpy())[None], stage)

    # The network: pyramid levels, head outputs, box and mask heads on the same boxes.
    for i, (a, b) in enumerate(zip(ours["levels"], levels, strict=True)):
        _close(a, b.permute(0, 2, 3, 1).numpy(), what=f"pyramid level {i}")
    for key in ("cls_logits", "bbox_regression", "rpn_objectness", "rpn_box_deltas"):
        if key in theirs:
            _close(outputs[key], theirs[key].numpy(), what=key)
    for key in ("class_logits", "box_regression", "mask_logits"):
        if key in theirs:
            _close(ours[key][0], theirs[key].numpy(), what=f"{key} on given boxes")

    # Post-processing on torchvision's own inputs: the same float32 formulas in another order,
    # so boxes to 1e-6 of the image size and scores to 1e-6; the order of near ties may differ.
    exact_box = 1e-6 * max(size)
    if rcnn:
        boxes, valid = (np.asarray(a) for a in ours["proposals"])
        _pair(boxes[valid], np.zeros(valid.sum()), np.zeros(valid.sum()),
              (theirs["proposals"].numpy(), np.zeros(len(theirs["proposals"])),
               np.zeros(len(theirs["proposals"]))), 0.0, exact_box)
    found = {k: np.asarray(v) for k, v in ours["detections"].items()}
    count, shift = int(found["count"]), int(rcnn)  # torchvision's R-CNN labels count background
    _pair(found["boxes"][:count], found["scores"][:count], found["classes"][:count] + shift,
          _numpy(*(part[0] for part in theirs["detections"])), 1e-6, exact_box)
    assert not found["boxes"][count:].any() and not found["scores"][count:].any()

    if not rcnn:
        # End to end: the two programs' detections, to the network's tolerance (module docstring).
        count, e2e = int(outputs["count"][0]), theirs["end_to_end"]
        boxes = np.asarray(outputs["boxes"][0, :count])
        # A box decoded wholly outside the image is clipped to zero width or height; there the
        # decoded side (anchor x exp(dw), up to thousands of pixels) multiplies the deltas'
        # rounding, and whether its far edge crosses the border is decided by that rounding:
        # such boxes are paired by label and score only.
        outside = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        box_tol = TOL * float(np.abs(outputs["bbox_regression"]).max()) * max(size)
        _pair(boxes, np.asarray(outputs["scores"][0, :count]),
              np.asarray(outputs["classes"][0, :count]),
              _numpy(e2e["boxes"], e2e["scores"], e2e["labels"]),
              TOL * float(np.abs(outputs["cls_logits"]).max()),
              np.where(outside, np.inf, box_tol))
    return outputs


@pytest.mark.parametrize("name", ["retinanet_resnet18_fpn", "fasterrcnn_resnet18_fpn",
                                  "maskrcnn_resnet18_fpn"])
def test_digit_detectors_equal_their_torchvision_assembly(torch, name):
    check_parity(torch, name, (64, 96))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["retinanet_resnet50_fpn", "fasterrcnn_resnet50_fpn",
                                  "maskrcnn_resnet50_fpn"])
def test_resnet50_fpn_detectors_equal_torchvision(torch, name):
    check_parity(torch, name, (96, 128))


def test_paste_masks_equals_torchvision(torch):
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(40, 1, 28, 28, generator=generator)
    corners = torch.rand(40, 2, 2, generator=generator) * torch.tensor([56.0, 48.0])
    boxes = torch.cat([corners.min(1).values, corners.max(1).values], dim=1)  # clipped, as detected
    boxes[0] = torch.tensor([3.0, 4.0, 3.0, 4.0])  # empty
    # The whole image: its grown corner 28 - 28 fl(30/28) is -2 rounded step by step, -1.999999
    # by a fused multiply-add, which truncates to the next pixel.
    boxes[1] = torch.tensor([0.0, 0.0, 56.0, 48.0])
    theirs = paste_masks_in_image(masks, boxes, (48, 56))[:, 0].numpy()
    ours = jax.jit(lambda m, b: paste_masks(m, b, (48, 56)))(
        jnp.asarray(masks[:, 0].numpy()), jnp.asarray(boxes.numpy()))
    # The same two-tap interpolations, summed in another order: float32 rounding of values <= 1.
    np.testing.assert_allclose(np.asarray(ours), theirs, atol=1e-6)
    assert (theirs > 0).sum(axis=(1, 2))[1] == 48 * 56

"""RetinaNet, Faster R-CNN and Mask R-CNN as specified: torchvision's parameter counts, their losses
equal to torchvision's on the same head outputs and samples, the focal normalisation and the RPN's
sampling counts worked by hand, and training that runs under jit with fixed shapes on digit scenes
(losses finite and falling, every parameter reached, detections of fixed size).
Parity of the networks themselves: test_detection_parity.py."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from model_helpers import variable_shapes

from cnn_jax import ops
from cnn_jax.data.scenes import DigitSceneParams, render_scenes
from cnn_jax.models import create_model, get_model_spec
from cnn_jax.models.retinanet import RetinaNet, retinanet_anchor_sizes

PARAMETERS = {
    # torchvision's counts with weights=None (trainable BatchNorm), at its 91 outputs.
    "retinanet_resnet50_fpn": 34_068_119,
    "fasterrcnn_resnet50_fpn": 41_808_406,
    "maskrcnn_resnet50_fpn": 44_454_513,
    # The digit-scene variants: ResNet-18 C2-C4, a 64-channel FPN, 10 classes, one input channel
    # (equal to the torchvision assemblies of test_detection_parity.py).
    "retinanet_resnet18_fpn": 3_284_286,
    "fasterrcnn_resnet18_fpn": 3_837_062,
    "maskrcnn_resnet18_fpn": 4_001_937,
}


@pytest.fixture(scope="module")
def torch():
    try:
        import torch
        import torchvision  # noqa: F401
    except ImportError as err:
        pytest.fail(f"the torchvision loss tests need torch and torchvision ({err})")
    torch.set_num_threads(2)
    return torch


def _count(tree) -> int:
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(tree))


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_parameter_counts_equal_torchvision(name):
    spec = get_model_spec(name)
    assert _count(variable_shapes(create_model(name), spec.test_input_shape)["params"]) == (
        PARAMETERS[name])
    assert f"{PARAMETERS[name]:,}" in spec.description


def test_retinanet_anchors_are_torchvisions_three_scales_per_level():
    assert retinanet_anchor_sizes((32, 64)) == ((32, 40, 50), (64, 80, 101))
    assert RetinaNet().anchor_generator.num_anchors_per_location() == [9] * 5


# --- losses against torchvision and by hand ------------------------------------------------------


def _random_boxes(rng, n, size, low=8.0, high=40.0):
    """``n`` xyxy boxes of sides in [low, high) inside an image of ``size = (H, W)``."""
    sides = rng.uniform(low, high, (n, 2))
    corners = rng.uniform(0, 1, (n, 2)) * (np.array([size[1], size[0]]) - sides)
    return np.concatenate([corners, corners + sides], axis=1).astype(np.float32)


def test_retinanet_loss_equals_torchvision(torch):
    from torchvision.models.detection import RetinaNet as TorchRetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    rng = np.random.default_rng(0)
    size, k, rows = (64, 96), 4, 5
    model = create_model("retinanet_resnet18_fpn", num_classes=k)
    anchors = model.anchor_generator.anchors(size, [(16, 24), (8, 12), (4, 6)])
    n = 3
    cls_logits = rng.normal(0, 2, (n, len(anchors), k)).astype(np.float32)
    regression = rng.normal(0, 0.5, (n, len(anchors), 4)).astype(np.float32)
    counts = [3, rows, 0]  # the last image has no object: every anchor is background
    boxes = np.zeros((n, rows, 4), np.float32)
    classes = np.zeros((n, rows), np.int32)
    for i, m in enumerate(counts):
        boxes[i, :m] = _random_boxes(rng, m, size)
        classes[i, :m] = rng.integers(0, k, m)
    batch = {"boxes": boxes, "classes": classes, "box_mask": np.arange(rows) < np.c_[counts]}
    outputs = {"cls_logits": cls_logits, "bbox_regression": regression,
               "anchors": np.broadcast_to(anchors, (n, *anchors.shape))}
    total, parts = jax.jit(model.loss)(outputs, batch)

    backbone = torch.nn.Module()
    backbone.out_channels = 8
    tv = TorchRetinaNet(backbone, k, anchor_generator=AnchorGenerator(
        model.anchor_sizes, (model.aspect_ratios,) * 3))
    targets = [{"boxes": torch.tensor(boxes[i, :m]), "labels": torch.tensor(classes[i, :m])}
               for i, m in enumerate(counts)]
    theirs = tv.compute_loss(targets, {"cls_logits": torch.tensor(cls_logits),
                                       "bbox_regression": torch.tensor(regression)},
                             [torch.tensor(anchors)] * n)
    # Sums of about 3 x 3024 x 4 float32 terms of unit scale: rounding about 1e-6 relative.
    for ours, key in (("classification", "classification"), ("bbox_regression",
                                                              "bbox_regression")):
        np.testing.assert_allclose(float(parts[ours]), float(theirs[key]), rtol=1e-5)
    assert float(total) == pytest.approx(float(sum(theirs.values())), rel=1e-5)


def test_focal_loss_is_normalised_by_the_foreground_anchors_and_gamma_0_is_balanced_ce():
    # Three anchors, two classes, all logits 0 (p = 1/2): anchor 0 is the ground-truth box
    # (IoU 1, foreground, class 1), anchor 1 overlaps it with IoU 0.45 (ignored: 0.4 <= IoU <
    # 0.5, and not its best anchor), anchor 2 is far (background). Per element the focal loss is
    # alpha_t (1 - p_t)^gamma ln 2 with alpha_t = 0.25 for the target 1, 0.75 for the targets 0:
    # anchor 0 gives 0.25 (1/4) ln 2 + 0.75 (1/4) ln 2, anchor 2 twice 0.75 (1/4) ln 2, over one
    # foreground anchor: 0.625 ln 2. With gamma = 0 the factor 1/4 goes: 2.5 ln 2.
    gt = np.array([[0.0, 0.0, 20.0, 20.0]], np.float32)
    anchors = np.array([[0.0, 0.0, 20.0, 20.0], [0.0, 0.0, 20.0, 9.0], [40, 40, 60, 60]],
                       np.float32)
    assert float(ops.box_iou(gt, anchors)[0, 1]) == pytest.approx(0.45)
    outputs = {"cls_logits": np.zeros((1, 3, 2), np.float32),
               "bbox_regression": np.zeros((1, 3, 4), np.float32), "anchors": anchors[None]}
    batch = {"boxes": np.concatenate([gt, np.zeros((1, 4), np.float32)])[None],
             "classes": np.array([[1, 0]], np.int32), "box_mask": np.array([[True, False]])}
    for gamma, expected in ((2.0, 0.625), (0.0, 2.5)):
        model = RetinaNet(num_classes=2, focal_gamma=gamma)
        _, parts = jax.jit(model.loss)(outputs, batch)
        assert float(parts["classification"]) == pytest.approx(expected * math.log(2), rel=1e-6)
        assert float(parts["bbox_regression"]) == 0.0  # anchor 0 is the box: zero deltas
    # A padded example (mask False) does not count.
    two = {k: np.concatenate([v, v]) for k, v in outputs.items()}
    batch2 = {k: np.concatenate([v, v]) for k, v in batch.items()}
    batch2["classes"] = np.array([[1, 0], [0, 0]], np.int32)
    batch2["mask"] = np.array([True, False])
    assert float(jax.jit(RetinaNet(num_classes=2).loss)(two, batch2)[1]["classification"]) == (
        pytest.approx(0.625 * math.log(2), rel=1e-6))


def test_rcnn_losses_equal_torchvision(torch):
    from torchvision.models.detection.roi_heads import fastrcnn_loss, maskrcnn_loss
    from torchvision.models.detection.rpn import AnchorGenerator, RegionProposalNetwork, RPNHead

    rng = np.random.default_rng(1)
    n, a, s, p, k, rows, size = 2, 60, 16, 5, 3, 4, (64, 72)
    f32 = np.float32
    # RPN: sampled anchors (positives, negatives) and the deltas of the positives.
    positive = rng.random((n, a)) < 0.15
    negative = ~positive & (rng.random((n, a)) < 0.6)
    rpn_targets = np.where(positive[..., None], rng.normal(0, 1, (n, a, 4)), 0).astype(f32)
    # RoI heads: S slots per image, the last ones padding; labels 0 (background) .. K.
    roi_valid = np.arange(s) < np.array([[13], [9]])
    roi_labels = np.where(roi_valid, rng.integers(0, k + 1, (n, s)), 0)
    roi_targets = np.where((roi_labels > 0)[..., None], rng.normal(0, 1, (n, s, 4)), 0).astype(f32)
    # Mask: P foreground RoIs per image, matched to ground-truth rows; instances paint the rows.
    boxes = np.stack([_random_boxes(rng, rows, size, 10, 40) for _ in range(n)])
    classes = rng.integers(0, k, (n, rows)).astype(np.int32)
    instances = np.zeros((n, *size), np.uint8)
    for i in range(n):
        for r in range(rows):
            x1, y1, x2, y2 = boxes[i, r].astype(int)
            instances[i, y1:y2, x1:x2] = r + 1
    mask_valid = np.arange(p) < np.array([[4], [2]])
    mask_matched = rng.integers(0, rows, (n, p))
    mask_rois = np.stack([_random_boxes(rng, p, size, 6, 50) for _ in range(n)])
    full_logits = rng.normal(0, 2, (n, p, 28, 28, k + 1)).astype(f32)
    mask_labels = np.take_along_axis(classes, mask_matched, 1) + 1
    outputs = {
        "rpn_objectness": rng.normal(0, 2, (n, a)).astype(f32),
        "rpn_box_deltas": rng.normal(0, 1, (n, a, 4)).astype(f32), "rpn_positive": positive,
        "rpn_negative": negative, "rpn_regression_targets": rpn_targets,
        "class_logits": rng.normal(0, 2, (n, s, k + 1)).astype(f32),
        "box_regression": rng.normal(0, 1, (n, s, 4 * (k + 1))).astype(f32),
        "roi_valid": roi_valid, "roi_labels": roi_labels, "roi_regression_targets": roi_targets,
        "mask_rois": mask_rois, "mask_valid": mask_valid, "mask_matched": mask_matched,
        "mask_logits": np.take_along_axis(full_logits, mask_labels[..., None, None, None],
                                          -1)[..., 0],
    }
    batch = {"boxes": boxes, "classes": classes, "box_mask": np.ones((n, rows), bool),
             "instances": instances}
    _, parts = jax.jit(create_model("maskrcnn_resnet18_fpn", num_classes=k).loss)(outputs, batch)

    t = torch.tensor
    rpn = RegionProposalNetwork(AnchorGenerator(), RPNHead(8, 3), 0.7, 0.3, 256, 0.5,
                                {"training": 1, "testing": 1}, {"training": 1, "testing": 1}, 0.7)
    rpn.fg_bg_sampler = lambda labels: ([t(x) for x in positive], [t(x) for x in negative])
    objectness, rpn_box = rpn.compute_loss(
        t(outputs["rpn_objectness"]).reshape(-1, 1), t(outputs["rpn_box_deltas"]).reshape(-1, 4),
        [t(x.astype(f32)) for x in positive], [t(x) for x in rpn_targets])
    classifier, box_reg = fastrcnn_loss(
        t(outputs["class_logits"][roi_valid]), t(outputs["box_regression"][roi_valid]),
        [t(roi_labels[i][roi_valid[i]]) for i in range(n)],
        [t(roi_targets[i][roi_valid[i]]) for i in range(n)])
    mask = maskrcnn_loss(
        t(full_logits[mask_valid]).permute(0, 3, 1, 2),
        [t(mask_rois[i][mask_valid[i]]) for i in range(n)],
        [t(np.stack([instances[i] == r + 1 for r in range(rows)]).astype(f32))
         for i in range(n)],
        [t(classes[i] + 1) for i in range(n)],
        [t(mask_matched[i][mask_valid[i]]) for i in range(n)])
    theirs = {"loss_objectness": objectness, "loss_rpn_box_reg": rpn_box,
              "loss_classifier": classifier, "loss_box_reg": box_reg, "loss_mask": mask}
    assert sorted(parts) == sorted(theirs)
    # Sums of at most 6 x 28 x 28 float32 terms of unit scale: rounding about 1e-6 relative.
    for key, value in theirs.items():
        np.testing.assert_allclose(float(parts[key]), float(value), rtol=1e-5, err_msg=key)


def test_rcnn_loss_refuses_eval_outputs_and_training_needs_targets():
    model = create_model("fasterrcnn_resnet18_fpn")
    with pytest.raises(ValueError, match="training-mode outputs"):
        model.loss({"proposals": jnp.zeros((1, 4, 4))}, {})
    x = jnp.zeros((1, 64, 64, 1))
    with pytest.raises(ValueError, match="pass targets="):
        jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=True))
    with pytest.raises(ValueError, match="train=False"):
        model.detect({"rpn_objectness": jnp.zeros((1, 3))})


# --- training on digit scenes under jit ---------------------------------------------------------

SCENES = 4


@pytest.fixture(scope="module")
def digit_scenes(shared_data):
    """Four 64 x 64 scenes of 1-4 training digits, in the batch contract."""
    with np.load(shared_data / "mnist.npz") as data:
        digits, labels = data["x_train"][:500], data["y_train"][:500]
    params = DigitSceneParams()
    scenes = render_scenes(digits, labels, SCENES, params, np.random.default_rng(0))
    rows = params.max_digits
    return {"image": scenes["image"], "boxes": scenes["boxes"], "classes": scenes["classes"],
            "box_mask": np.arange(rows) < scenes["num_boxes"][:, None],
            "instances": scenes["instances"]}


def _initial_variables(model, x):
    """``init`` through the layers only (no post-processing to compile): every parameter."""
    def layers_only(module, x):
        features = module.backbone(x)
        if isinstance(module, RetinaNet):
            return module.head(features)
        module.rpn["head"](features)
        pooled, boxes = features[:len(module.returned_layers)], jnp.zeros((x.shape[0], 1, 4))
        module.box_outputs(pooled, boxes, x.shape[1:3])
        if module.masks:
            module.mask_logits(pooled, boxes, x.shape[1:3])

    return jax.jit(lambda x: model.init(jax.random.key(0), x, method=layers_only))(x)


def _train(model, batch, steps, learning_rate):
    x = jnp.asarray(batch["image"], jnp.float32) / 255.0
    targets = {k: jnp.asarray(batch[k]) for k in ("boxes", "classes", "box_mask", "instances")}
    variables = _initial_variables(model, x)
    optimizer = optax.adam(learning_rate)

    @jax.jit
    def step(params, stats, opt_state, key):
        def loss_fn(params):
            outputs, updates = model.apply({"params": params, "batch_stats": stats}, x,
                                           train=True, targets=targets, rngs={"dropout": key},
                                           mutable=["batch_stats"])
            loss, parts = model.loss(outputs, targets)
            return loss, (parts, updates["batch_stats"], outputs)

        (loss, (parts, stats, outputs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        grad_max = jax.tree.map(lambda g: jnp.max(jnp.abs(g)), grads)
        return optax.apply_updates(params, updates), stats, opt_state, loss, outputs, grad_max

    params, stats = variables["params"], variables["batch_stats"]
    opt_state, losses = optimizer.init(params), []
    for i in range(steps):
        params, stats, opt_state, loss, outputs, grad_max = step(params, stats, opt_state,
                                                                 jax.random.key(i))
        losses.append(float(loss))
        if i == 0:
            first_outputs, first_grads = outputs, grad_max
    assert np.all(np.isfinite(losses)), losses
    reached = jax.tree.leaves(jax.tree.map(lambda g: bool(g > 0), first_grads))
    assert all(reached), "parameters without a gradient"
    detections = jax.jit(lambda v, x: model.detect(model.apply(v, x, train=False)))(
        {"params": params, "batch_stats": stats}, x)
    return losses, first_outputs, detections


def _anchor_positives(anchors, boxes, mask, high=0.7):
    """Anchors the RPN labels positive (Ren et al. §3.1.2), counted with NumPy: IoU >= high with
    a box, or the highest IoU of some box (ties included)."""
    gt = boxes[mask]
    x1, y1 = np.maximum(gt[:, None, 0], anchors[:, 0]), np.maximum(gt[:, None, 1], anchors[:, 1])
    x2, y2 = np.minimum(gt[:, None, 2], anchors[:, 2]), np.minimum(gt[:, None, 3], anchors[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    iou = inter / (area(gt)[:, None] + area(anchors) - inter)
    best = iou == iou.max(axis=1, keepdims=True)
    return int(((iou >= high) | best).any(axis=0).sum())


@pytest.mark.slow  # about 20-50 s on 2 cores: CI runs it with -m slow
def test_mask_rcnn_trains_under_jit_with_fixed_sizes_on_digit_scenes(digit_scenes):
    model = create_model("maskrcnn_resnet18_fpn")
    losses, outputs, found = _train(model, digit_scenes, steps=12, learning_rate=3e-4)
    assert np.mean(losses[-3:]) < 0.7 * losses[0], losses

    # RPN: 256 anchors per image, every positive one among them (there are fewer than 128).
    anchors = model.anchor_generator.anchors((64, 64), [(16, 16), (8, 8), (4, 4), (2, 2)])
    sampled = np.asarray(outputs["rpn_positive"] | outputs["rpn_negative"]).sum(axis=1)
    np.testing.assert_array_equal(sampled, [256] * SCENES)
    positives = [_anchor_positives(anchors, digit_scenes["boxes"][i], digit_scenes["box_mask"][i])
                 for i in range(SCENES)]
    np.testing.assert_array_equal(np.asarray(outputs["rpn_positive"]).sum(axis=1), positives)
    # RoI heads: 128 slots per image (300 proposals + 4 boxes), at most 32 foreground, each
    # ground-truth box among them (boxes are proposals too, IoU 1 with themselves).
    assert outputs["rois"].shape == (SCENES, 128, 4)
    foreground = np.asarray(outputs["roi_labels"] > 0).sum(axis=1)
    assert np.all(foreground >= digit_scenes["box_mask"].sum(axis=1)) and np.all(foreground <= 32)
    assert outputs["mask_logits"].shape == (SCENES, 32, 28, 28)

    assert found["boxes"].shape == (SCENES, 100, 4) and found["masks"].shape == (SCENES, 100, 64,
                                                                                  64)
    for i, count in enumerate(np.asarray(found["count"])):
        assert not np.asarray(found["boxes"][i, count:]).any()
        assert not np.asarray(found["masks"][i, count:]).any()


@pytest.mark.slow  # about 10-30 s on 2 cores: CI runs it with -m slow
def test_retinanet_trains_under_jit_on_digit_scenes(digit_scenes):
    model = create_model("retinanet_resnet18_fpn")
    # Focal loss starts flat (the 0.01 prior makes every anchor a confident negative): at 3e-4
    # the loss moves little in 6 steps, then falls (measured 1.81 -> mean of the last three 1.38,
    # 0.76 of it, under both convolution backends); at 1e-3 Adam's first steps blow it up.
    losses, outputs, found = _train(model, digit_scenes, steps=12, learning_rate=3e-4)
    assert np.mean(losses[-3:]) < 0.9 * losses[0], losses
    assert outputs["cls_logits"].shape == (SCENES, (16 * 16 + 8 * 8 + 4 * 4) * 9, 10)
    assert found["boxes"].shape == (SCENES, 100, 4) and found["classes"].dtype == jnp.int32

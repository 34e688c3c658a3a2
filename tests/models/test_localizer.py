"""Localisers: a registered classifier with K + 4 outputs read as class logits and a box always
valid and inside the image; parameter counts, the loss by hand, gradients to every parameter."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from detection_helpers import leading_dims, synthetic_batch
from model_helpers import filled_variables, num_params, variable_shapes

from cnn_jax.models import create_model, get_model_spec, list_models
from cnn_jax.models.localizer import Localizer, sigmoid_box

COUNTS = {
    # The backbone's count at K classes plus 4 (F + 1) for its F features before the last layer.
    "localizer_lenet5": 868_446,
    "localizer_resnet18": 11_689_512 + 4 * 513,
    "localizer_resnet20": 269_722 + 4 * 65,
    "localizer_alexnet": 61_100_840 + 4 * 4097,
}


def test_the_localizers_are_registered_with_their_parameter_counts():
    assert list_models("localizer") == sorted(COUNTS)
    for name, count in COUNTS.items():
        spec = get_model_spec(name)
        assert spec.task == "localization"
        assert num_params(create_model(name), spec.input_shape) == count, name
        assert f"{count:,} parameters" in spec.description, name


def test_localizer_lenet5_counts_lenet5_layers_on_a_64x64_canvas():
    # C1 156 + C3 2,416 + C5 48,120 + F6 (9 * 9 * 120 + 1) * 84 + output 85 * 14.
    assert COUNTS["localizer_lenet5"] == 156 + 2_416 + 48_120 + 9_721 * 84 + 85 * 14


@pytest.mark.parametrize("backbone, shape", [("resnet18", (32, 32, 3)), ("lenet5", (64, 64, 1))])
def test_the_backbone_is_the_registered_classifier_with_k_plus_4_outputs(backbone, shape):
    # Same parameter tree, names and shapes as the classifier: its weights load as they are.
    localizer = variable_shapes(Localizer(backbone=backbone, num_classes=10), shape)
    classifier = variable_shapes(create_model(backbone, num_classes=14), shape)
    assert jax.tree.map(lambda a: a.shape, localizer["params"]["backbone"]) == jax.tree.map(
        lambda a: a.shape, classifier["params"])
    assert localizer["params"].keys() == {"backbone"}


def test_sigmoid_box_sorts_each_coordinate_pair_and_scales_it_to_the_image():
    # sigmoid(0) = 0.5, sigmoid(ln 3) = 0.75, sigmoid(-ln 3) = 0.25; image 32 tall, 64 wide.
    raw = jnp.asarray([[0.0, math.log(3), math.log(3), -math.log(3)]])
    np.testing.assert_allclose(sigmoid_box(raw, (32, 64)), [[32, 8, 48, 24]], rtol=1e-6)
    boxes = sigmoid_box(jax.random.normal(jax.random.key(0), (64, 4)) * 5, (32, 64))
    assert np.all(boxes[:, 2] >= boxes[:, 0]) and np.all(boxes[:, 3] >= boxes[:, 1])
    assert np.all(boxes >= 0) and np.all(boxes[:, 0::2] <= 64) and np.all(boxes[:, 1::2] <= 32)


def hand_case():
    """Three images 32 tall, 64 wide, K = 3. Image 0: uniform logits, label 1 (CE ln 3), box
    (0, 0, 32, 32) for (4, 0, 32, 16). Image 1: logits (0, ln 4, 0), label 1 (CE ln 1.5), its box
    cropped away. Image 2: evaluation padding."""
    outputs = {"logits": jnp.asarray([[0.0, 0.0, 0.0], [0.0, math.log(4), 0.0], [5.0, -5.0, 0.0]]),
               "box": jnp.asarray([[0.0, 0.0, 32.0, 32.0], [0, 0, 8, 8], [1, 2, 3, 4]])}
    batch = {"image": np.zeros((3, 32, 64, 1), np.uint8), "label": np.array([1, 1, 0]),
             "boxes": np.array([[[4, 0, 32, 16]], [[10, 10, 20, 20]], [[0, 0, 5, 5]]], np.float32),
             "box_mask": np.array([[True], [False], [True]]), "mask": np.array([True, True, False])}
    return outputs, batch


def test_localizer_loss_with_smooth_l1_on_normalised_coordinates_by_hand():
    # |dx1| = 4 / 64 = 0.0625 < 1/9: 0.5 * 0.0625^2 * 9; |dy2| = 16 / 32 = 0.5: 0.5 - 1/18.
    outputs, batch = hand_case()
    model = Localizer(backbone="lenet5", num_classes=3, box_loss_weight=2.0)
    loss, parts = model.loss(outputs, batch)
    box = 0.5 * 0.0625**2 * 9 + 0.5 - 1 / 18
    classification = (math.log(3) + math.log(1.5)) / 2
    assert float(parts["classification"]) == pytest.approx(classification, rel=1e-6)
    assert float(parts["box"]) == pytest.approx(box, rel=1e-6)
    assert float(loss) == pytest.approx(classification + 2 * box, rel=1e-6)


def test_localizer_loss_with_giou_by_hand():
    # Intersection 28 * 16 = 448, union 1,024, enclosing box (0, 0, 32, 32): GIoU 0.4375.
    outputs, batch = hand_case()
    loss, parts = Localizer(backbone="lenet5", num_classes=3, box_loss="giou").loss(outputs, batch)
    assert float(parts["box"]) == pytest.approx(1 - 0.4375, rel=1e-6)
    assert float(loss) == pytest.approx((math.log(3) + math.log(1.5)) / 2 + 0.5625, rel=1e-6)


def test_an_unknown_box_loss_is_a_one_line_error():
    outputs, batch = hand_case()
    with pytest.raises(ValueError, match="box_loss='l2' is not one of smooth_l1, giou"):
        Localizer(box_loss="l2").loss(outputs, batch)


@pytest.mark.parametrize("name", ["localizer_lenet5", "localizer_resnet20"])
def test_localizer_outputs_logits_and_a_valid_box_and_its_loss_reaches_every_parameter(name):
    spec = get_model_spec(name)
    model = create_model(name)
    batch = synthetic_batch("localization", spec.test_input_shape, 2, spec.num_classes)
    x = jnp.asarray(batch["image"], jnp.float32) / 255.0
    variables = filled_variables(model, spec.test_input_shape)
    state = {k: v for k, v in variables.items() if k != "params"}

    def loss(params):
        out = model.apply({"params": params, **state}, x, train=False)
        return model.loss(out, batch)[0], out

    (value, out), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
    assert out["logits"].shape == (2, spec.num_classes) and out["box"].shape == (2, 4)
    assert leading_dims(out) == {2} and np.isfinite(float(value))
    box = np.asarray(out["box"])
    assert np.all(box[:, 2:] >= box[:, :2])
    assert np.all((box >= 0) & (box <= spec.test_input_shape[0]))
    zero = [jax.tree_util.keystr(p) for p, g in jax.tree_util.tree_leaves_with_path(grads)
            if not np.all(np.isfinite(g)) or not np.any(g)]
    assert not zero, zero

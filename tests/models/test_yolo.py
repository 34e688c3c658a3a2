"""YOLOv1 (Redmon et al. 2016): the layer table of Fig. 3 and its parameter count, the loss of
eq. 3 against a hand-computed case, the decoding (C * p(c), threshold, per-class NMS, fixed shapes)
on a hand-made output, and (slow: 40 compiled train steps) an end-to-end overfit on digit scenes."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from detection_helpers import leading_dims, synthetic_batch
from model_helpers import filled_variables, num_params

from cnn_jax.analysis.summary import summarize_model
from cnn_jax.data.scenes import DigitSceneParams, render_scenes
from cnn_jax.models import create_model, get_model_spec
from cnn_jax.models.yolo import YOLOv1, decode_boxes
from cnn_jax.ops import box_iou


def test_yolov1_has_the_24_conv_2_fc_layer_table_of_fig_3_on_448x448():
    rows = {r.name: r for r in summarize_model("yolov1").layers}
    convs = [rows[f"conv{i}"].output_shape for i in range(1, 25)]
    assert convs == [
        (224, 224, 64), (112, 112, 192),
        (56, 56, 128), (56, 56, 256), (56, 56, 256), (56, 56, 512),
        *[(28, 28, 256), (28, 28, 512)] * 4, (28, 28, 512), (28, 28, 1024),
        *[(14, 14, 512), (14, 14, 1024)] * 2, (14, 14, 1024), (7, 7, 1024),
        (7, 7, 1024), (7, 7, 1024),
    ]
    assert [rows[f"max_pool_{i}"].output_shape for i in range(1, 5)] == [
        (112, 112, 64), (56, 56, 192), (28, 28, 512), (14, 14, 1024)]
    assert rows["fc1"].output_shape == (4096,) and rows["fc2"].output_shape == (7 * 7 * 30,)
    assert "conv25" not in rows and "fc3" not in rows


def test_yolov1_has_271703550_parameters():
    # Convolutions k*k*c_in*c_out + c_out: 9,472 + 110,784 + 24,704 + 295,168 + 65,792 + 1,180,160
    # + 4 * (131,328 + 1,180,160) + 262,656 + 4,719,616 + 2 * (524,800 + 4,719,616)
    # + 4 * 9,438,208 = 60,155,968; FC 50,176 * 4,096 + 4,096 = 205,524,992; FC 4,096 * 1,470 +
    # 1,470 = 6,022,590.
    assert num_params(create_model("yolov1"), (448, 448, 3)) == 60_155_968 + 205_524_992 + 6_022_590
    assert num_params(create_model("yolov1"), (448, 448, 3)) == 271_703_550
    # On the registry's 64x64 test input the last map is 1x1x1024: FC 4096 has 1,024 inputs.
    assert num_params(create_model("yolov1"), (64, 64, 3)) == 60_155_968 + 4_198_400 + 6_022_590


def test_yolov1_small_has_six_convolutions_ending_on_the_8x8_grid_and_4905136_parameters():
    spec = get_model_spec("yolov1_small")
    assert (spec.input_shape, spec.num_classes, spec.task) == ((64, 64, 1), 10, "detection")
    rows = {r.name: r for r in summarize_model("yolov1_small").layers}
    assert [rows[f"conv{i}"].output_shape for i in range(1, 7)] == [
        (64, 64, 16), (32, 32, 32), (16, 16, 16), (16, 16, 64), (8, 8, 32), (8, 8, 128)]
    assert "conv7" not in rows and rows["fc2"].output_shape == (8 * 8 * 20,)
    # 160 + 4,640 + 528 + 9,280 + 2,080 + 36,992 convolutions, FC 8 * 8 * 128 = 8,192 -> 512,
    # FC 512 -> 1,280.
    assert num_params(create_model("yolov1_small"), (64, 64, 1)) == 53_680 + 4_194_816 + 656_640
    assert num_params(create_model("yolov1_small"), (64, 64, 1)) == 4_905_136


def test_yolov1_classifier_is_the_first_20_convolutions_average_pooling_and_fc_of_section_2_2():
    spec = get_model_spec("yolov1_classifier")
    assert (spec.input_shape, spec.num_classes, spec.task) == ((224, 224, 3), 1000, "classification")
    rows = {r.name: r for r in summarize_model("yolov1_classifier").layers}
    # at 224x224 (half of detection's 448) the last map is 7x7
    assert [rows[f"conv{i}"].output_shape for i in range(19, 21)] == [(7, 7, 512), (7, 7, 1024)]
    assert "conv21" not in rows and rows["classifier"].output_shape == (1000,)
    # yolov1's convolutions less its last four (4 * 9,438,208), FC 1,024 * 1,000 + 1,000.
    expected = 60_155_968 - 4 * 9_438_208 + 1_025_000
    assert num_params(create_model("yolov1_classifier"), (224, 224, 3)) == expected == 23_428_136


def test_yolov1_small_classifier_names_its_layers_as_yolov1_small_so_its_run_initialises_one():
    x = jnp.zeros((1, 64, 64, 1))
    kwargs = dict(batch_norm=True)
    classifier = jax.eval_shape(create_model("yolov1_small_classifier", **kwargs).init,
                                jax.random.key(0), x)
    detector = jax.eval_shape(create_model("yolov1_small", **kwargs).init, jax.random.key(0), x)

    def shapes(tree):
        return {k: jax.tree.map(lambda a: a.shape, v) for k, v in tree.items()}

    ours = shapes(classifier["params"])
    assert ours.pop("classifier") == {"kernel": (128, 10), "bias": (10,)}
    theirs = shapes(detector["params"])
    assert set(theirs) - set(ours) == {"fc1", "fc2"}
    assert ours == {k: theirs[k] for k in ours}  # conv1..7, bn1..7: the same arrays
    assert shapes(classifier["batch_stats"]) == shapes(detector["batch_stats"])
    logits = create_model("yolov1_small_classifier").apply(
        jax.jit(create_model("yolov1_small_classifier").init)(jax.random.key(0), x), x)
    assert logits.shape == (1, 10) and logits.dtype == jnp.float32


def test_yolov1_small_with_batch_norm_has_bn_after_every_convolution_and_no_conv_biases():
    model = create_model("yolov1_small", batch_norm=True, dropout_rate=0.0)
    variables = filled_variables(model, (64, 64, 1))  # BN: running mean 0, variance 1
    widths = [16, 32, 16, 64, 32, 128]
    assert all("bias" not in variables["params"][f"conv{i}"] for i in range(1, 7))
    assert [variables["batch_stats"][f"bn{i}"]["mean"].shape for i in range(1, 7)] == [
        (w,) for w in widths]
    # The conv biases (288 numbers) go, BN's scale and shift (2 * 288) come.
    assert num_params(model, (64, 64, 1)) == 4_905_136 - 288 + 2 * 288
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.uniform(size=(2, 64, 64, 1)), jnp.float32)
    apply = jax.jit(lambda batch, train: model.apply(variables, batch, train=train,
                                                     mutable=["batch_stats"]), static_argnums=1)
    _, updated = apply(images, True)
    # Training updates the running statistics: 0.9 * 0 + 0.1 * the batch mean of conv1's output.
    assert not np.allclose(updated["batch_stats"]["bn1"]["mean"], 0.0)
    # In evaluation an image's output does not depend on the rest of the batch (running
    # statistics; 1e-5: the batch size changes XLA's summation order); in training it does.
    def grid(batch, train):
        return np.asarray(apply(batch, train)[0]["grid"][0])

    np.testing.assert_allclose(grid(images[:1], False), grid(images, False), atol=1e-5)
    assert np.abs(grid(images[:1], True) - grid(images, True)).max() > 1e-2

# The hand-computed case: S = 2, B = 2, C = 3 on a 16x16 image (8-pixel cells). Per cell:
# box 0 (x, y, sqrt w, sqrt h, C), box 1 (...), p(0), p(1), p(2); indexed [row, column].
HAND_GRID = np.zeros((1, 2, 2, 13), np.float32)
HAND_GRID[0, 1, 0] = [0.25, 0.0625, 0.5, 0.75, 0.3, 0.5, 0.0625, 0.5, 0.5, 0.8, 0.1, 0.2, 0.6]
HAND_GRID[0, 0, 1] = [0.5, 0.5, 0.0, 0.0, 0.5, 0.0, 0.0, 0.1, 0.1, 0.4, 0.5, 0.5, 0.0]
HAND_GRID[0, 0, 0] = [0.3, 0.3, 0.3, 0.3, 0.2, 0.7, 0.7, 0.7, 0.7, -0.1, 0.9, 0.9, 0.9]
HAND_GRID[0, 1, 1] = [0.1, 0.2, 0.3, 0.4, 0.0, 0.4, 0.3, 0.2, 0.1, 0.3, 0.7, -0.2, 0.5]
# A: class 2, centre (4, 8.5) -> cell (1, 0), targets x 0.5, y 0.0625, sqrt w 0.5, sqrt h 0.75.
# B: class 0, centre (12, 4) -> cell (0, 1), targets 0.5, 0.5, 0.5, 0.5.
# C: class 1, centre (4, 12) -> cell (1, 0) again, after A: not a target.
A, B, C = (2.0, 4.0, 6.0, 13.0), (10.0, 2.0, 14.0, 6.0), (0.0, 8.0, 8.0, 16.0)
SMALL = YOLOv1(num_classes=3, grid_size=2, boxes_per_cell=2)


def hand_batch(boxes, classes, max_boxes=4, images=1):
    n = len(boxes)
    pad = max_boxes - n
    return {
        "image": np.zeros((images, 16, 16, 1), np.uint8),
        "boxes": np.tile(np.array([*boxes, *[(0.0,) * 4] * pad], np.float32), (images, 1, 1)),
        "classes": np.tile(np.array([*classes, *[0] * pad], np.int32), (images, 1)),
        "box_mask": np.tile(np.array([True] * n + [False] * pad), (images, 1)),
    }


def test_yolo_loss_equals_eq_3_computed_by_hand():
    # Cell (1, 0), A: box 0 is (0, 4, 4, 13), IoU 18/54 = 1/3 with A; box 1 is (2, 6.5, 6, 10.5),
    # IoU 16/36 = 4/9: box 1 is responsible. coord 5 * (0.5 - 0.75)^2; object (0.8 - 4/9)^2;
    # box 0's 0.3 is a no-object confidence; class 0.1^2 + 0.2^2 + 0.4^2 = 0.21.
    # Cell (0, 1), B: both boxes miss B (IoU 0, 0): the tie goes to box 0. coord 5 * (0.5^2 +
    # 0.5^2); object (0.5 - 0)^2; box 1's 0.4 is no-object; class 0.5^2 + 0.5^2 = 0.5.
    # No-object: 0.5 * (0.3^2 + 0.4^2 + 0.2^2 + 0.1^2 + 0^2 + 0.3^2) = 0.5 * 0.39.
    loss, parts = SMALL.loss({"grid": jnp.asarray(HAND_GRID)}, hand_batch([A, B, C], [2, 0, 1]))
    expected = {"coord": 5 * 0.0625 + 5 * 0.5, "object": (0.8 - 4 / 9) ** 2 + 0.25,
                "no_object": 0.5 * 0.39, "class": 0.21 + 0.5}
    assert parts.keys() == expected.keys()
    for key, value in expected.items():
        assert float(parts[key]) == pytest.approx(value, rel=1e-6), key
    assert float(loss) == pytest.approx(sum(expected.values()), rel=1e-6)


def test_yolo_loss_gradient_holds_the_iou_target_constant_and_skips_what_eq_3_skips():
    batch = hand_batch([A, B, C], [2, 0, 1])
    grad = jax.grad(lambda g: SMALL.loss({"grid": g}, batch)[0])(jnp.asarray(HAND_GRID))[0]
    assert float(grad[1, 0, 8]) == pytest.approx(5 * 2 * (0.5 - 0.75))  # sqrt h, box 1
    assert float(grad[1, 0, 9]) == pytest.approx(2 * (0.8 - 4 / 9))  # the IoU is a constant
    assert float(grad[1, 0, 4]) == pytest.approx(0.5 * 2 * 0.3)  # no-object box 0
    assert float(grad[1, 0, 12]) == pytest.approx(2 * (0.6 - 1.0))  # p(2), A's class
    # Box 0's coordinates move its IoU but it is not responsible: no gradient reaches them.
    np.testing.assert_array_equal(grad[1, 0, :4], 0.0)
    # No object in cell (0, 0): only the confidences are trained (towards 0).
    np.testing.assert_array_equal(grad[0, 0, [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12]], 0.0)
    assert float(grad[0, 0, 4]) == pytest.approx(0.5 * 2 * 0.2)
    assert float(grad[0, 0, 9]) == pytest.approx(0.5 * 2 * -0.1)


def test_the_first_box_whose_centre_falls_in_a_cell_owns_it_and_later_ones_are_ignored():
    grid = {"grid": jnp.asarray(HAND_GRID)}

    def loss(boxes, classes):
        return float(SMALL.loss(grid, hand_batch(boxes, classes))[0])

    assert loss([A, B, C], [2, 0, 1]) == loss([A, B], [2, 0])
    assert loss([C, A, B], [1, 2, 0]) == loss([C, B], [1, 0])
    assert loss([C, A, B], [1, 2, 0]) != pytest.approx(loss([A, B], [2, 0]))


def test_yolo_loss_averages_over_images_and_leaves_out_padded_examples():
    one, _ = SMALL.loss({"grid": jnp.asarray(HAND_GRID)}, hand_batch([A, B], [2, 0]))
    grids = jnp.asarray(np.concatenate([HAND_GRID, HAND_GRID, HAND_GRID]))
    batch = hand_batch([A, B], [2, 0], images=3)
    batch["box_mask"][1] = False  # no object in image 1: its loss is its no-object term
    batch["mask"] = np.array([True, True, False])
    empty = 0.5 * float(np.sum(HAND_GRID[0, ..., [4, 9]] ** 2))
    loss, parts = SMALL.loss({"grid": grids}, batch)
    assert float(loss) == pytest.approx((float(one) + empty) / 2, rel=1e-6)
    assert float(parts["class"]) == pytest.approx(0.71 / 2, rel=1e-6)


def test_decoded_boxes_are_pixels_of_the_input_clipped_to_it():
    grid = np.zeros((1, 2, 2, 13), np.float32)
    grid[0, 1, 1, :4] = [0.5, 0.5, 1.0, 1.0]  # centre (12, 12), 16x16: clipped to (4, 4, 16, 16)
    grid[0, 0, 1, 5:9] = [0.25, 0.5, 0.5, 0.25]  # centre (10, 4), 4 wide, 1 tall
    boxes = decode_boxes(jnp.asarray(grid), 2, (16, 16))
    assert boxes.shape == (1, 2, 2, 2, 4)
    np.testing.assert_allclose(boxes[0, 1, 1, 0], [4, 4, 16, 16])
    np.testing.assert_allclose(boxes[0, 0, 1, 1], [8, 3.5, 12, 4.5])
    np.testing.assert_array_equal(boxes[0, 1, 0, 0], [0, 8, 0, 8])  # x = y = 0: the cell's corner


def detect_outputs():
    grid = np.zeros((2, 2, 2, 13), np.float32)  # image 1 predicts nothing
    # Cell (0, 0): box 0 (2, 2, 6, 6) confidence 0.9; box 1 (2, 1.12, 6, 6.88) confidence 0.8,
    # IoU 16 / 23.04 = 0.694 with box 0; p = (0.1, 0.8, 0.1).
    grid[0, 0, 0] = [0.5, 0.5, 0.5, 0.5, 0.9, 0.5, 0.5, 0.5, 0.6, 0.8, 0.1, 0.8, 0.1]
    # Cell (1, 1): box 0 (10, 10, 14, 14) confidence 0.5, p = (0.6, 0, 0.4); box 1 confidence 0.
    grid[0, 1, 1] = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0, 0.6, 0.0, 0.4]
    grid = jnp.asarray(grid)
    return {"grid": grid, "boxes": decode_boxes(grid, 2, (16, 16))}


def test_detect_scores_c_times_p_thresholds_and_suppresses_per_class_with_fixed_shapes():
    # Scores above 0.1: (box 0, class 1) 0.72, (box 1, class 1) 0.64, cell (1, 1) class 0 0.3 and
    # class 2 0.2 (the same box: other classes never suppress it); 0.09 and 0.08 fall below.
    model = YOLOv1(num_classes=3, grid_size=2, score_threshold=0.1, nms_iou=0.5, max_detections=5)
    out = jax.jit(model.detect)(detect_outputs())
    assert {k: v.shape for k, v in out.items()} == {
        "boxes": (2, 5, 4), "scores": (2, 5), "classes": (2, 5), "count": (2,)}
    assert out["classes"].dtype == jnp.int32 and out["count"].dtype == jnp.int32
    np.testing.assert_array_equal(out["count"], [3, 0])
    np.testing.assert_allclose(out["scores"][0], [0.72, 0.3, 0.2, 0, 0], rtol=1e-6)
    np.testing.assert_array_equal(out["classes"][0], [1, 0, 2, 0, 0])
    np.testing.assert_allclose(out["boxes"][0], [[2, 2, 6, 6], [10, 10, 14, 14], [10, 10, 14, 14],
                                                 [0, 0, 0, 0], [0, 0, 0, 0]], atol=1e-5)
    for key in ("boxes", "scores", "classes"):
        np.testing.assert_array_equal(out[key][1], 0)  # all padding


def test_detect_keeps_boxes_below_the_nms_iou_and_at_most_max_detections():
    loose = YOLOv1(num_classes=3, grid_size=2, score_threshold=0.1, nms_iou=0.7, max_detections=5)
    out = loose.detect(detect_outputs())
    assert int(out["count"][0]) == 4  # IoU 0.694 does not exceed 0.7
    np.testing.assert_allclose(out["scores"][0], [0.72, 0.64, 0.3, 0.2, 0], rtol=1e-6)
    np.testing.assert_allclose(out["boxes"][0, 1], [2, 1.12, 6, 6.88], atol=1e-5)
    two = YOLOv1(num_classes=3, grid_size=2, score_threshold=0.1, nms_iou=0.7, max_detections=2)
    out = two.detect(detect_outputs())
    np.testing.assert_array_equal(out["count"], [2, 0])
    np.testing.assert_allclose(out["scores"][0], [0.72, 0.64], rtol=1e-6)


def test_yolov1_small_outputs_the_grid_and_its_boxes_and_its_loss_reaches_every_parameter():
    model = create_model("yolov1_small")
    batch = synthetic_batch("detection", (64, 64, 1), 2, 10)
    x = jnp.asarray(batch["image"], jnp.float32) / 255.0
    variables = filled_variables(model, (64, 64, 1))

    def loss(params):
        out = model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(1)})
        return model.loss(out, batch)[0], out

    (value, out), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
    assert out["grid"].shape == (2, 8, 8, 20) and out["boxes"].shape == (2, 8, 8, 2, 4)
    assert leading_dims(out) == {2} and np.isfinite(float(value))
    zero = [jax.tree_util.keystr(p) for p, g in jax.tree_util.tree_leaves_with_path(grads)
            if not np.all(np.isfinite(g)) or not np.any(g)]
    assert not zero, zero
    assert np.all((out["boxes"] >= 0) & (out["boxes"] <= 64))


@pytest.fixture(scope="module")
def digit_scenes(shared_data):
    with np.load(shared_data / "mnist.npz") as d:
        digits, labels = d["x_train"][:200], d["y_train"][:200]
    scenes = render_scenes(digits, labels, 8, DigitSceneParams(), np.random.default_rng(0))
    box_mask = np.arange(4)[None, :] < scenes["num_boxes"][:, None]
    return {"image": scenes["image"], "boxes": scenes["boxes"], "classes": scenes["classes"],
            "box_mask": box_mask}


@pytest.mark.slow
def test_yolov1_small_overfits_eight_digit_scenes_and_detects_every_digit(digit_scenes):
    batch = digit_scenes
    model = create_model("yolov1_small", dropout_rate=0.0)
    x = jnp.asarray(batch["image"], jnp.float32) / 255.0
    params = jax.jit(model.init)(jax.random.key(0), x)["params"]
    tx = optax.adam(1e-3)

    @jax.jit
    def train_step(params, opt_state):
        value, grads = jax.value_and_grad(
            lambda p: model.loss(model.apply({"params": p}, x, train=True), batch)[0])(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    opt_state, values = tx.init(params), []
    for _ in range(40):
        params, opt_state, value = train_step(params, opt_state)
        values.append(float(value))
    assert values[-1] < values[0] / 100

    found = jax.jit(model.detect)(model.apply({"params": params}, x))
    for i in range(len(x)):
        real = batch["box_mask"][i]
        count = int(found["count"][i])
        iou = np.asarray(box_iou(batch["boxes"][i][real], found["boxes"][i][:count]))
        same_class = batch["classes"][i][real][:, None] == np.asarray(found["classes"][i][:count])
        assert np.all(np.any((iou > 0.5) & same_class, axis=1)), f"scene {i}: {iou}"

"""Tasks: the loss each config name selects, the metric sums, padding and ignored pixels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnn_jax import losses
from cnn_jax.config import base_config
from cnn_jax.errors import ConfigError
from cnn_jax.tasks import ClassificationTask, SegmentationTask, check_task, create_task
from cnn_jax.tasks.classification import LOSSES as CLASSIFICATION_LOSSES


class Spec:
    def __init__(self, name="x", targets=("label",), num_classes=4):
        self.name, self.targets, self.num_classes = name, targets, num_classes
        self.mean, self.std, self.ignore_index, self.input_key = (0.5,), (0.25,), 255, "image"


def _logits_and_labels(n=6, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(0, 2, (n, k)), jnp.float32), jnp.asarray(rng.integers(0, k, n))


@pytest.mark.parametrize("name", CLASSIFICATION_LOSSES)
def test_each_classification_loss_name_computes_its_definition(name):
    logits, labels = _logits_and_labels()
    task = ClassificationTask(mean=(0.0,), std=(1.0,), loss=name)
    loss, sums = task.train_loss(logits, {"label": labels})
    one_hot = jax.nn.one_hot(labels, 4)
    p = jax.nn.softmax(logits)
    expected = {
        "cross_entropy": -jnp.sum(one_hot * jax.nn.log_softmax(logits), axis=-1),
        "categorical_cross_entropy": -jnp.sum(one_hot * jnp.log(p), axis=-1),
        "mse": jnp.mean((p - one_hot) ** 2, axis=-1),
        "total_error": 0.5 * jnp.sum((p - one_hot) ** 2, axis=-1),
        "sigmoid_binary_cross_entropy": jnp.sum(losses.binary_cross_entropy(jax.nn.sigmoid(logits), one_hot),
                                                axis=-1),
        "focal": jnp.sum(losses.sigmoid_focal_loss(logits, one_hot), axis=-1),
    }[name]
    assert float(loss) == pytest.approx(float(jnp.mean(expected)), rel=1e-5)
    assert float(sums["loss"]) == pytest.approx(float(jnp.sum(expected)), rel=1e-5)
    assert float(sums["correct1"]) == float(jnp.sum(jnp.argmax(logits, -1) == labels))


def test_classification_eval_sums_skip_padding_and_smoothing():
    logits, labels = _logits_and_labels()
    task = ClassificationTask(mean=(0.0,), std=(1.0,), label_smoothing=0.1)
    mask = jnp.array([1, 1, 1, 1, 0, 0])
    sums = task.eval_sums(logits, {"label": labels, "mask": mask})
    plain = -jnp.sum(jax.nn.one_hot(labels, 4) * jax.nn.log_softmax(logits), axis=-1)
    assert float(sums["count"]) == 4
    assert float(sums["loss"]) == pytest.approx(float(jnp.sum(plain[:4])), rel=1e-6)


def _segmentation_batch(seed=0, n=3, h=5, w=7, k=4):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (n, h, w, k)).astype(np.float32)
    labels = rng.integers(0, k, (n, h, w)).astype(np.uint8)
    labels[0, 0, :] = 255
    return logits, labels


@pytest.mark.parametrize("weights", [(), (0.5, 1.0, 2.0, 4.0)])
def test_segmentation_training_loss_is_torchs_cross_entropy_with_ignore_index_and_weights(weights):
    logits, labels = _segmentation_batch()
    task = SegmentationTask(mean=(0.0,), std=(1.0,), num_classes=4, class_weights=weights)
    loss, sums = task.train_loss(jnp.asarray(logits), {"segmentation": jnp.asarray(labels)})
    expected = F.cross_entropy(torch.from_numpy(logits).permute(0, 3, 1, 2), torch.from_numpy(labels).long(),
                               weight=torch.tensor(weights) if weights else None, ignore_index=255)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert int(jnp.sum(sums["confusion"])) == labels.size - labels.shape[2]  # one ignored row


def test_segmentation_eval_counts_exclude_padding_examples_and_give_the_iou_of_the_confusion():
    logits, labels = _segmentation_batch(seed=1)
    task = SegmentationTask(mean=(0.0,), std=(1.0,), num_classes=4)
    sums = task.eval_sums(jnp.asarray(logits), {"segmentation": jnp.asarray(labels),
                                                "mask": jnp.array([1, 1, 0])})
    prediction = logits.argmax(-1)
    valid = np.zeros(labels.shape, bool)
    valid[:2] = labels[:2] != 255
    expected = np.zeros((4, 4), np.int64)
    np.add.at(expected, (labels[valid], prediction[valid]), 1)
    np.testing.assert_array_equal(np.asarray(sums["confusion"]), expected)
    metrics = task.summarize(jax.tree.map(jnp.add, task.zero_sums(), sums))
    assert metrics["count"] == int(valid.sum())
    assert metrics["pixel_accuracy"] == pytest.approx(np.trace(expected) / expected.sum())
    assert len(metrics["per_class_iou"]) == 4 and task.watch in metrics


def test_segmentation_focal_loss_ignores_ignored_pixels():
    logits, labels = _segmentation_batch(seed=2)
    task = SegmentationTask(mean=(0.0,), std=(1.0,), num_classes=4, loss="focal")
    loss, weight = task.pixel_loss(jnp.asarray(logits), jnp.asarray(labels))
    assert float(jnp.sum(loss[0, 0])) == 0.0 and float(jnp.sum(weight[0, 0])) == 0.0
    one_hot = jax.nn.one_hot(labels[1], 4)
    np.testing.assert_allclose(loss[1], jnp.sum(losses.sigmoid_focal_loss(logits[1], one_hot), -1), rtol=1e-6)


def test_a_task_refuses_a_dataset_without_its_targets_and_a_loss_it_does_not_take():
    config = base_config()
    config.task = "segmentation"
    with pytest.raises(ConfigError, match="needs segmentation targets"):
        check_task(config, Spec("mnist"))
    config.loss.name = "mse"
    with pytest.raises(ConfigError, match="loss.name='mse' is not a loss of task 'segmentation'"):
        check_task(config, Spec(targets=("segmentation",)))
    config.loss.name = "cross_entropy"
    config.loss.class_weights = (1.0, 2.0)
    with pytest.raises(ConfigError, match="one weight per class"):
        check_task(config, Spec(targets=("segmentation",), num_classes=4))
    config.task = "regression"
    with pytest.raises(ConfigError, match="task='regression' is not one of"):
        check_task(config, Spec())


def test_create_task_builds_the_configured_task():
    config = base_config()
    config.task, config.loss.class_weights = "segmentation", (1.0, 2.0, 1.0, 1.0)
    task = create_task(config, Spec(targets=("segmentation",)))
    assert isinstance(task, SegmentationTask) and task.num_classes == 4 and task.class_weights[1] == 2.0
    assert isinstance(create_task(base_config(), Spec()), ClassificationTask)


def test_the_overlay_palette_is_pascal_vocs_and_background_stays_the_image():
    from cnn_jax.tasks.overlay import overlay, palette

    colours = palette(21)
    assert colours[0].tolist() == [0, 0, 0] and colours[1].tolist() == [128, 0, 0]
    assert colours[2].tolist() == [0, 128, 0] and colours[15].tolist() == [192, 128, 128]
    image = np.full((2, 2, 1), 100, np.uint8)
    out = overlay(image, np.array([[0, 1], [2, 0]]), alpha=0.5)
    assert out[0, 0].tolist() == [100, 100, 100] and out[0, 1].tolist() == [114, 50, 50]


def test_segmentation_show_writes_the_predicted_classes_beside_the_input(tmp_path):
    from PIL import Image

    task = SegmentationTask(mean=(0.0,), std=(1.0,), num_classes=3)
    logits = np.zeros((4, 4, 3), np.float32)
    logits[:2, :, 2] = 5.0
    line = task.show(np.zeros((4, 4, 1), np.uint8), logits, str(tmp_path / "scene.png"), ["bg", "a", "b"])
    written = np.asarray(Image.open(tmp_path / "scene.segmentation.png"))
    assert line.endswith("(b)") and written.shape == (4, 4, 3)
    assert written[0, 0].tolist() != [0, 0, 0] and written[3, 3].tolist() == [0, 0, 0]


@pytest.mark.parametrize("name", ["mse", "ead", "mlnet", "kl_divergence", "bhattacharyya"])
def test_saliency_loss_is_the_named_loss_of_the_sigmoid_of_the_logits_per_image(name):
    from cnn_jax.tasks import SaliencyTask

    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(0, 2, (3, 8, 8, 1)), jnp.float32)
    density = jnp.asarray(rng.random((3, 8, 8)), jnp.float32)
    task = SaliencyTask(mean=(0.0,), std=(1.0,), loss=name)
    loss, sums = task.train_loss(logits, {"saliency": density})
    fn = losses.mlnet_loss if name == "mlnet" else getattr(losses, name)
    expected = fn(jax.nn.sigmoid(logits[..., 0]), density)
    assert float(loss) == pytest.approx(float(jnp.mean(expected)), rel=1e-6)
    assert float(sums["count"]) == 3


def test_saliency_evaluation_scores_the_real_images_only_with_the_benchmark_metrics():
    from cnn_jax.metrics.saliency import cc
    from cnn_jax.tasks import SaliencyTask

    rng = np.random.default_rng(1)
    density = rng.random((3, 8, 8)).astype(np.float32)
    fixations = (rng.random((3, 8, 8)) > 0.8).astype(np.uint8)
    logits = np.log(density / (1 - density + 1e-6) + 1e-6)  # sigmoid(logits) ~ density
    task = SaliencyTask(mean=(0.0,), std=(1.0,))
    batch = {"saliency": density, "fixations": fixations, "mask": np.array([1, 1, 0])}
    gathered = jax.device_get(task.host_outputs(jnp.asarray(logits), batch))
    metrics = task.host_metrics(gathered)
    assert metrics["cc"] == pytest.approx(np.mean([cc(gathered["prediction"][i], density[i]) for i in (0, 1)]))
    assert metrics["cc"] > 0.99 and task.watch_score(metrics) == metrics["cc"]
    assert float(task.eval_sums(jnp.asarray(logits), batch)["count"]) == 2


def test_localization_show_draws_the_predicted_box_with_its_class_and_probability(tmp_path):
    from PIL import Image

    from cnn_jax.tasks import LocalizationTask

    task = LocalizationTask(mean=(0.0,), std=(1.0,))
    outputs = {"logits": np.array([0.0, 3.0, 0.0], np.float32),
               "box": np.array([2.0, 3.0, 28.0, 30.0], np.float32)}
    line = task.show(np.zeros((32, 32, 1), np.uint8), outputs, str(tmp_path / "digit.png"),
                     ["zero", "one", "two"])
    written = np.asarray(Image.open(tmp_path / "digit.detections.png"))
    # softmax(0, 3, 0)[1] = e^3 / (e^3 + 2) = 0.91
    assert "one 0.91" in line and "[2.0, 3.0, 28.0, 30.0]" in line
    # the outline at the box's corner, the inside (below the label) left as it was
    assert written[3, 2].tolist() != [0, 0, 0] and written[25, 15].tolist() == [0, 0, 0]


def test_reconstruction_and_vae_show_the_input_beside_its_reconstruction(tmp_path):
    from PIL import Image

    from cnn_jax.tasks import ReconstructionTask, VAETask

    image = np.zeros((4, 4, 1), np.uint8)
    image[:2] = 255
    logits = np.where(image > 0, 20.0, -20.0).astype(np.float32)  # sigmoid: the image itself
    line = ReconstructionTask(mean=(0.0,), std=(1.0,)).show(image, logits, str(tmp_path / "a.png"))
    pair = np.asarray(Image.open(tmp_path / "a.reconstruction.png"))
    assert pair.shape == (4, 8, 3) and np.array_equal(pair[:, :4], pair[:, 4:])
    assert line.endswith("(pixel MSE 0.0000)")
    line = VAETask(mean=(0.0,), std=(1.0,)).show(image, {"logits": -logits}, str(tmp_path / "b.png"))
    assert line.endswith("(pixel MSE 1.0000)")  # every pixel reconstructed as its opposite


def test_a_gan_run_predicts_nothing_from_an_image_file_and_says_where_its_outputs_are():
    from cnn_jax.tasks import GANTask

    with pytest.raises(ConfigError, match="predicts nothing from an image file.*samples/"):
        GANTask(mean=(0.0,), std=(1.0,)).show(np.zeros((4, 4, 1), np.uint8), None, "x.png")


def test_a_mask_rcnn_run_is_evaluated_on_masks_and_a_faster_rcnn_run_on_boxes():
    from cnn_jax.data.catalog import get_dataset_spec

    c = base_config()
    c.task = "detection"
    c.data.name = "digit_scenes"
    spec = get_dataset_spec(c.data.name)
    for name, masks in (("maskrcnn_resnet18_fpn", True), ("fasterrcnn_resnet18_fpn", False)):
        c.model.name = name
        assert create_task(c, spec).masks is masks

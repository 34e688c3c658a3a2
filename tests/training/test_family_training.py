"""One short real training run per model family on real CIFAR-10 images: the training loss falls.

Each run is the whole trainer (`train_and_evaluate`: tfds import, Grain pipeline, jitted steps,
checkpoints, final test evaluation) on the first 64 training images of the JPEG-degraded
CIFAR-10 in ../shared/data, with batch 32 and one logged training loss per epoch. Training on
the same 64 images for a few epochs must bring the epoch loss down to less than half its first
value: a model whose gradients do not reach its parameters, or that cannot fit 64 images, fails.

The criterion is the best epoch's loss, not the last: with Adam at a constant rate the loss of
64 images wobbles from epoch to epoch (GoogLeNet: 1.13 then 1.18), and BatchNorm over 32 images
turns each CPU's rounding into its own trajectory (oneDNN picks other kernels on other CPUs), so
which epoch is last to dip is chance while the trend is not.

The runs are compile-bound on CPU (DenseNet-121's init and train step take about a minute to
compile), hence `slow`. AlexNet needs at least 63x63 inputs and CIFAR images are read at their
native 32x32 only, so its run reads the same CIFAR JPEG files from an ImageFolder tree, which the
pipeline resizes to 64x64. The 4096-wide torchvision classifier of VGG repeats the 1x1 map of a
32x32 image 49 times (adaptive pool to 7x7); the VGG run uses the 512-wide CIFAR head of
configs/cifar10_vgg16.py instead.
"""

import dataclasses
import json

import numpy as np
import pytest

from cnn_jax.config import base_config
from cnn_jax.models import get_model_spec, list_models
from cnn_jax.training.loop import train_and_evaluate

TRAIN_IMAGES = 64
TEST_IMAGES = 100
BATCH = 32  # two steps per epoch, logged once per epoch


@dataclasses.dataclass(frozen=True)
class ShortRun:
    epochs: int
    lr: float = 1e-3  # Adam, constant
    kwargs: tuple = ()  # model.kwargs items
    image_size: int = 0  # > 0: read the CIFAR JPEGs from an ImageFolder tree at this size


# One model of every registry family, with epochs (and a learning rate) such that the best
# epoch's loss is at most a third of the first under every rounding measured, so that the asserted
# half is met with a factor of >= 1.5. Measured best/first ratios, as the test prints them
# (`pytest -m slow -s tests/training/test_family_training.py`), with oneDNN's convolutions (the
# default) / XLA's (CNN_JAX_ONEDNN=0) / oneDNN's AVX2 kernels instead of its AVX-512 ones
# (ONEDNN_MAX_CPU_ISA=AVX2: another CPU's rounding); one number where all three agree to 0.01 (the
# models without BatchNorm give the same losses under all three):
#   mlp_300_100 0.10, lenet5_modern 0.25, alexnet 0.27, vgg11_bn 0.27/0.27/0.27,
#   googlenet 0.22/0.22/0.17, resnet20 0.29, resnet18 0.05, densenet121 0.29/0.29/0.28,
#   mobilenet_v1_025 0.13/0.17/0.08, yolov1_small_classifier 0.15 (12 epochs at lr 3e-3; 8 epochs at
#   3e-3: 0.35, at 1e-3: 0.64; the six-convolution trunk of 9eafb13, 55k parameters, learns
#   slower than the old 202k).
# MobileNetV2 passes too (8 epochs at lr 3e-3, 0.18) but is left out: its compilation would add
# about 40 s to the file.
RUNS = {
    "mlp_300_100": ShortRun(epochs=6),
    "lenet5_modern": ShortRun(epochs=8, lr=2e-3),
    # Without its dropout, and at lr 1e-5: at 1e-4 or 1e-3 Adam's first steps blow the loss up
    # (to 8-45) and it then falls back to chance, halving a blown-up loss without fitting.
    "alexnet": ShortRun(epochs=9, lr=1e-5, image_size=64, kwargs=(("dropout_rate", 0.0),)),
    # The 512-wide head of configs/cifar10_vgg16.py, without its dropout so that 64 images are fitted
    # in a few steps.
    "vgg11_bn": ShortRun(epochs=6, kwargs=(("pooled_size", 1), ("hidden_sizes", (512, 512)),
                                           ("dropout_rate", 0.0))),
    # (6 epochs: 0.48/0.42/0.43 here, and the last epoch 0.52 on an Intel Xeon.)
    "googlenet": ShortRun(epochs=12),
    "resnet20": ShortRun(epochs=6),
    "resnet18": ShortRun(epochs=3),
    "densenet121": ShortRun(epochs=3),
    # At 32x32 the ImageNet strides leave MobileNet a 1x1 map; it fits more slowly than the others,
    # and its epoch losses wobble most (0.17 of the first, 0.22, 0.34, then 0.13).
    "mobilenet_v1_025": ShortRun(epochs=24, lr=3e-3),
    # YOLOv1's pretraining network (its detector trains in tests/models/test_yolo.py), with
    # BatchNorm as configs/digits_yolov1.py:pretrain has it.
    "yolov1_small_classifier": ShortRun(epochs=12, lr=3e-3, kwargs=(("batch_norm", True),)),
}


def _cifar_slice(path, n_train: int, n_test: int) -> dict:
    """The first images of cifar10_jpeg.npz: JPEG bytes cut at the offsets, offsets kept."""
    out = {}
    with np.load(path) as z:
        for split, n in (("train", n_train), ("test", n_test)):
            offsets = z[f"{split}_offsets"][: n + 1]
            out[f"{split}_jpeg"] = z[f"{split}_jpeg"][: offsets[-1]]
            out[f"{split}_offsets"] = offsets
            out[f"y_{split}"] = z[f"y_{split}"][:n]
    return out


@pytest.fixture(scope="session")
def cifar_slice(shared_data, tmp_path_factory):
    """(tfds data_dir holding the CIFAR-10 slice, ImageFolder root holding the same JPEG files)."""
    from cnn_jax.data import import_local

    root = tmp_path_factory.mktemp("cifar_slice")
    arrays = _cifar_slice(shared_data / "cifar10_jpeg.npz", TRAIN_IMAGES, TEST_IMAGES)
    np.savez(root / "cifar10_jpeg.npz", **arrays)
    data_dir = root / "tfds"
    assert import_local("cifar10", root / "cifar10_jpeg.npz", data_dir) == {
        "train": TRAIN_IMAGES, "test": TEST_IMAGES}
    folder = root / "folder"
    for split, source in (("train", "train"), ("val", "test")):
        blob, offsets, labels = (arrays[f"{source}_jpeg"], arrays[f"{source}_offsets"],
                                 arrays[f"y_{source}"])
        for i, label in enumerate(labels):
            target = folder / split / f"class{int(label)}"
            target.mkdir(parents=True, exist_ok=True)
            (target / f"{i:05d}.jpg").write_bytes(blob[offsets[i]:offsets[i + 1]].tobytes())
    return data_dir, folder


def _config(model: str, run: ShortRun, data_dir, folder):
    c = base_config()
    if run.image_size:
        c.data.name = f"folder:{folder}"
        c.data.image_size = run.image_size
        c.data.eval_resize = 0  # resize the 32x32 image straight to image_size
    else:
        c.data.name = "cifar10"
        c.data.data_dir = str(data_dir)
    c.data.val_size = 0
    c.model.name = model
    for key, value in run.kwargs:
        c.model.kwargs[key] = value
    c.num_epochs = run.epochs
    c.batch_size = BATCH
    c.eval_batch_size = TEST_IMAGES
    c.optimizer.name = "adam"
    c.optimizer.lr = run.lr
    c.optimizer.schedule = "constant"
    c.log_every_steps = TRAIN_IMAGES // BATCH
    c.keep_checkpoints = 1
    c.progress_bar = False
    return c


# Families that classify, but not images of the CIFAR kind: clips (C3D, R(2+1)D) and pixel
# sequences (TCN). Their forward/backward, causality and parity tests are in tests/models; the
# other tasks' families train in tests/tasks.
NOT_IMAGE_CLASSIFIERS = {"c3d", "r3d", "tcn"}


def test_every_registered_image_classifier_family_has_a_short_training_run():
    registered = {get_model_spec(name).family for name in list_models()
                  if get_model_spec(name).task == "classification"} - NOT_IMAGE_CLASSIFIERS
    assert {get_model_spec(name).family for name in RUNS} == registered


@pytest.mark.slow
@pytest.mark.parametrize("model", list(RUNS))
def test_short_training_run_on_cifar10_more_than_halves_the_training_loss(model, cifar_slice, tmp_path):
    run = RUNS[model]
    results = train_and_evaluate(_config(model, run, *cifar_slice), tmp_path)
    assert results["status"] == "finished" and results["steps"] == run.epochs * TRAIN_IMAGES // BATCH
    assert results["test"]["count"] == TEST_IMAGES
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["split"] == "train"]
    assert len(losses) == run.epochs and all(np.isfinite(losses))
    print(f"{model}: best/first epoch loss {min(losses) / losses[0]:.2f}")
    assert min(losses) < 0.5 * losses[0], f"{model}: epoch losses {np.round(losses, 3).tolist()}"

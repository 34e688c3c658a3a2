"""The shipped ImageNet configs load, validate against the registry, the catalogue and the data
options, and carry the papers' hyperparameters their headers cite."""

from pathlib import Path

import pytest

from cnn_jax.config import load_config
from cnn_jax.data.pipeline import dataset_spec_from_config
from cnn_jax.training.validate import validate_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# name: (model, epochs, batch, optimizer, lr, weight decay, schedule, decay epochs, crop size)
PAPER_RECIPES = {
    "imagenet_resnet50.py": ("resnet50", 90, 256, "sgd", 0.1, 1e-4, "step", (30, 60, 80), 224),
    "imagenet_vgg16.py": ("vgg16", 74, 256, "sgd", 1e-2, 5e-4, "step", (30, 50, 65), 224),
    "imagenet_mobilenet_v1.py": ("mobilenet_v1", 120, 256, "rmsprop", 0.045, 4e-5, "step",
                              tuple(range(2, 120, 2)), 224),
    "imagenet_alexnet.py": ("alexnet_lrn", 90, 128, "sgd", 0.01, 5e-4, "step", (30, 60, 80), 227),
    "imagenet_googlenet.py": ("googlenet", 90, 256, "sgd", 0.1, 1e-4, "step", (30, 60, 80), 224),
    "imagenet_densenet121.py": ("densenet121", 90, 256, "sgd", 0.1, 1e-4, "step", (30, 60), 224),
    # Large batches (Goyal et al. 2017): lr is the rate per 256 images, scaled linearly
    # (tests/training/test_large_batch.py checks the scaled schedule).
    "imagenet_resnet50.py:1024": ("resnet50", 90, 1024, "sgd", 0.1, 1e-4, "step", (30, 60, 80), 224),
    "imagenet_resnet50.py:4096": ("resnet50", 90, 4096, "sgd", 0.1, 1e-4, "step", (30, 60, 80), 224),
}


def test_every_shipped_imagenet_config_is_listed_here():
    assert sorted(p.name for p in CONFIGS.glob("imagenet_*.py")) == sorted({s.split(":")[0] for s in PAPER_RECIPES})


@pytest.mark.parametrize("name", sorted(PAPER_RECIPES))
def test_imagenet_config_loads_validates_and_follows_its_recipe(name):
    config = load_config(f"{CONFIGS}/{name}")
    validate_config(config, num_devices=1)
    model, epochs, batch, optimizer, lr, wd, schedule, decay_epochs, crop = PAPER_RECIPES[name]
    assert config.model.name == model
    assert (config.num_epochs, config.batch_size) == (epochs, batch)
    assert (config.optimizer.name, config.optimizer.schedule) == (optimizer, schedule)
    assert config.optimizer.lr == pytest.approx(lr) and config.optimizer.weight_decay == pytest.approx(wd)
    assert tuple(config.optimizer.decay_epochs) == decay_epochs
    assert config.optimizer.momentum == 0.9
    data = config.data
    assert data.name == "imagenet2012" and not data.cache and data.eval_resize == 256
    assert data.augment.random_resized_crop and data.augment.horizontal_flip
    spec = dataset_spec_from_config(data)
    assert spec.image_shape == (crop, crop, 3) and spec.num_classes == 1000
    header = (CONFIGS / name.split(":")[0]).read_text().split('"""')[1]
    assert f"cnn-jax train --config configs/{name}" in header and "Table" in header


def test_imagenet_config_runs_on_an_imagefolder_copy_by_overriding_the_name(shared_data):
    config = load_config(CONFIGS / "imagenet_resnet50.py",
                         [f"data.name=folder:{shared_data / 'imagenette_sample'}"])
    validate_config(config, num_devices=1)
    spec = dataset_spec_from_config(config.data)
    assert spec.num_classes == 10 and spec.image_shape == (224, 224, 3)

"""The segmentation results' configs and scripts: each config trains the model, task and data it
names, and each script of experiments/ runs end to end (--smoke) and reports every row it promises.

The smoke runs train on a few hundred generated scenes of a 1,024/500 slice of MNIST (or the
nuclei image's tiles) for an epoch or two, so only the shape of what they report is checked here,
not the bars (the full runs' results files in experiments/results/ hold those).
"""

import numpy as np
import pytest
from conftest import REPO_ROOT
from experiment_scripts import script, smoke

from cnn_jax.config import load_config
from cnn_jax.recipes import DIGIT_SCENES_SEGMENTATION
from cnn_jax.training.validate import validate_config

pytestmark = pytest.mark.usefixtures("fast_compilation")
EXPERIMENTS = REPO_ROOT / "experiments"


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------
# spec: (model, data)
CONFIGS = {
    "digits_fcn.py:32s": ("fcn32s", DIGIT_SCENES_SEGMENTATION),
    "digits_fcn.py:16s": ("fcn16s", DIGIT_SCENES_SEGMENTATION),
    "digits_fcn.py:8s": ("fcn8s", DIGIT_SCENES_SEGMENTATION),
    "digits_unet.py": ("unet", DIGIT_SCENES_SEGMENTATION),
    "digits_deeplab.py": ("deeplabv3_resnet50", DIGIT_SCENES_SEGMENTATION),
    "nuclei_unet.py": ("unet", "nuclei_dsb2018"),
}
HEADER_COMMANDS = ("digits_fcn.py:8s", "digits_unet.py", "digits_deeplab.py", "nuclei_unet.py")


@pytest.mark.parametrize("spec", list(CONFIGS))
def test_segmentation_configs_name_their_task_model_and_data(spec):
    config = load_config(f"{REPO_ROOT}/configs/{spec}")
    assert (config.task, config.model.name, config.data.name) == ("segmentation", *CONFIGS[spec])
    assert not config.data.augment.horizontal_flip or spec.startswith("nuclei")  # a flipped digit is not one
    validate_config(config, num_devices=1)


@pytest.mark.parametrize("spec", HEADER_COMMANDS)
def test_segmentation_configs_give_their_command(spec):
    header = (REPO_ROOT / "configs" / spec.split(":")[0]).read_text().split('"""')[1]
    assert f"cnn-jax train --config configs/{spec}" in header


def test_digit_segmenters_share_data_recipe_and_epochs():
    """digits_segmenters.py compares the three models on one recipe: only the model differs."""
    configs = [load_config(f"{REPO_ROOT}/configs/{s}").to_dict()
               for s in ("digits_fcn.py:8s", "digits_unet.py", "digits_deeplab.py")]
    for c in configs:
        c.pop("model")
    assert configs[0] == configs[1] == configs[2]
    variants = [load_config(f"{REPO_ROOT}/configs/digits_fcn.py:{v}").to_dict() for v in ("32s", "16s", "8s")]
    assert [v["model"].pop("name") for v in variants] == ["fcn32s", "fcn16s", "fcn8s"]
    assert variants[0] == variants[1] == variants[2]


# --------------------------------------------------------------------------------------------
# Pieces of the scripts
# --------------------------------------------------------------------------------------------
def test_fcn_verdict_checks_the_papers_order_and_the_bar():
    verdict = script("fcn_skips").verdict
    order, bar = verdict({"32s": 0.5, "16s": 0.7, "8s": 0.85})
    assert "holds (0.5000, 0.7000, 0.8500)" in order and "NOT" not in order
    assert bar == "FCN-8s mean IoU 0.8500 >= 0.8 (the bar is met)."
    order, bar = verdict({"32s": 0.5, "16s": 0.8, "8s": 0.79})
    assert "does NOT hold" in order and "(the bar is NOT met)" in bar


def test_otsu_threshold_splits_two_grey_levels_between_them_and_maximises_the_between_class_variance():
    module = script("nuclei_unet")
    assert module.otsu_threshold(np.array([0, 0, 0, 10, 10, 10])) == 0.0  # classes <= t and > t
    values = np.random.default_rng(0).integers(0, 256, 1000)
    t = module.otsu_threshold(values)

    def between(threshold):
        low, high = values <= threshold, values > threshold
        return low.mean() * high.mean() * (values[low].mean() - values[high].mean()) ** 2

    assert all(between(t) >= between(u) - 1e-9 for u in np.unique(values)[:-1])
    assert module.iou(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool)) == pytest.approx(1 / 3)


# --------------------------------------------------------------------------------------------
# Scripts
# --------------------------------------------------------------------------------------------
@pytest.mark.slow  # about a minute on 2 cores (three FCNs compile): CI runs it with -m slow
def test_fcn_skips_smoke_gives_each_fcn_its_mean_iou_and_stride_ceiling(small_data_dir, tmp_path):
    payload = smoke("fcn_skips", small_data_dir, tmp_path, "--seeds", "0")
    (table,) = payload["tables"]
    assert set(payload["means"]) == {"32s", "16s", "8s"} and payload["verdict"] == []
    assert {int(s) for s in payload["ceilings"]} == {32, 16, 8}
    assert all(0.0 <= v <= 1.0 for v in payload["ceilings"].values())
    assert [r[0] for r in table["rows"]] == ["FCN-32s", "FCN-16s", "FCN-8s"]
    assert [r[-1] for r in table["rows"]] == ["59.4", "62.4", "62.7"]
    for variant, summaries in payload["runs"].items():
        (summary,) = summaries
        assert summary["name"] == f"fcn{variant}_seed0" and summary["results"]["epochs"] == 1
        assert 0.0 <= summary["results"]["test"]["mean_iou"] <= 1.0


@pytest.mark.slow  # about a minute on 2 cores: CI runs it with -m slow
def test_digits_segmenters_smoke_gives_each_model_its_size_and_mean_iou(small_data_dir, tmp_path):
    payload = smoke("digits_segmenters", small_data_dir, tmp_path)
    (table,) = payload["tables"]
    assert [r[0] for r in table["rows"]] == ["FCN-8s", "U-Net", "DeepLabV3 (dilated ResNet)"]
    for row in table["rows"]:
        assert 0.0 <= float(row[2]) <= 1.0 and int(row[4].replace(",", "")) > 0 and row[5].endswith(" M")
    assert all(len(runs) == 1 for runs in payload["runs"].values())


@pytest.mark.slow  # about a minute on 2 cores: CI runs it with -m slow
def test_nuclei_unet_smoke_puts_the_unet_beside_otsu(tmp_path):
    payload = smoke("nuclei_unet", tmp_path / "tfds", tmp_path)  # imports the image there
    (table,) = payload["tables"]
    (unet,) = payload["unet_foreground_iou"]
    assert 0.0 <= unet <= 1.0 and 0.0 < payload["otsu"]["foreground_iou"] < 1.0
    assert [r[0].split(" (")[0] for r in table["rows"]] == ["U-Net", "global Otsu threshold"]
    assert payload["verdict"] == []

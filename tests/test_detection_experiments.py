"""The detection results' configs and scripts: each config trains the model, task and data it
names, and each script of experiments/ runs end to end (--smoke) and reports every row it promises.

The smoke runs train on a few hundred generated scenes of a 1,024/500 slice of MNIST for one
epoch, so only the shape of what they report is checked here, not the bars (the full runs' results
files in experiments/results/ hold those).
"""

import json

import numpy as np
import pytest
from conftest import REPO_ROOT
from experiment_scripts import script, smoke

from cnn_jax.config import load_config
from cnn_jax.data import dataset_spec_from_config
from cnn_jax.tasks import create_task
from cnn_jax.training.validate import validate_config

pytestmark = pytest.mark.usefixtures("fast_compilation")
EXPERIMENTS = REPO_ROOT / "experiments"
COCO_KEYS = {"AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100",
             "AR_small", "AR_medium", "AR_large"}
BREAKDOWN_KEYS = {"found50", "found_class50", "top_class50"}  # error_breakdown at IoU 0.5


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------
# spec: (task, model, data)
CONFIGS = {
    "digits_localizer.py": ("localization", "localizer_resnet18", "digit_scenes_single"),
    "digits_yolov1.py": ("detection", "yolov1_small", "digit_scenes/train_size=24000"),
    "digits_yolov1.py:pretrain": ("classification", "yolov1_small_classifier", "digit_scenes_single"),
    "digits_retinanet.py:focal": ("detection", "retinanet_resnet18_fpn", "digit_scenes"),
    "digits_retinanet.py:bce": ("detection", "retinanet_resnet18_fpn", "digit_scenes"),
    "digits_fasterrcnn.py": ("detection", "fasterrcnn_resnet18_fpn", "digit_scenes/train_size=24000"),
    "digits_maskrcnn.py": ("detection", "maskrcnn_resnet18_fpn", "digit_scenes"),
}


@pytest.mark.parametrize("spec", list(CONFIGS))
def test_detection_configs_name_their_task_model_and_data_and_give_their_command(spec):
    config = load_config(f"{REPO_ROOT}/configs/{spec}")
    assert (config.task, config.model.name, config.data.name) == CONFIGS[spec]
    assert config.data.val_size == 1_000  # held out of the training scenes: picks the best
    assert not config.data.augment.horizontal_flip  # a flipped digit is not a digit
    validate_config(config, num_devices=1)
    header = (REPO_ROOT / "configs" / spec.split(":")[0]).read_text().split('"""')[1]
    assert f"cnn-jax train --config configs/{spec}" in header


def test_retinanet_variants_are_lin_et_al_table_1_best_focal_and_best_balanced_ce():
    kwargs = {v: load_config(f"{REPO_ROOT}/configs/digits_retinanet.py:{v}").model.kwargs
              for v in ("focal", "bce")}
    assert (kwargs["focal"].focal_gamma, kwargs["focal"].focal_alpha) == (2.0, 0.25)  # Table 1b
    assert (kwargs["bce"].focal_gamma, kwargs["bce"].focal_alpha) == (0.0, 0.75)  # Table 1a
    a, b = (load_config(f"{REPO_ROOT}/configs/digits_retinanet.py:{v}") for v in ("focal", "bce"))
    for c in (a, b):  # nothing else differs
        c.model.kwargs.focal_gamma = c.model.kwargs.focal_alpha = 0.0
    assert a.to_dict() == b.to_dict()
    with pytest.raises(ValueError, match="variant"):
        load_config(f"{REPO_ROOT}/configs/digits_retinanet.py:ce")


def test_yolov1_config_trades_dropout_for_batch_norm_and_starts_from_small_weights():
    config = load_config(f"{REPO_ROOT}/configs/digits_yolov1.py")
    assert config.model.kwargs.kernel_init == "lecun_normal"
    # YOLOv2's change (Redmon & Farhadi 2017 §2): BatchNorm on every convolution, dropout off.
    assert config.model.kwargs.batch_norm is True and config.model.kwargs.dropout_rate == 0.0
    assert 0 < config.data.augment.translate <= 0.2 and 0 < config.data.augment.zoom <= 0.2


def test_yolov1_detects_from_the_convolutions_of_its_pretraining_stage():
    import re

    detect = load_config(f"{REPO_ROOT}/configs/digits_yolov1.py")
    pretrain = load_config(f"{REPO_ROOT}/configs/digits_yolov1.py:pretrain")
    # the workdir `cnn-jax train` gives the :pretrain stage when --workdir is left out
    assert detect.init.checkpoint == "runs/digits_yolov1_pretrain"
    for path, loaded in (("conv1/kernel", True), ("bn7/scale", True), ("fc1/kernel", False),
                         ("fc2/bias", False), ("classifier/kernel", False)):
        assert (re.search(detect.init.exclude_regex, path) is None) == loaded, path
    assert detect.model.kwargs.batch_norm == pretrain.model.kwargs.batch_norm  # same layers
    assert detect.model.kwargs.kernel_init == pretrain.model.kwargs.kernel_init
    assert not pretrain.init.checkpoint


def test_maskrcnn_and_fasterrcnn_share_everything_but_the_mask_head_the_scenes_and_the_epochs():
    faster = load_config(f"{REPO_ROOT}/configs/digits_fasterrcnn.py").to_dict()
    mask = load_config(f"{REPO_ROOT}/configs/digits_maskrcnn.py").to_dict()
    assert (faster["model"].pop("name"), mask["model"].pop("name")) == (
        "fasterrcnn_resnet18_fpn", "maskrcnn_resnet18_fpn")
    assert (faster["data"].pop("name"), mask["data"].pop("name")) == (
        "digit_scenes/train_size=24000", "digit_scenes")
    assert faster.pop("num_epochs") > mask.pop("num_epochs")
    assert faster == mask


def test_maskrcnn_run_is_evaluated_with_masks():
    config = load_config(f"{REPO_ROOT}/configs/digits_maskrcnn.py")
    spec = dataset_spec_from_config(config.data)
    assert create_task(config, spec).masks  # mask_AP, mask_AP50, ... in the test results


# --------------------------------------------------------------------------------------------
# Scripts
# --------------------------------------------------------------------------------------------
def test_detection_runs_smoke_overrides_keep_each_runs_own_scenes():
    module = script("detection_runs")
    single = module.smoke_overrides("configs/digits_localizer.py")
    assert single[0] == "data.name=digit_scenes_single/train_size=256,test_size=64"
    # The configs' own train_size (24,000) gives way to the smoke size rather than repeat.
    for config in ("configs/digits_yolov1.py", "configs/digits_fasterrcnn.py",
                   "configs/digits_maskrcnn.py"):
        assert module.smoke_overrides(config)[0] == \
            "data.name=digit_scenes/train_size=256,test_size=64"


def test_detection_runs_keep_from_takes_the_other_runs_and_says_whence(tmp_path):
    module = script("detection_runs")
    summary = {"name": "x", "results": {"test": {"AP50": 0.9}}, "wall_seconds": 60.0}
    old = {"file": "older.json", "date": "2026-12-01 10:00:00 UTC", "cnn_jax_commit": "aaaaaaa"}
    record = {"experiment": "detection_runs", "smoke": False, "date": "2026-12-05 22:41:54 UTC",
              "cnn_jax_commit": "784f802", "mask_ceiling": {"mask_AP": 0.47, "mask_AP50": 0.93},
              "runs": {"localizer": summary, "yolov1": summary,
                       "fasterrcnn": {**summary, "kept_from": old}, "maskrcnn": summary}}
    path = tmp_path / "detection_runs.json"
    path.write_text(json.dumps(record))
    runs, ceiling, note = module.kept_runs(str(path), ["localizer", "fasterrcnn", "maskrcnn"])
    assert list(runs) == ["localizer", "fasterrcnn", "maskrcnn"]
    assert runs["localizer"]["kept_from"]["cnn_jax_commit"] == "784f802"
    assert runs["fasterrcnn"]["kept_from"] == old  # kept twice: still the record that trained it
    assert ceiling == record["mask_ceiling"]
    assert note == (f"Not trained in this sitting: localizer, maskrcnn, whose rows and wall times "
                    f"are those of {path} of 2026-12-05 22:41:54 UTC at cnn_jax 784f802; "
                    "fasterrcnn, whose rows and wall times are those of older.json of "
                    "2026-12-01 10:00:00 UTC at cnn_jax aaaaaaa.")
    assert module.kept_runs(str(path), ["localizer"])[1] is None  # no Mask R-CNN, no ceiling
    with pytest.raises(SystemExit, match="add yolov1 to --runs"):
        module.kept_runs(str(_without(path, tmp_path, "yolov1")), ["yolov1"])
    path.write_text(json.dumps({**record, "smoke": True}))
    with pytest.raises(SystemExit, match="not the results file of a full"):
        module.kept_runs(str(path), ["localizer"])
    with pytest.raises(SystemExit, match="cannot read it"):
        module.kept_runs(str(tmp_path / "absent.json"), ["localizer"])


def _without(path, tmp_path, name):
    record = json.loads(path.read_text())
    del record["runs"][name]
    out = tmp_path / f"without_{name}.json"
    out.write_text(json.dumps(record))
    return out


@pytest.mark.slow  # a few minutes on 2 cores (four detectors compile): CI runs it with -m slow
def test_detection_runs_smoke_reports_each_metric_against_its_bar(small_data_dir, tmp_path, capsys):
    payload = smoke("detection_runs", small_data_dir, tmp_path)
    assert list(payload["runs"]) == ["localizer", "yolov1", "fasterrcnn", "maskrcnn"]
    table, misses = payload["tables"]
    assert [r[0] for r in misses["rows"]] == [
        "YOLOv1-small", "Faster R-CNN (ResNet-18-FPN)", "Mask R-CNN (ResNet-18-FPN)"]
    # found with its class <= found (any class); the best box's class right <= found
    assert all(float(r[3]) <= float(r[2]) and float(r[4]) <= float(r[2]) for r in misses["rows"])
    rows = [(r[0], r[2], r[4], r[5]) for r in table["rows"]]
    assert rows == [
        ("Localiser (ResNet-18)", "class accuracy", ">= 0.98", "-"),
        ("Localiser (ResNet-18)", "box mean IoU", ">= 0.8", "-"),
        ("YOLOv1-small", "AP50", ">= 0.9", "-"), ("YOLOv1-small", "COCO AP", "-", "-"),
        ("Faster R-CNN (ResNet-18-FPN)", "AP50", ">= 0.9", "-"),
        ("Faster R-CNN (ResNet-18-FPN)", "COCO AP", "-", "-"),
        ("Mask R-CNN (ResNet-18-FPN)", "box AP", "-", "-"),
        ("Mask R-CNN (ResNet-18-FPN)", "box AP50", "-", "-"),
        ("Mask R-CNN (ResNet-18-FPN)", "mask AP", "-", "-"),
        ("Mask R-CNN (ResNet-18-FPN)", "mask AP50", "-", "-")]
    pretrain = payload["runs"]["yolov1"]["pretrain"]  # trained first, then loaded
    assert "configs/digits_yolov1.py:pretrain" in pretrain["command"]
    assert f"--config.init.checkpoint={pretrain['workdir']}" in payload["runs"]["yolov1"]["command"]
    for name, run in payload["runs"].items():
        test = run["results"]["test"]
        assert run["results"]["epochs"] == 1
        assert run["command"].startswith("cnn-jax train --config ")
        if name == "localizer":
            assert 0.0 <= test["accuracy"] <= 1.0 and 0.0 <= test["mean_iou"] <= 1.0
        else:
            assert COCO_KEYS | BREAKDOWN_KEYS <= set(test) and "voc_mAP" in test
    # every metric measured (-1 is COCO's "nothing to average")
    assert all(float(r[3]) >= -1.0 for r in table["rows"])
    printed = capsys.readouterr().out
    assert "| Mask R-CNN (ResNet-18-FPN) " in printed
    # The ground truth's own 28x28 mask targets pasted back, ranked by their IoU: not 1 (thin
    # strokes lose pixels at that resolution; 0.474 / 0.937 on the 2,000 test canvases), yet
    # most of them match at IoU 0.5.
    ceiling = payload["mask_ceiling"]
    assert 0.3 < ceiling["mask_AP"] < ceiling["mask_AP50"] and 0.8 < ceiling["mask_AP50"] < 1.0
    assert "Mask AP's ceiling" in " ".join(table["notes"])


@pytest.mark.slow  # about a minute on 2 cores: CI runs it with -m slow
def test_focal_ablation_smoke_gives_each_loss_its_mean_and_per_seed_ap(small_data_dir, tmp_path):
    payload = smoke("focal_ablation", small_data_dir, tmp_path, "--seeds", "0", "1")
    assert set(payload["ap"]) == {"bce", "focal"}
    for variant, aps in payload["ap"].items():
        assert len(aps) == 2 and payload["means"][variant] == pytest.approx(sum(aps) / 2)
        names = [s["name"] for s in payload["runs"][variant]]
        assert names == [f"{variant}_seed0", f"{variant}_seed1"]
        assert "seed=1" in payload["runs"][variant][1]["command"]
    (table,) = payload["tables"]
    assert [r[:3] for r in table["rows"]] == [["bce", "0", "0.75"], ["focal", "2", "0.25"]]
    assert [r[-1] for r in table["rows"]] == ["31.1", "34.0"]
    assert payload["verdict"] == []  # smoke: no verdict


def test_focal_ablation_verdict_weighs_the_mean_difference_against_its_standard_error():
    verdict = script("focal_ablation").verdict
    # Differences 0.05, 0.05, 0.06: mean 0.0533, standard error 0.0033 -> holds.
    (line,) = verdict({"bce": [0.30, 0.40, 0.20], "focal": [0.35, 0.45, 0.26]})
    assert ": holds:" in line and "+0.0533" in line and "0.0033" in line
    assert "focal ahead on 3 of 3 seeds" in line
    # Differences 0.05, -0.02, 0.10: mean 0.0433, standard error 0.0348 -> undecided.
    (line,) = verdict({"bce": [0.30, 0.40, 0.20], "focal": [0.35, 0.38, 0.30]})
    assert "undecided" in line and "0.0348" in line and "on 2 of 3 seeds" in line
    # Differences -0.05, -0.06, -0.05: reversed.
    (line,) = verdict({"bce": [0.30, 0.40, 0.20], "focal": [0.25, 0.34, 0.15]})
    assert "does NOT hold (reversed)" in line and "on 0 of 3 seeds" in line
    (line,) = verdict({"bce": [0.5], "focal": [0.4]})
    assert "does NOT hold" in line and "one seed" in line and "on 0 of 1 seeds" in line


def test_detection_benchmark_times_both_nms_and_the_evaluation_stages(tmp_path):
    payload = _smoke_bench(tmp_path)
    (nms,) = payload["nms"]
    assert nms["boxes"] == 200 and nms["same_kept"] is True and nms["kept"] > 0
    assert set(nms["microseconds_per_call"]) == {"cnn_jax", "torch"}
    assert nms["ratio_torch_over_cnn_jax"] == pytest.approx(
        nms["microseconds_per_call"]["torch"] / nms["microseconds_per_call"]["cnn_jax"], rel=1e-2)
    evaluation = payload["evaluation"]
    assert evaluation["scenes"] == 50 and COCO_KEYS | {"voc_mAP", *BREAKDOWN_KEYS} == set(evaluation["metrics"])
    stages = evaluation["stages_profiled_seconds"]
    assert sum(stages.values()) == pytest.approx(evaluation["profiled_seconds"], abs=0.01)
    assert min(stages.values()) >= 0.0
    titles = [t["title"].split(":")[0] for t in payload["tables"]]
    assert titles == ["NMS", "Evaluation of 50 scenes"]


def _smoke_bench(tmp_path):
    out = tmp_path / "bench_detection.json"
    payload = script("bench_detection").main(["--smoke", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(payload))
    return payload


def test_synthetic_scenes_hold_padded_sorted_detections_and_real_boxes():
    g = script("bench_detection").synthetic_outputs(200, seed=1)
    counts = g["det_count"]
    assert g["det_boxes"].shape == (200, 100, 4) and counts.min() >= 20 and counts.max() <= 100
    for i in range(200):
        scores = g["det_scores"][i]
        assert np.all(np.diff(scores[: counts[i]]) <= 0) and not scores[counts[i]:].any()
        real = g["boxes"][i][g["box_mask"][i]]
        assert len(real) >= 1 and np.all(real[:, 2:] > real[:, :2])


def test_readme_rows_show_measured_numbers_and_nothing_for_missing_or_smoke_results():
    focal = script("focal_ablation")
    (row,) = focal.readme_rows({"means": {"bce": 0.41, "focal": 0.4567}})
    assert row["ours"] == "0.410 -> 0.457" and row["paper"].startswith("31.1 -> 34.0 AP")
    means = {"bce": 0.58, "focal": 0.59}
    for ap, said in ((([0.5, 0.6, 0.7], [0.55, 0.65, 0.76]), "holds"),
                     (([0.5, 0.6, 0.7], [0.45, 0.55, 0.64]), "reversed"),
                     (([0.5, 0.6, 0.7], [0.55, 0.58, 0.72]), "a tie within 2 standard errors")):
        verdict = focal.verdict({"bce": ap[0], "focal": ap[1]})
        (row,) = focal.readme_rows({"means": means, "verdict": verdict})
        assert row["ours"] == f"0.580 -> 0.590 ({said})", verdict
    assert focal.readme_rows(None)[0]["ours"] is None
    assert focal.readme_rows({"means": {"bce": 0.4, "focal": 0.5}, "smoke": True})[0]["ours"] is None
    runs = script("detection_runs")
    record = {"runs": {"localizer": {"results": {"test": {"accuracy": 0.9912, "mean_iou": 0.8123}}}}}
    rows = {r["how"]: r for r in runs.readme_rows(record)}
    localizer = rows["`configs/digits_localizer.py`"]
    assert localizer["ours"] == "0.991 / 0.812" and localizer["paper"] == "bar: >= 0.98 / >= 0.8"
    assert rows["`configs/digits_yolov1.py`"]["ours"] is None  # not run: the command is shown

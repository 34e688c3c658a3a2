"""The input-pipeline benchmark runs (`--smoke`: tiny sizes) and reports the augmentation
pipeline's images/s next to the model's train-step images/s, with their ratio, for both recipes."""

import importlib.util
import json

from conftest import REPO_ROOT


def _load_bench(monkeypatch, shared_data):
    monkeypatch.setenv("CNN_JAX_SHARED_DATA", str(shared_data))
    path = REPO_ROOT / "experiments" / "bench_input_pipeline.py"
    spec = importlib.util.spec_from_file_location("bench_input_pipeline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_reports_augmentation_and_model_throughput(monkeypatch, shared_data, tmp_path, capsys):
    bench = _load_bench(monkeypatch, shared_data)
    results = bench.main(["--smoke", "--json", str(tmp_path / "out.json")])
    printed = capsys.readouterr().out
    assert json.loads((tmp_path / "out.json").read_text()) == json.loads(json.dumps(results))
    assert set(results["per_image"]) == set(results["pipeline"]) == set(bench.FOLDERS)
    rows = results["augmentation_vs_model"]
    assert set(rows) == set(bench.AUGMENT_RECIPES)
    for name, row in rows.items():
        aug, model = row["augment_pipeline"], row["train_step"]
        assert aug["images"] == 3 * 16 and aug["images_per_s"] > 0 and model["images_per_s"] > 0
        assert row["ratio"] == aug["images_per_s"] / model["images_per_s"]
        assert name in printed
    # The CIFAR recipe mixes: its batches carry targets; MNIST's distortions do not.
    assert "targets" in rows["cifar10_crop_flip_colour_cutout_mixup"]["augment_pipeline"]["batch_keys"]
    assert "targets" not in rows["mnist_distortions"]["augment_pipeline"]["batch_keys"]
    assert "augment/model" in printed

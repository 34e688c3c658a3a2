"""The `cnn-jax` command line: subcommands work, and mistakes cost one line and exit status 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONFIGS

from cnn_jax.cli import main

LENET5 = str(CONFIGS / "mnist_lenet5.py")


def test_console_script_is_installed_next_to_the_interpreter():
    script = Path(sys.executable).with_name("cnn-jax")
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "train" in out.stdout and "eval" in out.stdout and "data" in out.stdout


def test_models_lists_the_registry(capsys):
    assert main(["models"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"lenet5", "lenet5_modern", "lenet1", "mlp_300_100"} <= set(names)
    assert names == sorted(names)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config.optimizer.lrr=0.1"], "unknown config key 'optimizer.lrr'; did you mean 'optimizer.lr'?"),
        (["--config.num_epochs=many"], "config key 'num_epochs' takes an integer, got 'many'"),
        (["--config.model.name=alexnet_lrn"], "cannot take 28x28x1 images from mnist"),
    ],
)
def test_bad_train_arguments_fail_before_training_with_one_line(tmp_path, capsys, args, message):
    assert main(["train", "--config", LENET5, "--workdir", str(tmp_path / "w"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "w" / "checkpoints").exists()


def test_overrides_can_also_be_given_as_two_words(tmp_path, capsys):
    assert main(["train", "--config", LENET5, "--workdir", str(tmp_path), "--config.optimizer.lr", "x"]) == 2
    assert "takes a number, got 'x'" in capsys.readouterr().err


def test_missing_dataset_offline_names_the_import_command(tmp_path, capsys):
    empty = tmp_path / "tfds"
    empty.mkdir()
    code = main(["train", "--config", LENET5, "--workdir", str(tmp_path / "w"),
                 f"--config.data.data_dir={empty}", "--config.data.download=false"])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("error: dataset 'mnist' is not prepared")
    assert "cnn-jax data import mnist --from" in last


def test_eval_of_a_directory_without_a_run_says_so(tmp_path, capsys):
    assert main(["eval", "--workdir", str(tmp_path)]) == 2
    assert "holds no run" in capsys.readouterr().err


def test_data_import_and_list(shared_data, tmp_path, capsys):
    import numpy as np

    with np.load(shared_data / "fashion_mnist.npz") as d:
        np.savez(tmp_path / "fm.npz", x_train=d["x_train"][:300], y_train=d["y_train"][:300],
                 x_test=d["x_test"][:100], y_test=d["y_test"][:100])
    assert main(["data", "import", "fashion_mnist", "--from", str(tmp_path / "fm.npz"),
                 "--data_dir", str(tmp_path / "tfds")]) == 0
    assert "train 300, test 100" in capsys.readouterr().out
    assert main(["data", "list", "--data_dir", str(tmp_path / "tfds")]) == 0
    assert "fashion_mnist" in capsys.readouterr().out


def test_import_of_a_missing_path_fails_with_one_line(tmp_path, capsys):
    assert main(["data", "import", "mnist", "--from", str(tmp_path / "nope"), "--data_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err


def test_train_then_eval_through_the_cli(mnist_data_dir, tmp_path, capsys):
    workdir = tmp_path / "run"
    assert main(["train", "--config", LENET5, "--workdir", str(workdir), f"--config.data.data_dir={mnist_data_dir}",
                 "--config.data.val_size=1024", "--config.num_epochs=1", "--config.progress_bar=false",
                 "--config.optimizer.lr=0.05"]) == 0
    results = json.loads((workdir / "results.json").read_text())
    capsys.readouterr()
    assert main(["eval", "--workdir", str(workdir), "--split", "val"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["split"] == "val" and evaluated["count"] == 1024
    assert evaluated["accuracy"] == pytest.approx(results["val_best_accuracy"], abs=1e-6)
    assert main(["eval", "--workdir", str(workdir), "--split", "train"]) == 0
    trained_on = json.loads(capsys.readouterr().out)
    assert trained_on["split"] == "train" and trained_on["count"] == 4096 - 1024


def test_predict_prints_the_top_five_classes_the_run_gives_an_image_file(mnist_data_dir, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from cnn_jax.training import load_run

    workdir = tmp_path / "run"
    assert main(["train", "--config", LENET5, "--workdir", str(workdir), f"--config.data.data_dir={mnist_data_dir}",
                 "--config.data.val_size=1024", "--config.num_epochs=1", "--config.progress_bar=false"]) == 0
    with np.load(mnist_data_dir / "mnist_small.npz") as d:
        digit = d["x_test"][0]
    Image.fromarray(digit).save(tmp_path / "digit.png")
    capsys.readouterr()
    assert main(["predict", "--workdir", str(workdir), str(tmp_path / "digit.png")]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{tmp_path / 'digit.png'}: ")
    classes = [int(item.split()[0]) for item in line.split(": ", 1)[1].split(", ")]
    probabilities = [float(item.split()[1]) for item in line.split(": ", 1)[1].split(", ")]
    run = load_run(workdir)
    expected = np.argsort(-np.asarray(run.predict(digit[None, :, :, None]))[0])[:5]
    assert classes == expected.tolist() and probabilities == sorted(probabilities, reverse=True)
    assert main(["predict", "--workdir", str(workdir), str(tmp_path / "nope.png")]) == 2


def test_data_generate_writes_digit_scenes_from_imported_mnist(mnist_data_dir, tmp_path, capsys):
    import shutil

    data_dir = tmp_path / "tfds"
    shutil.copytree(mnist_data_dir, data_dir)
    name = "digit_scenes/train_size=64,test_size=16"
    assert main(["data", "generate", name, "--data_dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "64" in out and "16" in out
    assert main(["data", "list", "--data_dir", str(data_dir)]) == 0
    assert "digit_scenes" in capsys.readouterr().out

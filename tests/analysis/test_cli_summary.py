"""`cnn-jax summary`: the table and totals, JSON, the receptive-field table, and user errors."""

import json

from cnn_jax.cli import main


def test_summary_prints_the_vgg16_table_then_138_357_544_params(capsys):
    assert main(["summary", "--model", "vgg16", "--input", "224,224,3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "vgg16 @ 224x224x3, 1000 classes"
    assert any(line.split()[:2] == ["features_0", "conv"] and "3,211,264" in line for line in lines)
    totals = lines[-1]
    assert totals.startswith("total  params 138,357,544 |")
    assert "MACs 15,470,264,320" in totals


def test_summary_json_has_the_totals_and_every_layer(capsys):
    assert main(["summary", "--model", "alexnet_lrn", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["input_shape"] == [227, 227, 3]
    assert summary["totals"]["params"] == 62_378_344
    conv1 = next(layer for layer in summary["layers"] if layer["name"] == "features_0")
    assert (conv1["output_shape"], conv1["params"], conv1["macs"]) == ([55, 55, 96], 34_944, 105_415_200)


def test_summary_num_classes_resizes_the_head(capsys):
    assert main(["summary", "--model", "resnet20", "--num_classes", "100", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layers"][-1]["params"] == 64 * 100 + 100


def test_summary_receptive_field_prints_r_j_start(capsys):
    assert main(["summary", "--model", "vgg16", "--receptive-field"]) == 0
    lines = capsys.readouterr().out.splitlines()
    conv5_3 = next(line for line in lines if line.startswith("features_28 "))
    assert conv5_3.split()[-3:] == ["196", "16", "7.5"]


def test_summary_errors_are_one_line_and_exit_2(capsys):
    assert main(["summary", "--model", "vgg17"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model 'vgg17'") and len(err.strip().splitlines()) == 1
    assert main(["summary", "--model", "vgg16", "--input", "224,224"]) == 2
    assert capsys.readouterr().err.startswith("error:")

"""The page a user opens after training: ``cnn-jax report --workdir W`` writes ``W/report/`` with
PNG panels and an ``index.html`` that shows them with the run's config and results.

Panels (each written when it applies to the run, otherwise the page says why not):

* ``curves.png``: training and validation loss and accuracy per epoch (:mod:`.curves`);
* ``filters.png``: the first convolution's kernels (Zeiler & Fergus 2014, Fig. 2);
* ``grad_cam.png``: Grad-CAM of the predicted class on the last spatial layer for a few test
  images (Selvaraju et al. 2017) — classifiers only;
* ``confusion_matrix.png`` and ``misclassified.png``: true against predicted class, and the most
  confidently misclassified examples with their top-3 classes — classifiers only;
* ``reliability.png``: the reliability diagram and expected calibration error (Guo et al. 2017)
  — classifiers only;

and ``summary.json`` with the numbers the page states (accuracy, ECE, the most-confused pairs).

:func:`write_report` takes a trained run (``from cnn_jax.training import load_run``; duck typing:
``workdir``, ``config``, ``spec``, ``model``, ``variables``, ``task``, ``step``, ``checkpoint``,
``data()``), so this module needs nothing from the trainer.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from cnn_jax.analysis.attribution import grad_cam
from cnn_jax.analysis.calibration import confidences_and_correct, reliability_bins
from cnn_jax.analysis.charts import confusion_matrix_figure, curves_figure, reliability_figure
from cnn_jax.analysis.classifier import Classifier
from cnn_jax.analysis.confusion import (
    collect_predictions,
    images_at,
    misclassified,
    most_confused_pairs,
)
from cnn_jax.analysis.curves import epoch_curves, read_metrics
from cnn_jax.analysis.intermediates import feature_maps, filters, layer_names
from cnn_jax.analysis.plots import filter_grid, heatmap_grid, image_grid

GRAD_CAM_IMAGES = 8
MISCLASSIFIED_IMAGES = 16
CONFUSED_PAIRS = 5
DPI = 100


def _save(fig, path: Path) -> str:
    fig.savefig(path, dpi=DPI)
    return path.name


def _first_conv(run: Any, inputs) -> str | None:
    """The first convolution in forward order (the module path of a 4-D kernel)."""
    for name in layer_names(run.model, run.variables, inputs):
        try:
            filters(run.variables, name)
        except KeyError:
            continue
        return name
    return None


def _last_spatial_layer(run: Any, inputs) -> str | None:
    maps = feature_maps(run.model, run.variables, inputs)
    return list(maps)[-1] if maps else None


def _class_name(names, c: int) -> str:
    return names[c] if names and c < len(names) else str(c)


def write_report(run: Any, out_dir: str | Path | None = None, split: str = "test",
                 limit: int | None = None) -> Path:
    """Writes the report of `run` into `out_dir` (default ``<workdir>/report``) from its `split`
    ('test' or 'val'; the first `limit` examples, all when None); returns ``index.html``'s path."""
    out = Path(out_dir) if out_dir is not None else Path(run.workdir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    task = str(getattr(run.config, "task", "classification"))
    names = tuple(getattr(run.spec, "label_names", ()) or ())
    panels: list[tuple[str, str | None, str]] = []  # (title, file or None, note)
    summary: dict[str, Any] = {"task": task, "split": split}

    records = read_metrics(run.workdir) if (Path(run.workdir) / "metrics.jsonl").exists() else []
    if records:
        curves = epoch_curves(records)
        panels.append(("Training curves", _save(curves_figure(curves), out / "curves.png"),
                       "loss and accuracy per epoch; the gap between training and validation "
                       "is over-fitting"))
    else:
        panels.append(("Training curves", None, "the run has no metrics.jsonl"))

    key = run.task.input_key  # 'image', or 'clip' for a video classifier
    classifying = task == "classification" and key == "image"
    # Images are read again for the few examples shown, so that a large split is not kept.
    predictions = (collect_predictions(run, split, limit, keep_images=False) if classifying
                   else None)
    first = next(iter(run.data().eval_batches(split)))[key][:1]
    inputs = run.task.inputs({key: jnp.asarray(first)})

    conv = _first_conv(run, inputs)
    if conv is not None:
        panels.append((f"First-layer filters ({conv})",
                       _save(filter_grid(filters(run.variables, conv)), out / "filters.png"),
                       "each filter scaled to its own range"))
    else:
        panels.append(("First-layer filters", None, "the model has no 2-D convolution"))

    if predictions is None:
        note = (f"not drawn: it applies to classification runs of images, this is a {task} run"
                + ("" if key == "image" else f" of {key}s"))
        for title in ("Grad-CAM", "Confusion matrix", "Misclassified examples", "Calibration"):
            panels.append((title, None, note))
    else:
        summary.update(_classification_panels(run, split, predictions, names, out, panels))
    summary["panels"] = {title: file for title, file, _ in panels}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    index = out / "index.html"
    index.write_text(_page(run, panels, summary))
    return index


def _classification_panels(run: Any, split: str, predictions, names, out: Path,
                           panels: list) -> dict:
    """Grad-CAM, confusion matrix, misclassified grid and reliability diagram; their numbers."""
    classifier = Classifier.from_run(run)
    shown = np.arange(min(GRAD_CAM_IMAGES, len(predictions.labels)))
    sample = images_at(run, split, shown)
    predicted = predictions.predicted[shown]
    layer = _last_spatial_layer(run, classifier.inputs(sample[:1]))
    if layer is not None:
        cam = grad_cam(classifier, sample, predicted, layer, size=sample.shape[1:3])
        titles = [f"{_class_name(names, int(p))}" for p in predicted]
        fig = heatmap_grid(sample, np.asarray(cam), titles, title=f"Grad-CAM on {layer}")
        panels.append(("Grad-CAM", _save(fig, out / "grad_cam.png"),
                       f"predicted class, layer {layer}"))
    else:
        panels.append(("Grad-CAM", None, "the model has no layer with spatial maps"))

    matrix = predictions.confusion_matrix()
    pairs = most_confused_pairs(matrix, CONFUSED_PAIRS)
    confused = ", ".join(f"{_class_name(names, t)} -> {_class_name(names, p)}: {c}"
                         for t, p, c in pairs) or "none"
    fig = confusion_matrix_figure(matrix, names or None)
    panels.append(("Confusion matrix", _save(fig, out / "confusion_matrix.png"),
                   f"most confused (true -> predicted: count): {confused}"))

    wrong = misclassified(predictions, k=3, limit=MISCLASSIFIED_IMAGES)
    if wrong:
        titles = [f"label {_class_name(names, m.label)}\n" + "  ".join(
            f"{_class_name(names, c)} {p:.2f}" for c, p in zip(m.top_classes, m.top_probabilities,
                                                               strict=True)) for m in wrong]
        fig = image_grid(images_at(run, split, [m.index for m in wrong]), titles, columns=4,
                         tile_inches=2.0)
        panels.append(("Misclassified examples", _save(fig, out / "misclassified.png"),
                       "most confidently wrong first: label -> top-3 classes with probabilities"))
    else:
        panels.append(("Misclassified examples", None, "every example is classified right"))

    bins = reliability_bins(*confidences_and_correct(predictions.logits, predictions.labels))
    panels.append(("Calibration", _save(reliability_figure(bins), out / "reliability.png"),
                   f"expected calibration error {bins.expected_calibration_error:.4f} (15 bins)"))
    return {"examples": int(len(predictions.labels)), "accuracy": predictions.accuracy,
            "expected_calibration_error": bins.expected_calibration_error,
            "most_confused": [{"true": t, "predicted": p, "count": c} for t, p, c in pairs],
            "misclassified": int(np.sum(predictions.predicted != predictions.labels))}


def _page(run: Any, panels: list, summary: dict) -> str:
    results_path = Path(run.workdir) / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    config = run.config.to_dict() if hasattr(run.config, "to_dict") else dict(run.config)
    model = getattr(getattr(run.config, "model", None), "name", type(run.model).__name__)
    esc = html.escape

    def pre(value) -> str:
        return html.escape(json.dumps(value, indent=2, default=str), quote=False)

    parts = [
        "<!doctype html>", "<html><head><meta charset='utf-8'>",
        f"<title>{esc(str(model))} report</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}"
        "img{max-width:100%}pre{background:#f4f4f4;padding:8px;overflow-x:auto}</style>",
        "</head><body>",
        f"<h1>{esc(str(model))} on {esc(str(getattr(run.spec, 'name', '')))}</h1>",
        f"<p>workdir <code>{esc(str(run.workdir))}</code>, step {run.step}, {esc(run.checkpoint)} "
        f"checkpoint, {esc(summary['task'])}; panels from the {esc(summary['split'])} split</p>",
    ]
    if "accuracy" in summary:
        parts.append(f"<p>accuracy {summary['accuracy']:.4f} on {summary['examples']} examples, "
                     f"expected calibration error {summary['expected_calibration_error']:.4f}</p>")
    for title, file, note in panels:
        parts.append(f"<h2>{esc(title)}</h2>")
        if file is not None:
            parts.append(f"<p><img src='{esc(file)}' alt='{esc(title)}'></p>")
        parts.append(f"<p>{esc(note)}</p>")
    parts += ["<h2>Results (results.json)</h2>",
              f"<pre>{pre(results) if results else 'no results.json yet'}</pre>",
              "<h2>Config (config.json)</h2>", f"<pre>{pre(config)}</pre>", "</body></html>"]
    return "\n".join(parts) + "\n"

"""Writes the README's pictures into docs/images/: the figure of each notebook's cell tagged
``readme-image`` (the notebook executed top to bottom) and the Grad-CAM and misclassified panels of
`cnn-jax report` on a short LeNet-5 run.

    .venv/bin/python docs/images/make_images.py            # notebooks at their full size
    .venv/bin/python docs/images/make_images.py --small    # at the size the tests run them

MNIST and CIFAR-10 come from ../shared/data beside the repository (or $CNN_JAX_SHARED_DATA).
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import tempfile
from pathlib import Path

import nbclient
import nbformat
import numpy as np

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "docs" / "images"
SHARED_DATA = Path(os.environ.get("CNN_JAX_SHARED_DATA", REPO.parent / "shared" / "data"))
TAG = "readme-image"


def notebook_image(path: Path, work: Path) -> Path:
    """Executes the notebook and writes the first PNG its tagged cell shows."""
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(notebook, kernel_name="python3", timeout=3600,
                            resources={"metadata": {"path": str(work)}}).execute()
    for cell in notebook.cells:
        if TAG in cell.metadata.get("tags", []):
            for output in cell.get("outputs", []):
                if "image/png" in output.get("data", {}):
                    target = IMAGES / f"{path.stem}.png"
                    target.write_bytes(base64.b64decode(output["data"]["image/png"]))
                    return target
    raise ValueError(f"{path.name} has no cell tagged {TAG!r} that shows a PNG")


def report_images(work: Path) -> list[Path]:
    """`cnn-jax report` of LeNet-5 after 2 epochs on 8,192 digits; two of its panels."""
    from cnn_jax.analysis import write_report
    from cnn_jax.config import load_config
    from cnn_jax.data import import_local
    from cnn_jax.training import load_run
    from cnn_jax.training.loop import train_and_evaluate

    with np.load(SHARED_DATA / "mnist.npz") as d:
        np.savez(work / "mnist.npz", x_train=d["x_train"][:8192], y_train=d["y_train"][:8192],
                 x_test=d["x_test"][:1000], y_test=d["y_test"][:1000])
    import_local("mnist", work / "mnist.npz", work / "tfds")
    config = load_config(REPO / "configs" / "mnist_lenet5.py", [
        f"data.data_dir={work / 'tfds'}", "data.val_size=1024", "num_epochs=2",
        "progress_bar=false", "steps_per_call=1"])
    train_and_evaluate(config, work / "run")
    report = write_report(load_run(work / "run")).parent
    out = []
    for name in ("grad_cam.png", "misclassified.png"):
        out.append(IMAGES / f"report_{name}")
        shutil.copyfile(report / name, out[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="the notebooks' test size")
    args = parser.parse_args()
    if args.small:
        os.environ["CNN_JAX_NOTEBOOK_SIZE"] = "small"
    with tempfile.TemporaryDirectory() as work:
        for path in sorted((REPO / "notebooks").glob("*.ipynb")):
            notebook = nbformat.read(path, as_version=4)
            if any(TAG in c.metadata.get("tags", []) for c in notebook.cells):
                print(notebook_image(path, Path(work)))
        for path in report_images(Path(work)):
            print(path)


if __name__ == "__main__":
    main()

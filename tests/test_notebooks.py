"""Every notebook under notebooks/ executes top to bottom without an error.

Notebooks are documentation that runs: each one asserts what it shows, so executing it is its test.
They run with the 'python3' kernel that ipykernel installs into the environment (its argv starts
with ``python``, which jupyter_client replaces with this interpreter, so the kernel imports the same
cnn_jax), from a temporary working directory so they cannot depend on or litter the repository,
and with ``CNN_JAX_NOTEBOOK_SIZE=small`` in the kernel's environment: notebooks that train read it
and train on fewer images for fewer epochs, so that each runs in under a minute here. Their
temporary folders (``tempfile``) land in the test's own temporary directory.
"""

from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks_to_execute():
    assert NOTEBOOKS, "notebooks/ has no .ipynb files"


# Each trains small models (compile-bound on 2 cores: 10-100 s each): CI runs them with -m slow.
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes_without_errors(path: Path, tmp_path: Path, monkeypatch):
    # The kernel inherits this environment: small runs, and temporary folders under tmp_path.
    monkeypatch.setenv("CNN_JAX_NOTEBOOK_SIZE", "small")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    # A failing cell raises CellExecutionError naming the cell and the traceback.
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]
    assert not errors, f"{path.name}: {errors}"

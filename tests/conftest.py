"""Shared test fixtures: repository paths and the real data in ../shared/data."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Tests run on the CPU; several use 8 fake devices through a subprocess (see tests/training).
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The oneDNN convolutions (cnn_jax/backends/onednn) are compiled once per session into a temporary
# directory that subprocesses inherit, not into ~/.cache.
if "CNN_JAX_CACHE_DIR" not in os.environ:
    os.environ["CNN_JAX_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnn_jax_cache_")
    atexit.register(shutil.rmtree, os.environ["CNN_JAX_CACHE_DIR"], ignore_errors=True)

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = REPO_ROOT / "configs"
SHARED_DATA = Path(os.environ.get("CNN_JAX_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the clone (CI provides it). Its absence is a setup error, not a skip."""
    if not (SHARED_DATA / "mnist.npz").exists():
        pytest.fail(f"real data not found at {SHARED_DATA}: put the shared/ folder beside the clone "
                    "or set CNN_JAX_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mnist_data_dir(shared_data, tmp_path_factory):
    """tfds data_dir holding a 4,096/1,000 train/test slice of the real MNIST."""
    root = tmp_path_factory.mktemp("tfds")
    with np.load(shared_data / "mnist.npz") as d:
        small = {"x_train": d["x_train"][:4096], "y_train": d["y_train"][:4096],
                 "x_test": d["x_test"][:1000], "y_test": d["y_test"][:1000]}
    npz = root / "mnist_small.npz"
    np.savez(npz, **small)
    from cnn_jax.data import import_local

    counts = import_local("mnist", npz, root)
    assert counts == {"train": 4096, "test": 1000}
    return root


# The fast tier, `pytest -m "not slow and not heavy"`: it leaves out the tests tests/heavy.txt
# lists (the default suite's slower ones in a timed run; tests/heavy.py writes it) and the files
# whose shared fixtures start 8-device subprocesses or train a run, which any one of their tests
# would pay for.
HEAVY = {line for line in (Path(__file__).with_name("heavy.txt")).read_text().splitlines()
         if line and not line.startswith("#")}
HEAVY_PATHS = ("tests/training/test_sharding.py", "tests/training/test_model_sharding.py",
               "tests/training/test_multihost.py", "tests/analysis/test_report.py")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid in HEAVY or item.nodeid.startswith(HEAVY_PATHS):
            item.add_marker(pytest.mark.heavy)


def pytest_sessionstart(session):
    # Build the oneDNN convolutions once, before any test or test subprocess needs them (several
    # subprocesses starting at once would each compile them).
    from cnn_jax.backends import onednn

    onednn.available()


# The experiment scripts' smoke tests (tests/experiment_scripts.py runs them).
@pytest.fixture(scope="module")
def fast_compilation():
    """Smoke runs are dominated by XLA compilation: a module that uses this compiles without most
    optimisations (its smoke runs check the shape of what the scripts report, not the numbers)."""
    import jax

    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


@pytest.fixture(scope="module")
def small_data_dir(shared_data, tmp_path_factory):
    """A tfds data_dir with 1,024/500 MNIST digits (the smoke runs' digit scenes, Moving MNIST and
    generative runs are made from it on first use)."""
    from cnn_jax.data import import_local

    src, root = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("tfds")
    with np.load(shared_data / "mnist.npz") as z:
        arrays = {"x_train": z["x_train"][:1024], "y_train": z["y_train"][:1024],
                  "x_test": z["x_test"][:500], "y_test": z["y_test"][:500]}
    np.savez(src / "mnist_small.npz", **arrays)
    import_local("mnist", src / "mnist_small.npz", root)
    return root

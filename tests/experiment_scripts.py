"""Running the scripts of experiments/ from the tests: load one as a module, run it with --smoke,
check the results file it writes. The fixtures these tests share (``fast_compilation``,
``small_data_dir``) are in conftest.py."""

import importlib.util
import json
import sys

from conftest import REPO_ROOT

EXPERIMENTS = REPO_ROOT / "experiments"


def script(name: str):
    """experiments/``name``.py as a module named ``name``, with experiments/ on the path: the
    scripts import ``_common`` from there, dataclasses look their module up in ``sys.modules``, and
    spawned benchmark workers import the module by that name."""
    if str(EXPERIMENTS) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS))
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def smoke(name: str, data_dir, tmp_path, *extra) -> dict:
    """``name``'s ``main`` with --smoke on ``data_dir``, runs under ``tmp_path``: its payload, after
    checking that the results file holds exactly it and says it is a smoke run, with versions and
    machine."""
    out = tmp_path / f"{name}.json"
    args = ["--smoke", "--workdir", str(tmp_path / "runs"), "--out", str(out), *extra]
    if data_dir is not None:
        args = ["--data-dir", str(data_dir), *args]
    payload = script(name).main(args)
    assert json.loads(out.read_text()) == json.loads(json.dumps(payload))
    assert payload["smoke"] is True and payload["versions"]["jax"]
    assert payload["machine"]["cpu_count"]
    return payload

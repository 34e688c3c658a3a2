"""What a run shows and writes while it trains: log lines, metric records, a progress bar; and how
it hears that it must stop (SIGTERM, SIGINT)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import sys
import threading
from pathlib import Path

import jax
import numpy as np
from PIL import Image

log = logging.getLogger("cnn_jax")


def _import_tensorboardx_writer():
    """tensorboardX's SummaryWriter, imported without the torch import tensorboardX tries when
    torch is installed (seconds of start-up; we only write floats). A later `import torch` works
    as usual."""
    if "torch" in sys.modules:
        from tensorboardX import SummaryWriter

        return SummaryWriter
    sys.modules["torch"] = None  # makes `import torch` raise ImportError, which tensorboardX catches
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter


class MetricWriter:
    """Writes each record to workdir/metrics.jsonl and to TensorBoard event files (workdir/tb).
    Only process 0 of a multi-host run writes (`enabled`)."""

    def __init__(self, workdir: Path, enabled: bool = True):
        self.enabled = enabled
        if not enabled:
            return
        SummaryWriter = _import_tensorboardx_writer()
        self._jsonl = open(workdir / "metrics.jsonl", "a", buffering=1)
        self._tb = SummaryWriter(str(workdir / "tb"))

    def write(self, step: int, split: str, values: dict, **extra) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), "split": split, **extra, **values}
        self._jsonl.write(json.dumps(record) + "\n")
        for key, value in values.items():
            if isinstance(value, (int, float)) and key != "count":
                self._tb.add_scalar(f"{split}/{key}", value, int(step))

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()


def save_image_grid(images, path: Path) -> None:
    """Writes images (N, H, W, C) with values in [0, 1] as one PNG of a near-square grid."""
    images = np.clip(np.asarray(jax.device_get(images), np.float32), 0.0, 1.0)
    n, h, w, c = images.shape
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * h, columns * w, c), np.float32)
    for i, image in enumerate(images):
        r, q = divmod(i, columns)
        grid[r * h:(r + 1) * h, q * w:(q + 1) * w] = image
    pixels = (grid * 255).round().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels[..., 0] if c == 1 else pixels).save(path)


class _TqdmHandler(logging.StreamHandler):
    """Console log lines printed through tqdm, so they do not break a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def logging_to(workdir: Path):
    """Console + workdir/log.txt (log.process<i>.txt for the other processes of a multi-host run)."""
    log.setLevel(logging.INFO)
    log.propagate = False  # absl installs a root handler; print each line once
    if not any(isinstance(h, _TqdmHandler) for h in log.handlers):
        console = _TqdmHandler()
        console.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(console)
    name = "log.txt" if jax.process_index() == 0 else f"log.process{jax.process_index()}.txt"
    file_handler = logging.FileHandler(workdir / name)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(file_handler)
    try:
        yield
    finally:
        log.removeHandler(file_handler)
        file_handler.close()


class Progress:
    """One tqdm bar per epoch, advanced to the step the loop reached."""

    def __init__(self, steps_per_epoch: int, num_epochs: int, enabled: bool):
        self.steps_per_epoch, self.num_epochs, self.enabled = steps_per_epoch, num_epochs, enabled
        self._bar, self._epoch = None, -1

    def update(self, step: int, **postfix) -> None:
        from tqdm import tqdm

        epoch, done = divmod(step - 1, self.steps_per_epoch)
        if epoch != self._epoch:
            self.close()
            self._bar = tqdm(total=self.steps_per_epoch, initial=done, desc=f"epoch {epoch + 1}/{self.num_epochs}",
                             disable=not self.enabled, leave=False, dynamic_ncols=True, mininterval=0.5,
                             file=sys.stderr)
            self._epoch = epoch
        self._bar.update(done + 1 - self._bar.n)
        if postfix:
            self._bar.set_postfix(**postfix)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class StopRequest:
    """Whether to checkpoint and stop after a train call: a SIGTERM/SIGINT flag in a single process.

    In a multi-process run every process must stop after the same call (the checkpoint is written
    collectively), whichever process got the signal: JAX's preemption service catches SIGTERM and
    `reached_preemption_sync_point` names the same call on every process. SIGINT (Ctrl-C) is turned
    into a SIGTERM of this process so that it takes the same path.
    """

    def __init__(self, flag: threading.Event, multi_process: bool):
        self.flag = flag
        self.multi_process = multi_process

    def reached(self, call: int) -> bool:
        """Asked after every train call; `call` counts them (+1 each, the same on every process)."""
        if self.multi_process:
            from jax.experimental import multihost_utils

            return multihost_utils.reached_preemption_sync_point(call)
        return self.flag.is_set()


@contextlib.contextmanager
def stop_on_signals():
    """A StopRequest that SIGTERM/SIGINT make true (then the loop checkpoints and exits)."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield StopRequest(flag, False)
        return
    if jax.process_count() > 1:
        def forward(signum, _frame):
            log.warning("received SIGINT: stopping every process at the same step, as for SIGTERM")
            signal.signal(signal.SIGINT, previous_int)
            os.kill(os.getpid(), signal.SIGTERM)

        previous_int = signal.signal(signal.SIGINT, forward)
        try:
            yield StopRequest(flag, True)
        finally:
            signal.signal(signal.SIGINT, previous_int)
        return

    def handler(signum, _frame):
        log.warning("received %s: saving a checkpoint at the current step, then stopping",
                    signal.Signals(signum).name)
        flag.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield StopRequest(flag, False)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)

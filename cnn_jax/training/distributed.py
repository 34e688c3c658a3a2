"""Multi-process (multi-host) runs: `jax.distributed` from flags or the environment, and a
watchdog so that a process whose peer died stops with one clear line instead of hanging.

JAX's multi-controller runtime is the distributed engine. Every host runs the same command
(`cnn-jax train ...`) as one process; `jax.distributed.initialize` connects the processes through
a coordinator (process 0) before any other JAX call, after which `jax.devices()` lists the
devices of every process, the trainer's Mesh spans them all and each jitted step runs on all of
them (collectives over NCCL on GPUs, the ICI on TPUs, gloo over TCP on CPUs). Each process reads
its own slice of every global batch (cnn_jax.data.pipeline) and Orbax writes each checkpoint
collectively (cnn_jax.training.checkpoint).

Where the process group comes from (`DistributedOptions.from_args`), first match wins:
  1. flags `--coordinator-address HOST:PORT --num-processes N --process-id I`, or the same in
     the environment (`JAX_COORDINATOR_ADDRESS`, which JAX itself also reads, `JAX_NUM_PROCESSES`
     and `JAX_PROCESS_ID`, which cnn-jax reads);
  2. `--distributed`: `jax.distributed.initialize()` with no arguments, i.e. JAX's cluster
     detection (Cloud TPU VMs and pods, Slurm, Open MPI, GKE/Kubernetes);
  3. a launcher that started several tasks (Slurm's `srun` with more than one task, Open MPI's
     `mpirun -np N` with N > 1) implies 2;
  4. otherwise a single process, and nothing is initialised.

Failure of a peer. JAX's coordination service declares a process dead when it has sent no
heartbeat for `heartbeat_timeout` seconds and then aborts every other process with a long fatal
log. Before that, `PeerWatchdog` (a thread started here) notices the silence after
`peer_timeout` seconds through heartbeats of its own in the coordinator's key-value store and
ends this process with exit status 1 and one line naming the process that stopped (or the
coordinator, when it is the one that is gone) and what to do. A process that ends with an error
of its own exits at once too (`exit_now`), so it cannot hold the others at JAX's shutdown
barrier; its silence then stops them.
Restarting every process with the same command resumes from the newest complete checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import sys
import threading
import time

from cnn_jax.errors import one_line

log = logging.getLogger("cnn_jax")

_KEY_ALIVE = "cnn_jax/alive/"
_KEY_DONE = "cnn_jax/done/"


class DistributedError(RuntimeError):
    """The process group could not be formed (bad flags, unreachable coordinator)."""


@dataclasses.dataclass(frozen=True)
class DistributedOptions:
    """How (and whether) this process joins a multi-process run; see the module docstring."""

    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    auto_detect: bool = False  # let JAX detect the cluster (TPU pods, Slurm, Open MPI, ...)
    peer_timeout: int = 60  # seconds without a peer's heartbeat before this process stops
    initialization_timeout: int = 300  # seconds to wait for every process to connect

    @property
    def enabled(self) -> bool:
        return self.auto_detect or self.coordinator_address is not None

    @classmethod
    def from_args(cls, coordinator_address=None, num_processes=None, process_id=None,
                  distributed=False, peer_timeout=60, initialization_timeout=300,
                  environ=None) -> DistributedOptions:
        env = os.environ if environ is None else environ
        address = coordinator_address or env.get("JAX_COORDINATOR_ADDRESS") or None
        count = num_processes if num_processes is not None else _env_int(env, "JAX_NUM_PROCESSES")
        index = process_id if process_id is not None else _env_int(env, "JAX_PROCESS_ID")
        if peer_timeout < 1 or initialization_timeout < 1:
            raise DistributedError("--peer-timeout and --initialization-timeout must be at least 1 second")
        explicit = (address, count, index)
        auto = bool(distributed) or _launcher_started_several_tasks(env)
        if any(v is not None for v in explicit) and not auto:
            missing = [name for name, v in zip(("--coordinator-address", "--num-processes", "--process-id"),
                                               explicit, strict=True) if v is None]
            if missing:
                raise DistributedError(
                    f"a multi-process run needs --coordinator-address, --num-processes and "
                    f"--process-id together (missing {', '.join(missing)}), or --distributed to "
                    f"let JAX detect the cluster")
            if count < 1 or not 0 <= index < count:
                raise DistributedError(f"--process-id {index} is not in [0, {count}) "
                                       f"(--num-processes {count})")
            if ":" not in address:
                raise DistributedError(f"--coordinator-address {address!r} needs a port: HOST:PORT "
                                       f"of process 0, reachable from every process")
        return cls(address, count, index, auto, int(peer_timeout), int(initialization_timeout))


def _env_int(env, name: str) -> int | None:
    value = env.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"environment variable {name}={value!r} is not an integer") from None


def _launcher_started_several_tasks(env) -> bool:
    """Slurm's srun or Open MPI's mpirun started this process as one of several tasks."""
    for name in ("SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_SIZE"):
        try:
            if int(env.get(name, "1")) > 1:
                return True
        except ValueError:
            pass
    return False


def initialize(options: DistributedOptions) -> bool:
    """Joins the process group `options` describes; must run before any other JAX call.

    Returns True when this is a multi-process run (then `PeerWatchdog` should watch it).
    """
    if not options.enabled:
        return False
    import jax

    # CPU processes exchange gradients over TCP with gloo (older JAX releases default to none).
    if jax.config.jax_cpu_collectives_implementation in (None, "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        # Values not given (None) are detected by JAX from the cluster's environment.
        jax.distributed.initialize(
            coordinator_address=options.coordinator_address, num_processes=options.num_processes,
            process_id=options.process_id,
            initialization_timeout=options.initialization_timeout,
            # JAX's own detection of a dead process is the backstop: it fires after ours.
            heartbeat_timeout_seconds=options.peer_timeout + 30,
        )
    except (ValueError, RuntimeError) as e:
        where = options.coordinator_address or "the address JAX detected"
        raise DistributedError(
            f"could not join the multi-process run through the coordinator at {where}: "
            f"{one_line(e)} (is process 0 running, and its address and port reachable?)") from None
    if jax.process_count() > 1:
        _checkpoint_barriers_through_the_coordinator()
    return jax.process_count() > 1


def _checkpoint_barriers_through_the_coordinator() -> None:
    """Orbax's barriers go through the coordination service, not through device collectives.

    By default Orbax meets the other processes with `sync_global_devices`, a collective on the
    devices. Its asynchronous saves do that from a background thread while the training thread
    runs the train step's own collectives, and on CPU (gloo) two threads' collectives can pair
    up in a different order in two processes: one process waits in the barrier's 4-byte
    all-gather while its peer sends the train step's, and gloo aborts ("Received data size
    doesn't match expected size"). The coordination service's barriers are keyed by name and
    safe from any thread. Orbax reads this from an absl flag; nothing in cnn-jax parses absl
    flags, so they are marked parsed (every other flag keeps its default).
    """
    from absl import flags
    from orbax.checkpoint._src.multihost import multihost as orbax_multihost

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    flags.FLAGS[orbax_multihost.EXPERIMENTAL_ORBAX_USE_DISTRIBUTED_BARRIER.name].value = True
    assert orbax_multihost.EXPERIMENTAL_ORBAX_USE_DISTRIBUTED_BARRIER.value


class PeerWatchdog:
    """Ends this process (exit status 1, one line on stderr) when another process of the run has
    sent no heartbeat for `timeout` seconds, or when the coordinator cannot be reached.

    Heartbeats are counters in the coordination service's key-value store, written and read by a
    daemon thread every `timeout / 10` seconds, independent of what the training thread does
    (a long compilation or evaluation does not stop them). A process that finishes marks itself
    done, so the others do not mistake its exit for a failure.
    """

    def __init__(self, timeout: float, coordinator: str | None = None, client=None):
        import jax

        self.timeout = float(timeout)
        self.interval = max(0.2, self.timeout / 10)
        self.me, self.count = jax.process_index(), jax.process_count()
        self.coordinator = coordinator or "the coordinator"
        self._client = client if client is not None else _coordination_client()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cnn_jax-peer-watchdog", daemon=True)

    def start(self) -> PeerWatchdog:
        if self._client is not None and self.count > 1:
            self._thread.start()
        return self

    def finish(self) -> None:
        """This process has finished its work: stop watching, and tell the others not to wait
        for its heartbeats. (A process that fails does not call this: it exits with `exit_now`,
        and its silence tells the others.)"""
        self._stop.set()
        if self._client is not None and self.count > 1:
            with contextlib.suppress(Exception):
                self._client.key_value_set(f"{_KEY_DONE}{self.me}", "1", allow_overwrite=True)

    def _run(self) -> None:
        last_value: dict[int, str | None] = {}
        last_change = {p: time.monotonic() for p in range(self.count)}
        beat = 0
        while not self._stop.wait(self.interval):
            beat += 1
            try:
                self._client.key_value_set(f"{_KEY_ALIVE}{self.me}", str(beat), allow_overwrite=True)
                alive = {_process_of(k): v for k, v in self._client.key_value_dir_get(_KEY_ALIVE)}
                done = {_process_of(k) for k, _ in self._client.key_value_dir_get(_KEY_DONE)}
            except Exception as e:  # the coordinator is gone (or unreachable)
                if self._stop.is_set():
                    return
                die(f"process {self.me} of {self.count} lost {self.coordinator} (process 0): "
                    f"{one_line(e)}")
            now = time.monotonic()
            for p in range(self.count):
                if p == self.me or p in done:
                    continue
                if alive.get(p) != last_value.get(p):
                    last_value[p], last_change[p] = alive.get(p), now
                elif now - last_change[p] > self.timeout and not self._stop.is_set():
                    die(f"process {p} of {self.count} has sent no heartbeat for "
                        f"{now - last_change[p]:.0f} s (it died, was killed or hangs); "
                        f"stopping process {self.me} too")


def _process_of(key: str) -> int:
    return int(key.rstrip("/").rsplit("/", 1)[-1])


def _coordination_client():
    try:
        from jax._src import distributed as jax_distributed

        return jax_distributed.global_state.client
    except (ImportError, AttributeError):  # another JAX layout: JAX's own heartbeats still apply
        return None


_DYING = threading.Lock()


def die(message: str) -> None:
    """Prints `error: message` plus how to resume, flushes the logs and exits with status 1 at
    once (no atexit handlers: JAX's shutdown barrier would wait for the dead process).

    Once: when the watchdog thread and the training thread both see a peer die, the second
    waits for the first to end the process, so the error is one line."""
    if not _DYING.acquire(blocking=False):
        while True:
            time.sleep(1)
    print(f"error: {message}. Restart every process with the same command to resume from the "
          f"newest checkpoint.", file=sys.stderr, flush=True)
    exit_now(1)


def exit_now(code: int) -> None:
    """Ends a process of a multi-process run that failed (its error already printed) at once:
    a normal exit would wait at JAX's shutdown barrier for peers that wait for it."""
    sys.stdout.flush()
    sys.stderr.flush()
    for handler in logging.getLogger("cnn_jax").handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(code)


# How a collective reports that the other end went away (Gloo on CPU, NCCL/grpc elsewhere).
_PEER_FAILURE = re.compile(
    r"connection reset|connection refused|broken pipe|connection closed|socket closed|"
    r"peer|unavailable|timed out|gloo .* failed|nccl", re.IGNORECASE)


def is_peer_failure(e: BaseException) -> bool:
    """Whether `e` is a JAX runtime error of a collective whose other side disappeared, which is
    what a process sees when a peer dies mid-step (before the heartbeat watchdog notices)."""
    return type(e).__name__ in ("JaxRuntimeError", "XlaRuntimeError") and bool(
        _PEER_FAILURE.search(str(e)))

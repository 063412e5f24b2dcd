"""Process topology for profiling under `accelerate launch` / `torchrun`: rank, contiguous shards, exact reduction.

Profiling is forward-only, so instead of a prepared DataLoader (which pads the last batch with duplicates and so
biases sums) each process takes a contiguous shard of the corpus, accumulates locally, and the states are
gathered and merged in rank order, giving every rank the same result.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .counts import as_int
from .errors import ConfigurationError, DatasetError, ModelError, ProcessFailedError, error_kind, process_failed_error
from .logging import get_logger

logger = get_logger(__name__)


# The launchers' process counts, read in Accelerate's order: torchrun / accelerate launch, then MPI (Intel MPI and
# MPICH, Open MPI, MVAPICH), which `accelerate launch --cpu --num_processes N --mpirun_hostfile ...` runs under.
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def launched_world_size() -> int:
    """The number of processes the launcher started, from its environment (1 without a launcher)."""
    for name in WORLD_SIZE_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return int(value)
    return 1


def process_info(cpu: bool | None = None) -> tuple[int, int]:
    """(rank, world_size), initialising the process group through Accelerate when launched with several processes.

    Raises:
        ConfigurationError: the launcher started several processes but Accelerate set up no process group for them
            (each would profile the whole corpus alone), or MPI started them without a ``MASTER_ADDR`` to meet at
            (on a CPU, where torch has no MPI backend).
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    launched = launched_world_size()
    if launched > 1:
        from accelerate import PartialState

        cpu = cpu if cpu is not None else not torch.cuda.is_available()
        # torch's env:// rendezvous needs rank 0's address; its MPI backend (torch built with MPI, which Accelerate
        # then uses on a CPU) meets through MPI without one. On GPUs Accelerate sets up no group under MPI at all
        # (it needs LOCAL_RANK), which the check below says, with an address or without.
        if (cpu and not os.environ.get("WORLD_SIZE", "").strip() and not os.environ.get("MASTER_ADDR", "").strip()
                and not dist.is_mpi_available()):
            raise ConfigurationError(
                f"MPI started {launched} processes, but MASTER_ADDR is not set, so they cannot meet in one process "
                "group (torch's env:// rendezvous needs rank 0's address). Launch with `accelerate launch --cpu "
                "--num_processes N --mpirun_hostfile HOSTS` (which sets it), export MASTER_ADDR (and MASTER_PORT; "
                "127.0.0.1 on one machine) to every process, or launch with `torchrun --nproc_per_node N`.")

        state = PartialState(cpu=cpu)
        if state.num_processes != launched:
            raise ConfigurationError(
                f"The launcher started {launched} processes, but Accelerate set up {state.num_processes} in its "
                f"process group ({state.distributed_type}): each would profile the whole corpus alone. Launch with "
                "`torchrun --nproc_per_node N` (also on a CPU-only machine), or `accelerate launch --num_processes N` "
                "on GPUs.")
        return state.process_index, state.num_processes
    _warn_if_launched_alone()
    return 0, 1


@functools.cache
def _warn_if_launched_alone() -> None:
    """Say so when ``accelerate launch`` was asked for several processes and started this one alone.

    Without a GPU (or with ``--cpu``) and without MPI, Accelerate's launcher runs ``--num_processes N`` as one plain
    process, which it gives a rendezvous address (``MASTER_ADDR``, set only for N > 1) and no process count: the run
    is right, but N times slower than asked, without a word. A ``MASTER_ADDR`` the launcher only passed on (a
    cluster's, in its own environment) says nothing of N: ``accelerate launch --num_processes 1`` under one was told
    "started this process alone" (helper 313).
    """
    # accelerate's one-process launcher (it sets ACCELERATE_USE_CPU always), which set MASTER_ADDR: N > 1
    if "ACCELERATE_USE_CPU" in os.environ and "MASTER_ADDR" in os.environ and not _inherited("MASTER_ADDR"):
        logger.warning(
            "accelerate launch started this process alone (without a GPU, or with --cpu, it runs --num_processes N "
            "as one process unless under MPI with --mpirun_hostfile): this run profiles the whole corpus in one "
            "process. For N processes on a CPU, launch with `torchrun --nproc_per_node N -m hf_txray.cli ...` or "
            "`accelerate launch --multi_gpu --num_processes N --num_machines 1 --mixed_precision no --dynamo_backend "
            "no -m hf_txray.cli ...`.")


def _inherited(name: str) -> bool:
    """Whether the environment variable `name` holds the value it has in the environment this process's parent (its
    launcher) was started with, so that the launcher passed it on rather than set it. False where that environment
    cannot be read (no ``/proc``)."""
    try:
        environ = Path(f"/proc/{os.getppid()}/environ").read_bytes()
    except OSError:
        return False
    value = os.environ.get(name)
    return value is not None and f"{name}={value}".encode() in environ.split(b"\0")


def default_device(world_size: int) -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0")) if world_size > 1 else torch.cuda.current_device()
        return torch.device("cuda", local)
    return torch.device("cpu")


def check_device(device: Any) -> Any:
    """Refuse a `device` that torch does not know or that this machine does not have, before any work.

    Returns:
        `device`, a device index as a Python int (a numpy int, ``np.int64(0)``, or a 0-d int array or tensor, as
        :func:`~hf_txray.counts.as_int` reads one index): ``torch.device`` and ``.to()`` take no 0-d array or tensor.

    Raises:
        ConfigurationError: the device named, and what to pass instead (a bool, ``True``, is refused by name).
    """
    from .errors import ConfigurationError

    if device is None:
        return None
    if isinstance(device, (bool, np.bool_)):  # a bool is an int to isinstance: True would be read as CUDA device 1
        raise ConfigurationError(f"device={device!r} is a bool, not a device: pass cpu, cuda, cuda:1 (or the index "
                                 "1), mps... or leave it out (None: this process's accelerator, else the CPU).")
    index = as_int(device)  # np.int64(0) was "not a device torch knows" where 0 is CUDA device 0 (np.bool_: above)
    try:
        parsed = torch.device("cuda", index) if index is not None else torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        # named as device=... (the flag or the config file's key on the command line, as the checks below)
        raise ConfigurationError(f"device={device!r} is not a device torch knows: pass cpu, cuda, cuda:1, mps... or "
                                 "leave it out (None; none on the command line: this process's accelerator, else "
                                 "the CPU).") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if parsed.index is not None and parsed.index >= count or count == 0:
            raise ConfigurationError(f"device={device!r}, but this machine has {count} CUDA device(s) (torch "
                                     f"{torch.__version__}): pass device='cpu', another index, or leave it out.")
    elif parsed.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigurationError(f"device={device!r}, but MPS is not available here: pass device='cpu' or leave it "
                                 "out.")
    return device if index is None else index


def shard_bounds(num_items: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, end) of this rank's contiguous shard; same split as ``datasets`` contiguous sharding."""
    div, mod = divmod(num_items, world_size)
    start = div * rank + min(rank, mod)
    return start, start + div + (1 if rank < mod else 0)


def shard_note(rank: int, world_size: int) -> str:
    """What a progress bar of one process among several counts, for its description (empty for one process): its own
    shard, not the whole corpus (the main process alone shows bars)."""
    return f" (this process's shard: rank {rank} of {world_size})" if world_size > 1 else ""


def all_gather(obj: Any, world_size: int) -> list[Any]:
    """Every rank's `obj`, in rank order (every rank must call this).

    Raises:
        ProcessFailedError: a rank failed in its own work before this point (:func:`failing_together`) and joined
            this call with its error instead of its `obj`: every rank that did not fail raises, naming it.
    """
    if world_size == 1:
        return [obj]
    gathered = _gather(obj, world_size)
    failed = [part for part in gathered if isinstance(part, _RankFailure)]
    if failed:
        raise failed[0].error_here(len(failed))
    return gathered


def _gather(obj: Any, world_size: int) -> list[Any]:
    import torch.distributed as dist

    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, obj)
    return gathered


@dataclasses.dataclass(frozen=True)
class _RankFailure:
    """What a failed rank sends the others instead of its result (plain text: any error can be described, not every
    one pickled): its rank, its error's type and message, and the type the others raise it as
    (:func:`~hf_txray.errors.error_kind`)."""

    rank: int
    world_size: int
    error_type: str
    message: str
    kind: str | None

    @classmethod
    def of(cls, error: Exception, world_size: int) -> _RankFailure:
        import torch.distributed as dist

        kind = type(error)
        name = kind.__qualname__ if kind.__module__ in ("builtins", "hf_txray.errors") else \
            f"{kind.__module__}.{kind.__qualname__}"
        return cls(dist.get_rank(), world_size, name, str(error), error_kind(error))

    def error_here(self, num_failed: int = 1) -> ProcessFailedError:
        """The error this rank raises for the failure."""
        import torch.distributed as dist

        error = f"{self.error_type}: {self.message}" if self.message else self.error_type
        others = f" (and {num_failed - 1} other process{'es' if num_failed > 2 else ''})" if num_failed > 1 else ""
        return process_failed_error(
            f"Process {self.rank} of {self.world_size}{others} failed with {self.error_type} (its log has the "
            f"traceback), so this process ({dist.get_rank()}) stops too, where the processes meet: each raised an "
            f"error here and none waits on another, so a script may catch it on every process and go on in step. "
            f"The error of process {self.rank}: {self.message or '(no message)'}", self.rank, error, self.kind)


@contextmanager
def failing_together(world_size: int | None = None) -> Iterator[None]:
    """Run a rank's own work (no collective inside) that every rank follows with the same collective
    (:func:`all_gather`): if it fails on this rank, the rank joins that collective with its error instead of its
    result, then raises its error. The other ranks then raise a :class:`~hf_txray.errors.ProcessFailedError`
    naming it, at that same call, rather than wait for ever, or be matched with this rank's next call (a script that
    catches the error and goes on would otherwise send its next run's data into their collective). An error raised
    by every rank in the same work is sent by each: each raises its own.

    Args:
        world_size (`int`, *optional*): the number of processes; found when the work fails if omitted (the
            process group is then started, as :func:`process_info` starts it, where the launcher set one up).

    Only ``Exception`` is sent on: an interrupt (Ctrl-C, SIGTERM from the launcher) reaches every process itself.
    """
    try:
        yield
    except Exception as err:
        if not isinstance(err, ProcessFailedError):
            _tell_the_others(err, world_size)
        raise


def _tell_the_others(error: Exception, world_size: int | None) -> None:
    try:
        world_size = process_info()[1] if world_size is None else world_size
        if world_size > 1:
            _gather(_RankFailure.of(error, world_size), world_size)
    except Exception as lost:  # the group is gone (another process died): this process's error is what matters
        logger.warning("Could not tell the other processes that this one failed (%s: %s).", type(lost).__name__,
                       lost)


def check_same_corpus(identity: str | None, world_size: int) -> None:
    """Refuse a corpus that the processes do not hold in one order (every rank must call this).

    Each process builds its corpus itself (the launcher runs the script once per process) and takes its shard of
    it: contiguous rows in memory, every n-th example of a stream. A corpus ordered by chance, such as
    ``shuffle()`` without a seed or ``random.shuffle``, is ordered otherwise in every process, so the shards
    overlap: some texts were counted twice and others never, without an error (two processes on 120 PTB lines
    credited 3,498 or 3,454 positions instead of 3,288).

    Args:
        identity (`str`, *optional*): this rank's hash of its whole corpus in order (a stream: of its first texts).
        world_size (`int`): the number of processes.

    Raises:
        DatasetError: the ranks' hashes differ.
    """
    if world_size == 1:
        return
    held = all_gather(identity, world_size)
    if len(set(held)) == 1:
        return
    groups: dict[Any, list[int]] = {}
    for rank, value in enumerate(held):
        groups.setdefault(value, []).append(rank)
    ranks = " | ".join(", ".join(map(str, r)) for r in groups.values())
    raise DatasetError(
        f"The {world_size} processes hold their corpus in {len(groups)} different orders or contents (ranks that "
        f"hold the same: {ranks}): each process takes its shard of its own copy, so some texts would be profiled twice and others "
        "never. A shuffle without a seed orders the texts otherwise in every process: pass one (Dataset.shuffle(seed="
        "...), IterableDataset.shuffle(seed=..., buffer_size=...), interleave_datasets(..., seed=...), "
        "random.Random(seed).shuffle), or build the corpus identically in every process.")


def close_process_group(barrier: bool = True) -> None:
    """Leave the process group cleanly: a barrier (no rank exits while another still talks), then destroy it.

    A process that exits with its gloo/NCCL group alive can be aborted at interpreter shutdown ("terminate called
    without an active exception"), when the group's worker threads are torn down in an arbitrary order. Every
    multi-process entry point (the CLI, test scripts) calls this before it returns; a no-op on one process. Release
    what holds the group first (a DDP-wrapped model, a Trainer): while they live, destroying it leaves gloo's threads
    running.

    Args:
        barrier (`bool`, *optional*, defaults to `True`): wait for every rank first; `False` on an error path,
            where the other ranks may never arrive.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()


def is_dispatched(model: Any) -> bool:
    """Whether Accelerate dispatched `model` over devices (``device_map``: several GPUs, CPU or disk offload).

    Such a model must never be moved with ``.to()``: its hooks move each module's weights and inputs themselves.
    """
    return bool(getattr(model, "hf_device_map", None))


def refuse_unloaded_weights(model: Any) -> None:
    """Refuse a model whose weights are on the meta device without Accelerate's hooks to load them (built under
    ``init_empty_weights()`` or ``torch.device("meta")``): its first forward pass failed with a message about meta
    tensors, and advice about dtypes. An offloaded model (``device_map`` with offload, ``cpu_offload``) keeps meta
    weights that its hooks load: it is accepted."""
    meta = [name for name, p in model.named_parameters() if p.is_meta]
    if meta and not any(hasattr(m, "_hf_hook") for m in model.modules()):
        raise ModelError(
            f"{len(meta)} weights of {type(model).__name__} are not loaded: they are on the meta device (e.g. "
            f"{meta[0]!r}), as in a model built under init_empty_weights() or torch.device('meta'). Load them first: "
            "from_pretrained(...), or model.to_empty(device='cpu') and then model.load_state_dict(...).")


def refuse_offloaded(model: Any, what: str, fix: str) -> None:
    """Refuse a model that keeps weights offloaded (on the meta device between calls: ``device_map`` with CPU or disk
    offload, ``cpu_offload``) for work that reads or writes weights outside its forward pass, where Accelerate's hooks
    do not load them.

    Args:
        what (`str`): the work, as the message's subject (e.g. ``"Output effects read ..."``).
        fix (`str`): what to do instead.

    Raises:
        ModelError: naming one offloaded weight.
    """
    refuse_unloaded_weights(model)  # weights no hook loads: built on the meta device, not offloaded (helper 379)
    meta = [name for name, p in model.named_parameters() if p.is_meta]
    if meta:
        raise ModelError(
            f"{what}, and {len(meta)} of this model's weights are offloaded (on the meta device, e.g. {meta[0]!r}: a "
            f"device_map with 'disk' or CPU offload, or cpu_offload). {fix}")


def _hook_device(hook: Any) -> torch.device | None:
    """The execution device of an Accelerate hook (``AlignDevicesHook``, possibly inside a ``SequentialHook``)."""
    for candidate in [hook, *getattr(hook, "hooks", [])]:
        device = getattr(candidate, "execution_device", None)
        if device is not None:
            return torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
    return None


def input_device(model: Any) -> torch.device:
    """Where `model` expects its inputs: the execution device of its input embedding.

    For a dispatched model that is the device Accelerate's hook runs the embedding on (its weights may live on
    ``meta`` while offloaded to CPU or disk); otherwise the device of its first parameter that is not on ``meta``.
    """
    try:
        embeddings = model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        embeddings = None
    for module in (embeddings, model):
        device = _hook_device(getattr(module, "_hf_hook", None)) if module is not None else None
        if device is not None:
            return device
    for module in (embeddings, model):
        for parameter in module.parameters() if module is not None else ():
            if parameter.device.type != "meta":
                return parameter.device
    return torch.device("cpu")

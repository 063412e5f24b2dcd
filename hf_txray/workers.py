"""Worker processes for the host side of profiling: tokenization, windows, word alignment, feature values.

The main process reads buckets of texts and hands them to a pool (``fork`` start method where available, as
PyTorch's DataLoader does); at most ``2 * num_workers`` buckets are in flight, and results come back in order,
so a run is deterministic and memory stays bounded on streamed corpora. With ``num_workers=0`` everything runs
inline.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator

import torch

from .allocator import release_free_heap
from .batching import BatchEncoder, PositionBatch
from .logging import get_logger
from .streaming import Bucket

logger = get_logger(__name__)
_warned_clamp = False
_ENCODER: BatchEncoder | None = None
Reader = Callable[[int, int], tuple[list[str], "dict[str, list] | None"]]  # rows [lo, hi) -> texts, annotations
_READ: Reader | None = None


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cores_per_process() -> int:
    """This process's share of the machine's cores for its encoding workers.

    Under ``torchrun`` / ``accelerate launch`` every process of a machine (``LOCAL_WORLD_SIZE`` of them) starts its
    own workers, so the cores this process may use are divided among the processes estimated to share them:
    ``LOCAL_WORLD_SIZE`` x (this process's cores / its launcher's cores). All of them when nothing binds them apart
    (a container's CPU limit binds the launcher too); one each when every process is bound to its own cores
    (``numactl``, Slurm's ``--cpu-bind``); those of a NUMA node when each is bound to its node (``torchrun
    --numa-binding node``).
    """
    cores = available_cores()
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:  # not set by a launcher: one process
        local = 1
    launcher = max(_parent_cores(), cores)  # unreadable (0): as many as this process
    sharing = max(1, round(local * cores / launcher))
    return max(1, cores // sharing)


def _parent_cores() -> int:
    """The cores the parent process (the launcher) may run on; 0 when they cannot be read."""
    try:
        return len(os.sched_getaffinity(os.getppid()))
    except (AttributeError, OSError):
        return 0


def resolve_num_workers(requested: int | None, device_type: str) -> int:
    """Workers to use: `requested` clamped to this process's cores (:func:`cores_per_process`; said once per
    process), or the default.

    The default is 0 (inline) on a CPU device, where the forward pass already uses every core, and
    ``min(8, cores - 1)`` on an accelerator, where host work would otherwise stall it (on an H200 with 16 cores,
    4 workers fed about 220k tokens/s and the main thread waited for them; bench/RESULTS.md, GPU check).
    """
    global _warned_clamp
    cores = cores_per_process()
    if requested is None:
        return 0 if device_type == "cpu" else max(0, min(8, cores - 1))
    if requested > cores:
        if not _warned_clamp:
            _warned_clamp = True
            share = "" if cores == available_cores() else " (this process's share of the machine's cores)"
            logger.warning("num_workers=%d is more than the %d available CPU cores%s: using %d.", requested, cores,
                           share, cores)
        return cores
    return requested


MANAGER_EXIT_S = 5.0  # at most this long to wait for a stopped pool's manager thread
PARENT_CHECK_S = 1.0  # how often a worker checks that the process that started it is still alive


def _init(encoder: BatchEncoder, read: Reader | None, parent: int) -> None:
    # Ctrl-C reaches the whole process group: the main process stops the run and the pool; a worker's own
    # KeyboardInterrupt would only print one more traceback per worker, or break the pool while it starts. The
    # worker was forked with SIGINT blocked (`_sigint_held`): ignored first, then unblocked, a pending one is dropped.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGTERM: the process's default (the CLI's handler, inherited by fork, would raise in the worker too)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    # One intra-op thread, as PyTorch's DataLoader workers: a fork copies the parent's OpenMP thread pool state but
    # not its threads, and the first parallel torch op of the child (a decoder batch's position select, past
    # 32768 elements) then waited for ever at the pool's barrier (a hang on the GPU check's GPT-2-size model).
    torch.set_num_threads(1)
    global _ENCODER, _READ
    _ENCODER, _READ = encoder, read
    release_free_heap()
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="hf_txray-parent-watch").start()


def _exit_with_parent(parent: int) -> None:
    """Exit this worker once its parent is gone (killed with SIGKILL or SIGTERM, it had no chance to stop the pool):
    the worker would otherwise wait forever for work on a queue whose other end it holds itself (as PyTorch's
    DataLoader workers, which check the same way)."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(1)


def _texts(texts, annotations, rows, read: Reader | None):
    """A bucket's texts and annotations: as carried, or read from its `rows` (an in-memory source's bucket)."""
    if texts is not None:
        return texts, annotations
    assert read is not None
    return read(*rows)


def _encode(texts, example_ids, annotations, rows) -> list[PositionBatch]:
    assert _ENCODER is not None
    texts, annotations = _texts(texts, annotations, rows, _READ)
    return [_as_arrays(batch) for batch in _ENCODER(texts, example_ids, annotations)]


def _as_arrays(batch: PositionBatch) -> PositionBatch:
    """The batch with numpy arrays in place of its tensors, for the trip to the main process: a torch tensor is
    pickled through shared memory and a file descriptor handed over a socket (about 0.2 µs of main-process CPU
    per token, measured), a numpy array as plain bytes (about 0.01 µs)."""
    return dataclasses.replace(batch, inputs={k: v.numpy() for k, v in batch.inputs.items()},
                               positions=batch.positions.numpy())


def _as_tensors(batch: PositionBatch) -> PositionBatch:
    """Undo :func:`_as_arrays` without copying (``torch.from_numpy`` shares the received buffers)."""
    return dataclasses.replace(batch, inputs={k: torch.from_numpy(v) for k, v in batch.inputs.items()},
                               positions=torch.from_numpy(batch.positions))


def encode_buckets(encoder: BatchEncoder, buckets: Iterable[Bucket], num_workers: int, read: Reader | None = None
                   ) -> Iterator[tuple[Bucket, list[PositionBatch]]]:
    """``(bucket, batches)`` in input order, encoded inline or by `num_workers` processes.

    Args:
        read (`Callable`, *optional*): reads the texts and annotations of buckets that hold only their `rows`
            (:meth:`~hf_txray.streaming.InMemorySource.read`); the workers call it themselves (inherited at fork,
            pickled once at a spawn), so the texts never pass through the main process.
    """
    if num_workers == 0:
        for bucket in buckets:
            texts, annotations = _texts(bucket.texts, bucket.annotations, bucket.rows, read)
            yield bucket, encoder(texts, bucket.example_ids, annotations)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(num_workers, mp_context=context, initializer=_init,
                             initargs=(encoder, read, os.getpid())) as pool:
        pending: collections.deque = collections.deque()
        try:
            for bucket in buckets:
                with _sigint_held(fork=not pending):  # the first submit forks the workers
                    future = pool.submit(_encode, bucket.texts, bucket.example_ids, bucket.annotations, bucket.rows)
                pending.append((bucket, future))
                if len(pending) >= 2 * num_workers:
                    done, future = pending.popleft()
                    yield done, [_as_tensors(b) for b in _result(future)]
            while pending:
                done, future = pending.popleft()
                yield done, [_as_tensors(b) for b in _result(future)]
        except BaseException:  # an error, Ctrl-C or the consumer stopping early (GeneratorExit)
            stop_now(pool)
            raise


RESULT_POLL_S = 0.1  # how often a main process waiting for a bucket checks for a Ctrl-C it deferred


@contextlib.contextmanager
def _sigint_held(fork: bool = False) -> Iterator[None]:
    """Defer Ctrl-C (SIGINT) over a call into the pool, and take one pressed meanwhile when it ends, as the
    process's own handler would have (a KeyboardInterrupt, raised here, where :func:`stop_now` stops the pool).

    Raised inside the pool's code, a KeyboardInterrupt can be lost or hang the process. Inside ``os.fork``'s hooks
    (logging's ``_releaseLock``) it is printed as "Exception ignored in ..." and dropped: the run went on. Raised
    just after a ``threading.Condition`` took its lock but before its ``with`` block began (CPython checks for
    signals after every C call), it leaves the lock taken for ever (a ``Thread.start`` waiting for the pool's manager
    thread, a ``Future``'s condition, the work-id queue), and the manager thread that next needs that lock never
    ends: the interpreter's exit hook joins it without a timeout, and the process never exits after Ctrl-C.

    Blocking SIGINT with ``pthread_sigmask`` alone does not defer it: the mask is the calling thread's, and Ctrl-C is
    sent to the process, which the kernel hands to any thread that does not block it (tqdm's monitor, torch's and
    the tokenizers' pools: five such threads when ``analyze`` forks its first worker). Python's handler then runs
    in the main thread at its next check, wherever that is (helper 161: Ctrl-C lost in ``_releaseLock`` in 21 of 250
    stress runs with one such thread). So the Python-level handler is swapped for one that only notes the signal.
    The mask stays for the fork (`fork`): the workers inherit it and drop a Ctrl-C pressed before `_init` ignores
    SIGINT. Only the main thread runs signal handlers and may set them: elsewhere, and where SIGINT's handler was
    not set from Python, nothing is deferred (no KeyboardInterrupt can be raised there anyway).
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    blocked = None
    if fork and hasattr(signal, "pthread_sigmask"):
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if blocked is not None:
            # A Ctrl-C sent meanwhile to the main thread is delivered here, to the deferring handler.
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        signal.signal(signal.SIGINT, previous)
    if caught:  # the call returned: deliver the deferred Ctrl-C to the handler it was meant for
        signal.raise_signal(signal.SIGINT)


def _result(future):
    """`future`'s result, waited for in short steps with Ctrl-C deferred (:func:`_sigint_held`), so a Ctrl-C pressed
    while the main process waits for a bucket is raised between two steps, never inside the future's lock."""
    while True:
        with _sigint_held():
            if concurrent.futures.wait([future], timeout=RESULT_POLL_S).done:
                return future.result()  # done: no wait


def stop_now(pool: ProcessPoolExecutor) -> None:
    """Stop `pool` without waiting for the buckets in work: cancel the queued ones and terminate the workers (what
    ``ProcessPoolExecutor.terminate_workers`` does from Python 3.14). A run stopped by an error or Ctrl-C then exits
    at once, whatever a worker is doing; the executor's own exit otherwise waits for every bucket submitted."""
    # Taken before `shutdown`, which drops the executor's references to both.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)
    results = getattr(pool, "_result_queue", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(MANAGER_EXIT_S)
        if process.is_alive():  # stopped by the scheduler (SIGTERM waits for it to run again)
            process.kill()
            process.join(MANAGER_EXIT_S)
    # A worker terminated halfway through sending a result left the manager thread reading the rest for ever: the
    # parent's own write end kept the pipe open, and the interpreter's exit hook joins that thread without a
    # timeout (a process that never exited after Ctrl-C). With every writer closed, the read ends (EOFError), and
    # the manager sees a broken pool and exits.
    if results is not None:
        results._writer.close()
    # Let the executor's manager thread see its workers gone and close its wake-up pipe now: left running, it could
    # close the pipe while the interpreter's exit hook writes to it ("Bad file descriptor", a second traceback
    # after a Ctrl-C; Python 3.11's `_ThreadWakeup` has no lock).
    if manager is not None and manager.is_alive():
        manager.join(timeout=MANAGER_EXIT_S)

"""Keep the C heap's freed memory in the process while profiling (glibc only), so a CPU forward pass does not
page-fault its activation buffers back in at every layer.

Why: PyTorch's CPU tensors come from ``malloc``. glibc hands a freed block at the top of its heap back to the
OS (``sbrk`` down) as soon as that top exceeds ``M_TRIM_THRESHOLD`` (64 MB once its dynamic thresholds have
grown), and the next large tensor grows the heap again: every page of it is then a fresh minor page fault (kernel
time). Whether a forward pass's temporaries end at the top of the heap depends on what else lives there; between
`analyze`'s batches (encoded inputs, feature ids, the credit's pending sums) it often does, and on
all-MiniLM-L6-v2 this trimming cost 380k-450k faults (1.0-1.5 s of system time, about 10% of the run) for 1,500
sentences, against 78k-215k for a plain forward loop (measured: ``strace`` shows only ``brk`` growth and
shrinking; ``bench/bench_scale.py``). Raising the trim threshold while profiling removes them; the peak resident
memory is unchanged (the memory kept is memory the run already touched).

Last resort, documented: ``mallopt`` is process-wide. :func:`retained_heap` sets ``M_MMAP_THRESHOLD`` to 32 MB
(the largest value glibc's own dynamic rule reaches; blocks above it stay separate mappings) and
``M_TRIM_THRESHOLD`` to :data:`PROFILING_TRIM_THRESHOLD` on entry, and on exit sets the trim threshold to twice
the mmap threshold (64 MB, where glibc's dynamic rule ends for a program with large tensors): the heap's free top
goes back to the OS at the next large ``free`` after profiling. Nothing is changed when the C library is not glibc, when the user tuned malloc
through ``MALLOC_*_`` / ``GLIBC_TUNABLES`` environment variables, or when ``HF_TXRAY_KEEP_HEAP=0``.

Also here: :func:`available_memory`, what the process may still allocate (for checks before large allocations).
"""

from __future__ import annotations

import ctypes
import functools
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: its dynamic threshold's ceiling
PROFILING_TRIM_THRESHOLD = 1 << 30  # top-of-heap bytes kept while profiling before any is given back
_depth = 0  # open retained_heap blocks
_USER_TUNING = ("GLIBC_TUNABLES", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def _glibc() -> ctypes.CDLL | None:
    """The process's glibc, or None (musl, macOS, Windows, or malloc tuned by the user)."""
    if os.environ.get("HF_TXRAY_KEEP_HEAP", "1") == "0" or any(v in os.environ for v in _USER_TUNING):
        return None
    return _loaded_glibc()


@functools.lru_cache(maxsize=1)
def _loaded_glibc() -> ctypes.CDLL | None:
    # dlopen(NULL): the symbols already loaded, without ctypes.util.find_library (which runs ldconfig in a
    # subprocess, a fork of this process at every call).
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # only glibc has it (and mallopt's parameter numbers above)
    except (OSError, TypeError, AttributeError):
        return None
    return libc


@contextmanager
def retained_heap() -> Iterator[bool]:
    """Within the block, freed heap memory stays in the process (see the module docstring); yields whether the
    setting is in effect. Nested blocks (a Trainer snapshot inside a profiled run) restore only at the outermost
    exit."""
    global _depth
    libc = _glibc()
    applied = libc is not None and (_depth > 0 or (libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                                                   and libc.mallopt(M_TRIM_THRESHOLD, PROFILING_TRIM_THRESHOLD) == 1))
    _depth += applied
    try:
        yield applied
    finally:
        _depth -= applied
        if applied and _depth == 0:
            libc.mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD)  # glibc trims the top again at its next large free


def release_free_heap() -> None:
    """Give the heap's free pages back to the OS (glibc ``malloc_trim(0)``; nothing elsewhere).

    Called first thing in a forked worker: the child shares every page of the parent's heap copy-on-write, and
    the parent's next write to each such page copies it while the child still maps it. The pages that are free in
    the child are the parent's retained activation buffers; releasing them lets the parent write its own pages
    without a copy (still one fault each, but no page allocation and copy), and keeps the worker's memory small.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(ctypes.c_size_t(0))


def available_memory() -> int | None:
    """Bytes of memory this process may still take: Linux's ``MemAvailable``, lowered to what a cgroup v2 limit
    (a container's) leaves; None where neither can be read (then nothing is checked)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            free = next((int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")), None)
    except (OSError, ValueError):
        return None
    try:
        limit, used = (Path("/sys/fs/cgroup", name).read_text().strip() for name in ("memory.max", "memory.current"))
        if free is not None and limit.isdigit() and used.isdigit():
            free = min(free, max(int(limit) - int(used), 0))
    except OSError:
        pass
    return free

"""The C heap is kept while profiling (glibc), and given back to glibc's own trimming afterwards."""

from __future__ import annotations

import ctypes

import pytest

from hf_txray import allocator


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _libc():
    libc = allocator._glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc >= 2.33 only")
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    return libc


def _heap_after_churn(libc) -> int:
    """Main-arena bytes left after allocating then freeing 160 MB in 1 MB blocks (below the mmap threshold, so
    they come from the heap and end at its top)."""
    blocks = [libc.malloc(1 << 20) for _ in range(160)]
    for block in blocks:
        ctypes.memset(block, 1, 1 << 20)
    for block in reversed(blocks):
        libc.free(block)
    return libc.mallinfo2().arena


def test_retained_heap_keeps_freed_memory_then_lets_glibc_trim_again():
    libc = _libc()
    with allocator.retained_heap() as applied:
        assert applied
        kept = _heap_after_churn(libc)
    trimmed = _heap_after_churn(libc)
    assert kept >= 160 << 20  # nothing given back inside the block
    assert trimmed < kept - (64 << 20)  # after it, the free top beyond 64 MB goes back to the OS


def test_nested_blocks_restore_at_the_outermost_exit():
    libc = _libc()
    with allocator.retained_heap():
        with allocator.retained_heap() as inner:
            assert inner
        assert allocator._depth == 1
        assert _heap_after_churn(libc) >= 160 << 20  # still kept after the inner block ended
    assert allocator._depth == 0


@pytest.mark.parametrize("variable, value", [("HF_TXRAY_KEEP_HEAP", "0"), ("MALLOC_TRIM_THRESHOLD_", "131072")])
def test_opt_out_and_user_tuning_leave_malloc_alone(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with allocator.retained_heap() as applied:
        assert not applied
        assert allocator._depth == 0


def test_release_free_heap_gives_back_what_retained_heap_kept():
    libc = _libc()
    with allocator.retained_heap():
        kept = _heap_after_churn(libc)
        allocator.release_free_heap()  # what a forked encoding worker does first
        released = libc.mallinfo2().arena
    assert released < kept - (100 << 20)

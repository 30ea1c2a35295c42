"""What a read of a live target may believe: one set of bounds for every reader in record/.

The target runs while we read it, so any word may be torn, stale or garbage. Every count,
size and pointer taken from its memory is checked against these before it is followed or
allocated for; nothing real comes near them. The walker's copies of the first four (in
flamekit/record/walk/) are meant to import these.
"""

from __future__ import annotations

#: Addresses at or above this are not user space on x86_64 (47-bit virtual addresses).
USER_SPACE_END = 1 << 47
#: Most interpreters / threads per interpreter followed before calling a list corrupt.
MAX_INTERPRETERS = 1024
MAX_THREADS = 100_000
#: Largest single range read (a bigger one means a corrupt size); also the largest
#: data-stack region the walker reads in one piece.
MAX_RANGE = 8 << 20
#: Ranges closer than this are read as one: the kernel charges about 1 us per iovec and a
#: few ns per byte copied, so bytes are cheaper than iovecs up to a gap of a page or so.
#: The walker's value (it merges frame objects); the object reader's was 1,024 and now
#: is this too (its lookups made the same number of system calls with either).
MERGE_GAP = 1536


def bad_pointer(p: int) -> bool:
    """Not a plausible pointer to an object: objects are 8-aligned and in user space, and
    the first 64 KiB are never mapped."""
    return p & 7 != 0 or p <= 0xFFFF or p >= USER_SPACE_END


def bad_address(p: int) -> bool:
    """Not a plausible address of bytes (any alignment: C strings, character buffers)."""
    return p <= 0xFFFF or p >= USER_SPACE_END

"""glibc malloc settings for the ``edgefusion`` process: freed large blocks stay in the heap.

PyTorch's CPU allocator returns each temporary to malloc. glibc hands blocks above its mmap
threshold (adjusted at run time, at most 32 MiB) back to the kernel and trims the heap top, so
every 1920x1080 frame through the eager student page-faults its temporaries anew: about 41 ms
per frame instead of about 31 ms in a fresh process (1 thread, medians of 20 frames, four
alternating runs each on this project's 2-core build host). :func:`keep_freed_memory` fixes
both thresholds with ``mallopt``: blocks up to 32 MiB come from the heap, and freed memory is
kept for the next frame (the process keeps its peak size). The CLI calls it at start; a program
that embeds the PyTorch path may call it too. Elsewhere than glibc nothing changes.
"""

from __future__ import annotations

import ctypes

#: mallopt parameters (glibc's malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: The largest mmap threshold glibc accepts (HEAP_MAX_SIZE / 2 on 64-bit), bytes.
MMAP_THRESHOLD = 32 << 20
#: Free memory at the heap top kept instead of returned to the kernel, bytes.
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (see module doc); True when glibc took both, False elsewhere."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the process already uses
    except (OSError, AttributeError, TypeError):  # no handle on the process (Windows: TypeError), or no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1

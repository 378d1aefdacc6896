"""Settings of the native libraries' memory allocators, made before the libraries load.

deltalake's Rust core allocates with its own jemalloc, which keeps the pages a write frees for ~10 s
(its dirty decay) before it gives them back; DataFusion's and pyarrow's allocators (mimalloc) cannot
use them meanwhile. A build writes a Delta table every second or two, so on the standard library
each node started on top of the last writes' freed pages. Returning them after one second lowered the
build's peak RSS by ~60 MB at no cost in time (measured: docs/scaling.md, "Allocators"). A value the user set
in the environment is kept.

`cpgflow build` also turns transparent huge pages off for its process (Linux `PR_SET_THP_DISABLE`;
its extraction workers inherit it): where the kernel gives 2 MiB pages to memory an allocator asks
for them (`madvise` mode here), a page counts whole in RSS and is zeroed whole however little of it a
buffer touches before it is freed. With 4 KiB pages the stdlib build peaked ~110 MiB lower in the
same time (docs/scaling.md). A program that imports `driver` keeps its own setting: the flag outlives
the call (every process started later inherits it), so only the build command makes it.
"""

from __future__ import annotations

import os
import sys

JEMALLOC_SETTINGS = "_RJEM_MALLOC_CONF"  # deltalake's jemalloc reads its options from this variable
JEMALLOC_OPTIONS = "dirty_decay_ms:1000,muzzy_decay_ms:0"
PR_SET_THP_DISABLE = 41  # a prctl option (linux/prctl.h, Linux 3.15)


def configure() -> None:
    """Set the allocators' options, unless the environment sets them already. They are read when a
    library loads, so this runs before any of them is imported (`driver/__init__.py`); extraction
    workers inherit the environment."""
    os.environ.setdefault(JEMALLOC_SETTINGS, JEMALLOC_OPTIONS)


def without_huge_pages() -> None:
    """Turn transparent huge pages off for this process and the processes it starts. Where the system
    has no such setting (not Linux, a kernel before 3.15) or forbids it (a seccomp filter), nothing
    changes: it only saves memory."""
    if sys.platform != "linux":
        return
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)

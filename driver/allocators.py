"""Settings of the native libraries' memory allocators, made before the libraries load.

deltalake's Rust core allocates with its own jemalloc, which keeps the pages a write frees for ~10 s
(its dirty decay) before it gives them back; DataFusion's and pyarrow's allocators (mimalloc) cannot
use them meanwhile. A build writes a Delta table every second or two, so on the standard library
each node started on top of the last writes' freed pages. Returning them after one second lowered the
build's peak RSS by ~60 MB at no cost in time (measured: docs/scaling.md, "Allocators"). A value the user set
in the environment is kept.
"""

from __future__ import annotations

import os

JEMALLOC_SETTINGS = "_RJEM_MALLOC_CONF"  # deltalake's jemalloc reads its options from this variable
JEMALLOC_OPTIONS = "dirty_decay_ms:1000,muzzy_decay_ms:0"


def configure() -> None:
    """Set the allocators' options, unless the environment sets them already. They are read when a
    library loads, so this runs before any of them is imported (`driver/__init__.py`); extraction
    workers inherit the environment."""
    os.environ.setdefault(JEMALLOC_SETTINGS, JEMALLOC_OPTIONS)

"""Facts about the machine a run executes on that its decisions depend on."""

from __future__ import annotations

import functools
import os
from pathlib import Path


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform says)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def session_partitions(jobs: int = 0) -> int:
    """The partitions a session runs each query on: one per core, at most ``jobs`` when given."""
    cores = available_cores()
    return min(jobs, cores) if jobs > 0 else cores


@functools.cache
def physical_memory() -> int:
    """Bytes of memory this process may use: the machine's, or its cgroup's limit when lower (read
    once: every session a process opens asks)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()  # "max" (no limit) or a number of bytes
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total

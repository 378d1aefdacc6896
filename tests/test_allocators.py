"""The allocator options `driver/allocators.py` sets reach deltalake's jemalloc."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from driver.allocators import JEMALLOC_OPTIONS, JEMALLOC_SETTINGS

ROOT = Path(__file__).resolve().parents[1]


def _python(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != JEMALLOC_SETTINGS} | env
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True,
                          text=True, check=True)


def test_importing_the_driver_sets_the_options_before_deltalake_loads() -> None:
    script = ("import os, sys; import driver; loaded = 'deltalake' in sys.modules; "
              f"print(loaded, os.environ[{JEMALLOC_SETTINGS!r}])")
    assert _python(script).stdout.split() == ["False", JEMALLOC_OPTIONS]


def test_deltalakes_jemalloc_reads_them_and_a_users_own_are_kept() -> None:
    # stats_print makes jemalloc print its options at exit: it read this variable, and driver kept it
    done = _python("import driver, deltalake", **{JEMALLOC_SETTINGS: "stats_print:true,dirty_decay_ms:1234"})
    assert "opt.dirty_decay_ms: 1234" in done.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="a Linux process setting (prctl)")
def test_a_build_turns_huge_pages_off_for_its_process_and_the_processes_it_starts() -> None:
    from driver.allocators import PR_SET_THP_DISABLE

    get = "ctypes.CDLL(None).prctl(42, 0, 0, 0, 0)"  # PR_GET_THP_DISABLE
    script = ("import ctypes, subprocess, sys; "
              f"ctypes.CDLL(None).prctl({PR_SET_THP_DISABLE}, 0, 0, 0, 0); "  # on (this test process may have them off)
              f"import driver; print({get}); "  # importing the driver changes nothing
              f"from driver.allocators import without_huge_pages; without_huge_pages(); print({get}); "
              f"print(subprocess.run([sys.executable, '-c', 'import ctypes; print({get})'], capture_output=True, "
              "text=True).stdout)")
    assert _python(script).stdout.split() == ["0", "1", "1"]  # on after the import, then off, and off in a child

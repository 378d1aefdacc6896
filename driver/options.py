"""The checks every build option passes before anything is touched, shared by the CLI and the
Python API: a wrong option is a `BuildOptionError` naming the option, raised before the output
folder is created or a worker started."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import get_args
from urllib.parse import urlparse

from driver.storage import is_object_store
from relspec.calibration import CALIBRATION_MODES
from relspec.policy import EXTRACTION_EXECUTORS, StagingMedium, ValidationMode
from semantics.ir import CACHE_POLICIES
from semantics.views import OUTPUTS, discover_specs

# More extraction processes than this never pay on one machine; a larger number is a typo.
MAX_JOBS = 1024


class BuildOptionError(ValueError):
    """A build option the caller got wrong. ``option`` is its name in the Python API
    (`build_driver`'s parameter); the CLI shows its own flag in its place."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")
        self.option = option
        self.problem = problem


def check_source_root(source_root: str | Path) -> Path:
    path = Path(source_root)
    if not str(source_root):
        raise BuildOptionError("source_root", "empty: give the folder of a code base")
    if not path.exists():
        raise BuildOptionError("source_root", f"'{source_root}' does not exist")
    if not path.is_dir():
        raise BuildOptionError("source_root", f"'{source_root}' is not a directory")
    return path.resolve()


def check_output(output_dir: str | Path | None) -> None:
    if output_dir is not None and not str(output_dir).strip():
        raise BuildOptionError("output_dir", "empty: give a folder (or URI) for the tables")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_jobs(jobs: object) -> None:
    if not _is_int(jobs) or not 0 <= jobs <= MAX_JOBS:  # type: ignore[operator]
        raise BuildOptionError("jobs", f"must be 0 (one per core) or a number of processes up to {MAX_JOBS}, "
                                       f"not {jobs!r}")


def check_max_file_bytes(max_file_bytes: object) -> None:
    if not _is_int(max_file_bytes) or max_file_bytes <= 0:  # type: ignore[operator]
        raise BuildOptionError("max_file_bytes", f"must be a positive number of bytes, not {max_file_bytes!r}")


def check_validation_mode(mode: object) -> None:
    modes = get_args(ValidationMode)
    if mode not in modes:
        raise BuildOptionError("validation_mode", f"must be one of {', '.join(modes)}, not {mode!r}")


def check_calibration(mode: object) -> None:
    if mode not in CALIBRATION_MODES:
        raise BuildOptionError("calibration", f"must be one of {', '.join(CALIBRATION_MODES)}, not {mode!r}")


def check_staging(staging: object) -> None:
    media = get_args(StagingMedium)
    if staging not in media:
        raise BuildOptionError("staging", f"must be one of {', '.join(media)}, not {staging!r}")


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def check_executor(executor: object, scheduler: object, output_dir: str | Path | None = None) -> None:
    """The extraction executor is one we have; a scheduler address goes with the Dask one, which
    needs the ``dask`` extra installed; a scheduler on another machine has workers that write where
    the build reads, so its output must be on object storage."""
    if executor not in EXTRACTION_EXECUTORS:
        raise BuildOptionError("executor", f"must be one of {', '.join(EXTRACTION_EXECUTORS)}, not {executor!r}")
    if scheduler is not None and not isinstance(scheduler, str):
        raise BuildOptionError("scheduler", f"must be an address such as tcp://HOST:PORT, not {scheduler!r}")
    if scheduler and executor != "dask":
        raise BuildOptionError("scheduler", "goes with the dask executor (a local build has no scheduler)")
    if scheduler and not scheduler.startswith("tcp://"):
        raise BuildOptionError("scheduler", f"{scheduler!r}: give the Dask scheduler as tcp://HOST:PORT")
    host = urlparse(scheduler).hostname if scheduler else None
    if host and host not in LOCAL_HOSTS and output_dir is not None and not is_object_store(str(output_dir)):
        raise BuildOptionError("scheduler", f"the workers at {scheduler} cannot write to this machine's folder "
                                            f"{output_dir}: give --out on object storage (s3://BUCKET/PREFIX)")
    if executor == "dask" and importlib.util.find_spec("distributed") is None:
        raise BuildOptionError("executor", "dask needs Dask installed: pip install 'cpgflow[dask]'")


def check_globs(option: str, globs: Sequence[str]) -> None:
    if isinstance(globs, str) or not all(isinstance(glob, str) and glob for glob in globs):
        raise BuildOptionError(option, f"must be a list of non-empty glob strings, not {globs!r}")


def check_cache_overrides(overrides: Mapping[str, str]) -> None:
    """Each override names a view of the pipeline and a policy that view can take: an output is
    always published, and only an output can be."""
    views = {spec.name for spec in discover_specs()}
    for view, policy in overrides.items():
        given = f"{view}={policy}"
        if policy not in CACHE_POLICIES:
            problem = f"{given}: the policy must be one of {', '.join(CACHE_POLICIES)}"
        elif view not in views:
            problem = f"{given}: no view is named {view!r} (`cpgflow plan PATH` lists them)"
        elif view in OUTPUTS and policy != "delta_output":
            problem = f"{given}: {view} is a published output; it can only be delta_output"
        elif view not in OUTPUTS and policy == "delta_output":
            problem = f"{given}: only the outputs ({', '.join(OUTPUTS)}) are published"
        else:
            continue
        raise BuildOptionError("cache_overrides", problem)


def check_build_options(source_root: str | Path, output_dir: str | Path | None, *, jobs: object,
                        include: Sequence[str], exclude: Sequence[str], max_file_bytes: object,
                        cache_overrides: Mapping[str, str], validation_mode: object,
                        staging: object = "auto", calibration: object = "observe", executor: object = "local",
                        scheduler: object = None) -> Path:
    """Every check above; returns the resolved source root."""
    root = check_source_root(source_root)
    check_output(output_dir)
    check_jobs(jobs)
    check_globs("include", include)
    check_globs("exclude", exclude)
    check_max_file_bytes(max_file_bytes)
    check_cache_overrides(cache_overrides)
    check_validation_mode(validation_mode)
    check_staging(staging)
    check_calibration(calibration)
    check_executor(executor, scheduler, output_dir)
    return root

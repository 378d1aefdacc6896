"""Where an output lives: a local folder, or a prefix on S3-compatible object storage.

On object storage the Delta tables are written and read by delta-rs with the output's storage
options (``--storage-option KEY=VALUE``, delta-rs's own keys) over the ``AWS_*`` environment, which
delta-rs reads itself. What must stay on a local disk — the extraction spool — goes to a cache folder
of this machine named after the output's URI (`local_folder`); Hamilton's planning cache is the
machine's, shared by every output (`cache_home`).

A DataFusion session cannot scan a Delta table on object storage through the Delta provider with
the pinned datafusion/deltalake pair: the provider's scan, across the FFI boundary, finds no object
store for the bucket (delta-io/delta-rs#4623, still open in deltalake 1.6.6). Such a table is read
instead from its snapshot's Parquet files by DataFusion's own Parquet scan, through an S3 object
store registered on the session from the same settings (`register_object_store`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from datafusion import SessionContext

if TYPE_CHECKING:
    from obstore.store import ObjectStore

# The schemes delta-rs, DataFusion and the build lease (driver/lock.py) all reach with one settings map.
OBJECT_STORE_SCHEMES = ("s3",)
CACHE_ENV = "CPGFLOW_CACHE_DIR"
SPOOL_FOLDER = "_spool"  # scratch space of a build in progress (the extraction results)
StorageOptions = dict[str, str] | None

# Each S3 setting by the names delta-rs and the AWS environment give it (case-insensitive).
_S3_KEYS = {
    "endpoint": ("aws_endpoint_url", "aws_endpoint", "endpoint_url", "endpoint"),
    "region": ("aws_region", "aws_default_region", "region"),
    "access_key_id": ("aws_access_key_id", "access_key_id"),
    "secret_access_key": ("aws_secret_access_key", "secret_access_key"),
    "session_token": ("aws_session_token", "aws_token", "session_token", "token"),
    "allow_http": ("aws_allow_http", "allow_http"),
}


class StorageError(ValueError):
    """An output location or storage option that cannot be used."""


def scheme(location: str) -> str:
    """The URI scheme of ``location`` ("" for a plain path)."""
    return location.split("://", 1)[0].lower() if "://" in location else ""


def is_object_store(location: str) -> bool:
    return scheme(location) not in ("", "file")


def local_path(location: str) -> Path:
    """The path of a local ``location``: a plain path, or a ``file://`` URI's."""
    if scheme(location) == "file":
        return Path(unquote(urlparse(location).path))
    return Path(location)


def output_location(output_dir: str | Path) -> str:
    """An output as every part of a run names it: a URI without its trailing slash, or an absolute path."""
    text = str(output_dir)
    if "://" in text:
        check_location(text)
        return text.rstrip("/")
    return str(Path(text).resolve())


def check_location(location: str) -> None:
    """Refuse a URI whose storage this build cannot use (one line, for the CLI)."""
    kind = scheme(location)
    if kind in OBJECT_STORE_SCHEMES and not urlparse(location).netloc:
        raise StorageError(f"{location}: an object storage location needs a bucket (s3://BUCKET/PREFIX)")
    if kind in ("", "file", *OBJECT_STORE_SCHEMES):
        return
    raise StorageError(f"{location}: {kind}:// is not supported; an output is a local folder or s3://BUCKET/PREFIX")


def parse_storage_options(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs as a storage-options map (delta-rs's keys, such as AWS_ENDPOINT_URL)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise StorageError(f"storage option {pair!r} is not KEY=VALUE")
        options[key.strip()] = value
    return options


def s3_settings(options: StorageOptions) -> dict[str, str]:
    """The S3 settings of an output: the ``AWS_*`` environment, overridden by its storage options."""
    given = {key.lower(): value for key, value in (options or {}).items()}
    environment = {key.lower(): value for key, value in os.environ.items() if key.startswith("AWS_")}
    settings = {}
    for setting, names in _S3_KEYS.items():
        for source in (given, environment):
            value = next((source[name] for name in names if name in source), None)
            if value is not None:
                settings[setting] = value
                break
    return settings


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def register_object_store(session: SessionContext, location: str, options: StorageOptions) -> None:
    """Make the bucket of ``location`` readable by ``session``'s own scans."""
    from datafusion.object_store import AmazonS3

    bucket = urlparse(location).netloc
    settings = s3_settings(options)
    store = AmazonS3(bucket, region=settings.get("region"), access_key_id=settings.get("access_key_id"),
                     secret_access_key=settings.get("secret_access_key"),
                     session_token=settings.get("session_token"), endpoint=settings.get("endpoint"),
                     allow_http=_truthy(settings.get("allow_http")))
    session.register_object_store("s3://", store, bucket)


def cache_home() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cpgflow"


def local_folder(location: str) -> str:
    """Where the build of ``location`` keeps what must be on a local disk: the output folder itself,
    or for an output on object storage a folder of this machine's cache named after its URI."""
    if not is_object_store(location):
        return location
    digest = hashlib.sha256(location.rstrip("/").encode()).hexdigest()[:16]
    bucket = urlparse(location).netloc
    return str(cache_home() / "outputs" / f"{bucket}-{digest}")


def object_store(location: str, options: StorageOptions) -> ObjectStore:
    """An obstore handle on the prefix ``location`` (listing, deleting, conditional puts)."""
    from obstore.store import S3Store

    settings = s3_settings(options)
    config = {key: settings[key] for key in ("endpoint", "region", "access_key_id", "secret_access_key",
                                             "session_token") if key in settings}
    return S3Store.from_url(location.rstrip("/") + "/", config=config,  # type: ignore[arg-type]
                            client_options={"allow_http": _truthy(settings.get("allow_http"))})


def list_folders(location: str, options: StorageOptions) -> list[str]:
    """The names of the folders directly under ``location`` on object storage."""
    import obstore

    found = obstore.list_with_delimiter(object_store(location, options))
    return [prefix.rstrip("/").rsplit("/", 1)[-1] for prefix in found["common_prefixes"]]


def all_exist(uris: list[str], options: StorageOptions) -> bool:
    """Whether every object ``uris`` names (in one bucket) exists on object storage."""
    import obstore
    from obstore.exceptions import NotFoundError

    bucket = urlparse(uris[0]).netloc
    store = object_store(f"s3://{bucket}", options)
    try:
        for uri in uris:
            obstore.head(store, urlparse(uri).path.lstrip("/"))
    except (NotFoundError, FileNotFoundError):  # obstore raises either for a missing object
        return False
    return True


def delete_folder(location: str, options: StorageOptions) -> None:
    """Every object under ``location`` on object storage, deleted."""
    import obstore

    store = object_store(location, options)
    paths = [meta["path"] for batch in obstore.list(store) for meta in batch]
    if paths:
        obstore.delete(store, paths)

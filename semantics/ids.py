"""The one id scheme: a kind prefix plus a 128-bit hash of the row's identifying parts.

Nodes hash (repo-relative path, kind, bstart, bend[, discriminator]); edges hash (file id, kind,
src, dst). Parts are joined with the ASCII unit separator; None is never hashed. The SQL views
compute the same function with DataFusion's ``md5`` (see ``semantics.cpg_views.sql_stable_id``), so
an id means the same thing whichever engine made it.
"""

from __future__ import annotations

try:  # CPython's own MD5: ~3x faster than OpenSSL's for an id's few dozen bytes (no EVP context per call)
    from _md5 import md5
except ImportError:  # an interpreter built without it
    from hashlib import md5

SEPARATOR = "\x1f"


def stable_id(prefix: str, *parts: str | int) -> str:
    if any(part is None for part in parts):
        raise ValueError(f"an id part is None: {parts!r}")
    digest = md5(SEPARATOR.join(map(str, parts)).encode("utf-8"), usedforsecurity=False).hexdigest()
    return f"{prefix}:{digest}"


def file_id_for(path: str) -> str:
    return stable_id("file", path)


def sql_stable_id(prefix: str, *parts: str) -> str:
    """SQL computing `stable_id(prefix, *parts)` in DataFusion; ``parts`` are SQL expressions."""
    separator = SEPARATOR.replace("'", "''")
    return f"concat('{prefix}:', md5(concat_ws('{separator}', {', '.join(parts)})))"


EXTERNAL_PATH = "<external>"
EXTERNAL_KIND = "EXTERNAL_SYMBOL"


def sql_external_id(qualname_sql: str) -> str:
    """SQL for the id of the EXTERNAL_SYMBOL node of a name outside the code base: the node id
    scheme with path `<external>` and the qualified name (`os.path.join`) in place of a span."""
    return sql_stable_id("ext", f"'{EXTERNAL_PATH}'", f"'{EXTERNAL_KIND}'", qualname_sql)

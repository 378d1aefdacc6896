"""The one content hash of run artifacts: view and plan fingerprints, package fingerprints, ids."""

from __future__ import annotations

import hashlib


def digest(*parts: str | bytes) -> str:
    hasher = hashlib.md5(usedforsecurity=False)
    for part in parts:
        hasher.update(part if isinstance(part, bytes) else part.encode())
        hasher.update(b"\x1f")
    return hasher.hexdigest()

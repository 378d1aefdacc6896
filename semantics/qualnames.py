"""Qualified names as DESIGN.md section 4 defines them."""

from __future__ import annotations

BUILTIN_PREFIX = "<builtin>"


def module_name_for(path: str) -> str:
    """``pkg/mod.py`` → ``pkg.mod``; ``pkg/__init__.py`` → ``pkg``; stubs (``.pyi``) likewise."""
    stem = path.rsplit(".", 1)[0] if path.endswith((".py", ".pyi")) else path
    parts = [part for part in stem.split("/") if part]
    if len(parts) > 1 and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package_path(path: str) -> bool:
    return path.rsplit("/", 1)[-1] in ("__init__.py", "__init__.pyi")


def package_of(module: str, is_package: bool) -> str:
    """The package a relative import is resolved against."""
    if is_package:
        return module
    return module.rpartition(".")[0]


def resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    """Absolute dotted name of ``from <level dots><target> import ...`` written in ``module``.

    Returns the dots unresolved (``..x``) when the level climbs above the top package, so the
    name is still honest about what was written.
    """
    if level == 0:
        return target or ""
    base = package_of(module, is_package).split(".") if module else []
    base = [part for part in base if part]
    if level > len(base):
        return "." * level + (target or "")
    base = base[: len(base) - (level - 1)]
    if target:
        base.append(target)
    return ".".join(base)

"""Relative imports: `from ..m import f`, `from . import m`, `from .m import f as g`."""
from pkg.sub.worker import work

work()

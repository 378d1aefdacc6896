"""A valid, arbitrarily large generated module whose graph counts are known by construction.

Each unit ``i`` of the module is

    class C{i}:
        def __init__(self, x):
            self.x = x

        def m{i}(self, y):
            z = helper_{i}(y)
            return self.x + z


    def helper_{i}(v):
        w = v * 2
        return len(str(w))


    def use_{i}():
        c = C{i}(1)
        return c.m{i}(helper_{i}(3))

so a unit holds 4 functions and 6 call sites, which resolve to 7 CALLS edges: ``helper_{i}(y)``,
``helper_{i}(3)`` and ``c.m{i}(...)`` one each (a function; a method through an instance), ``len``
and ``str`` one each (builtins), ``C{i}(1)`` two (the class and its ``__init__``).
"""

from __future__ import annotations

FUNCTIONS_PER_UNIT = 4
CLASSES_PER_UNIT = 1
CALL_SITES_PER_UNIT = 6
CALLS_EDGES_PER_UNIT = 7

_UNIT = '''class C{i}:
    def __init__(self, x):
        self.x = x

    def m{i}(self, y):
        z = helper_{i}(y)
        return self.x + z


def helper_{i}(v):
    w = v * 2
    return len(str(w))


def use_{i}():
    c = C{i}(1)
    return c.m{i}(helper_{i}(3))


'''


def units_for_bytes(size: int) -> int:
    """How many units make a module of about ``size`` bytes."""
    return max(1, size // len(_UNIT.format(i=10**5)))


def large_module(units: int) -> str:
    return '"""A generated module."""\n\n\n' + "".join(_UNIT.format(i=i) for i in range(units))

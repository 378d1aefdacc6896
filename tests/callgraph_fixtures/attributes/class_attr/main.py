"""Class attributes holding functions: through the class, through an instance (a function becomes a
method), wrapped in `staticmethod`, and set on the class from outside."""


def f(self):
    return "f"


def g():
    return "g"


def h():
    return "h"


class Plugin:
    hook = f
    factory = staticmethod(g)


Plugin().hook()
Plugin.hook(None)
Plugin.factory()
Plugin.late = h
Plugin.late()

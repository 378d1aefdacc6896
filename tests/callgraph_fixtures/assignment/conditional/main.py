"""A conditional expression and `or` both flow into the target."""


def f():
    return "f"


def g():
    return "g"


def h():
    return "h"


def choose(flag):
    fn = f if flag else g
    return fn()


def fallback(cb):
    fn = cb or h
    return fn()


choose(True)
choose(False)
fallback(None)

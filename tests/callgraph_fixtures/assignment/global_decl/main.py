"""A module name rebound from a function under `global`: readers see both values."""


def f():
    return "f"


def g():
    return "g"


handler = f


def install():
    global handler
    handler = g


def fire():
    return handler()


fire()
install()
fire()

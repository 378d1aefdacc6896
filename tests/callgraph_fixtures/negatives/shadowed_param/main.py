"""A parameter named like a module function: the call is of the argument, not the module's f."""


def f():
    return "f"


def g():
    return "g"


def apply(f):
    return f()


apply(g)

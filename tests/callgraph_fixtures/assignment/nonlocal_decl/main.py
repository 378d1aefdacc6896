"""A closure rebinds the enclosing function's name under `nonlocal`."""


def f():
    return "f"


def g():
    return "g"


def outer():
    cb = f

    def swap():
        nonlocal cb
        cb = g

    cb()
    swap()
    return cb()


outer()

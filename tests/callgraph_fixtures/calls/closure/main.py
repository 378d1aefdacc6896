"""A closure calls the function captured from its enclosing call."""


def f():
    return "f"


def g():
    return "g"


def bind(cb):
    def run():
        return cb()

    return run


bound_f = bind(f)
bound_g = bind(g)
bound_f()
bound_g()

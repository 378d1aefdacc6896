"""A container built in one function from its arguments, returned, and iterated by the caller."""


def f():
    return "f"


def g():
    return "g"


def collect(*fns):
    return list(fns)


def pack(a, b):
    return {"first": a, "second": b}


def run():
    for fn in collect(f, g):
        fn()
    return pack(g, f)["second"]()


run()

"""`*args` packs the extra positional arguments into a tuple, in order."""


def f():
    return "f"


def g():
    return "g"


def h():
    return "h"


def call_all(*fns):
    for fn in fns:
        fn()


def call_first(*fns):
    return fns[0]()


call_all(f, g)
call_first(h, f)

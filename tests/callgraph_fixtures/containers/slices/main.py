"""Constant slices of a list literal hold the elements in the slice."""


def f():
    return "f"


def g():
    return "g"


def h():
    return "h"


fns = [f, g, h]


def run_tail():
    for fn in fns[1:]:
        fn()


def run_copy():
    for fn in fns[:]:
        fn()


def run_head():
    return fns[:1][0]()


run_tail()
run_copy()
run_head()

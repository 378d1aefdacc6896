"""Iterating a set literal and a set filled with `add`."""


def f():
    return "f"


def g():
    return "g"


def h():
    return "h"


def run():
    for fn in {f, g}:
        fn()
    later = set()
    later.add(h)
    for fn in later:
        fn()


run()

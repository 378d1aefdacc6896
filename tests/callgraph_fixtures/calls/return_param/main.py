"""A returned parameter is the call's result: the argument passed for that parameter, no other."""


def f():
    return "f"


def g():
    return "g"


def h():
    return "h"


def identity(x):
    return x


def first(a, b):
    return a


def run():
    identity(f)()
    return first(g, h)()


run()

"""Constant indexes into nested tuples."""


def f():
    return "f"


def g():
    return "g"


def h():
    return "h"


table = (f, (g, h))


def pick_top():
    return table[0]()


def pick_nested():
    return table[1][0]()


pick_top()
pick_nested()

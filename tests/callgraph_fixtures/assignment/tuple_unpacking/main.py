"""Tuple and list unpacking, nested targets, and a tuple returned by a call."""


def f():
    return "f"


def g():
    return "g"


def h():
    return "h"


def pair():
    return f, g


def call_left():
    left, right = f, g
    return left()


def call_nested():
    (a, b), c = (f, g), h
    return b() + c()


def call_list_target():
    [p, q] = [h, f]
    return q()


def call_from_return():
    m, n = pair()
    return n()


call_left()
call_nested()
call_list_target()
call_from_return()

"""Starred targets: the starred name is a list of the elements it swallows, the others are exact."""


def f():
    return "f"


def g():
    return "g"


def h():
    return "h"


def call_head():
    head, *tail = f, g, h
    return head()


def call_tail():
    head, *tail = f, g, h
    for fn in tail:
        fn()


def call_last():
    *init, last = [f, g, h]
    return last()


call_head()
call_tail()
call_last()

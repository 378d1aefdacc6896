"""A use reads only the last binding before it when nothing else can reach it: a rebinding in a
branch it may come after, or in a function that declares the name global and may run before it,
keeps the earlier value too."""
import sys


def a():
    return "a"


def b():
    return "b"


def branch(flag):
    handler = a
    if flag:
        handler = b
    return handler()


def swap():
    global current
    current = b


def maybe_swap(flag):
    if flag:
        swap()


current = a
maybe_swap(len(sys.argv) > 99)
current()
branch(True)

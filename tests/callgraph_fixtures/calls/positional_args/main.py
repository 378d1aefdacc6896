"""Positional arguments flow to the parameter at the same position, and only to it."""


def f(x):
    return x


def g(x):
    return x


def apply(cb, value):
    return cb(value)


def apply_second(a, b):
    return b(1)


apply(f, 1)
apply_second(f, g)

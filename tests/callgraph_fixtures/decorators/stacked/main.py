"""Stacked decorators apply bottom-up: outer(mark(inner(task)))."""


def outer(fn):
    def outer_wrapper():
        return fn()

    return outer_wrapper


def inner(fn):
    def inner_wrapper():
        return fn()

    return inner_wrapper


def mark(fn):
    return fn


@outer
@mark
@inner
def task():
    return "task"


task()

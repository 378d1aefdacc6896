"""A list literal's element loaded by a constant index, negative ones included."""


def f():
    return "f"


def g():
    return "g"


fns = [f, g]


def call_first():
    return fns[0]()


def call_last():
    return fns[-1]()


call_first()
call_last()

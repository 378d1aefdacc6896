"""An index known only at run time loads every element."""


def f():
    return "f"


def g():
    return "g"


fns = [f, g]


def pick(i):
    return fns[i]


def run():
    for i in range(2):
        pick(i)()


run()

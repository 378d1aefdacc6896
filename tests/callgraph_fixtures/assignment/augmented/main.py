"""Augmented assignment: `+=` on a list and on a tuple keeps the old elements and adds the new ones."""


def f():
    return "f"


def g():
    return "g"


handlers = [f]
handlers += [g]


def run_all():
    for fn in handlers:
        fn()


def run_tuple():
    count = 0
    count += 1
    pipeline = (f,)
    pipeline += (g,)
    for fn in pipeline:
        fn()
    return count


run_all()
run_tuple()

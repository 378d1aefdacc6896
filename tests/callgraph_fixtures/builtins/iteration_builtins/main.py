"""Functions flowing through `enumerate`, `zip`, `reversed`, `iter` and `next`."""


def f():
    return "f"


def g():
    return "g"


def h():
    return "h"


def run():
    for _index, fn in enumerate([f, g]):
        fn()
    for left, right in zip([f], [h]):
        left()
        right()
    for fn in reversed([g]):
        fn()
    first = next(iter([h]))
    return first()


run()

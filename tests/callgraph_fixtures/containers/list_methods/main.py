"""A list filled by `append`, `extend` and `insert`, then iterated."""


def f():
    return "f"


def g():
    return "g"


def h():
    return "h"


def run():
    fns = []
    fns.append(f)
    fns.extend([g])
    fns.insert(0, h)
    for fn in fns:
        fn()


run()

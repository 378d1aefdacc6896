"""`for` targets: a plain name, a tuple target, a nested tuple target."""


def f():
    return "f"


def g():
    return "g"


def h():
    return "h"


def loop_plain():
    for fn in [f, g]:
        fn()


def loop_pairs():
    for _label, fn in (("h", h),):
        fn()


def loop_nested():
    for (fn, _), _ in [((f, 1), 2)]:
        fn()


loop_plain()
loop_pairs()
loop_nested()

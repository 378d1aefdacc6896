"""Assignment expressions, one in a comprehension (it binds in the enclosing function)."""


def f():
    return "f"


def g():
    return "g"


def pick():
    return f


def run():
    if (fn := pick()) is not None:
        fn()
    values = [(last := g) for _ in (1, 2)]
    return last(), values


run()

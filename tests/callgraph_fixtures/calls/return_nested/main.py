"""A nested function or a lambda returned and called by the caller."""


def make():
    def inner():
        return 1

    return inner


def make_lambda():
    return lambda: 2


handler = make()
handler()
make_lambda()()

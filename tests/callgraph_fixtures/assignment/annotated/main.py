"""Annotated assignments bind like plain ones; a bare annotation binds nothing."""


def f():
    return "f"


def g():
    return "g"


handler: object = f
pending: object


def run():
    local: object = handler
    other: "object"
    other = g
    return local(), other()


run()

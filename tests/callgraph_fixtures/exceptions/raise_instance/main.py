"""`raise E(...)` instantiates a code-base exception: a call of its `__init__`."""


class AppError(Exception):
    def __init__(self, code):
        self.code = code


def fail():
    raise AppError(2)


def run():
    try:
        fail()
    except AppError:
        return "caught"
    return "not caught"


run()

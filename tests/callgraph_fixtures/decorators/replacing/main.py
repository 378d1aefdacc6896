"""A decorator that returns another function: the decorated name no longer calls the original."""


def other():
    return "other"


def replace(fn):
    return other


@replace
def original():
    return "original"


original()

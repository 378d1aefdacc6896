"""A decorator returning an inner function: calling the decorated name calls the wrapper, which
calls the original."""


def logged(fn):
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


@logged
def add(a, b):
    return a + b


add(1, 2)

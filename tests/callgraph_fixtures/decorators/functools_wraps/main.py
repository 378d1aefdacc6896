"""A wrapper decorated with `functools.wraps(fn)` is still the wrapper (wraps returns what it is
applied to); the call of `functools.wraps` is an edge, applying its (external) result is none."""
import functools


def deco(fn):
    @functools.wraps(fn)
    def wrapper(*args):
        return fn(*args)

    return wrapper


@deco
def job():
    return "job"


job()

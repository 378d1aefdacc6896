"""A decorator that returns its parameter: the name stays the function; applying it is a call."""

REGISTRY = []


def register(fn):
    REGISTRY.append(fn)
    return fn


@register
def alpha():
    return "alpha"


@register
def beta():
    return "beta"


def run_all():
    for fn in REGISTRY:
        fn()


alpha()
run_all()

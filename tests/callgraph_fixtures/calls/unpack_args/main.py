"""`f(*seq)` spreads a tuple or list over the positional parameters, in order."""


def f():
    return "f"


def g():
    return "g"


def first_of(a, b):
    return a()


def second_of(a, b):
    return b()


pair = (f, g)
first_of(*pair)
second_of(*[f, g])

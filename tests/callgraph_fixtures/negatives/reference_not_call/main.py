"""Referencing a function (alias, container element, attribute) is no call; a lambda nobody calls
still has its own edges, but nobody has an edge to it."""


def target():
    return "target"


alias = target
table = {"t": target}
listed = [target]
pending = lambda: target()


def describe():
    return target.__name__, alias, table, listed, pending


describe()

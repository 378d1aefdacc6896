"""Chained assignment: every target of `a = b = f` holds f, attribute and subscript targets too."""


def first():
    return 1


def second():
    return 2


class Box:
    pass


a = b = first
c = d = e = second
a()
b()
e()

box = Box()
slots = [None]
box.fn = slots[0] = first
box.fn()
slots[0]()


def later():
    x = y = second
    return y()


later()

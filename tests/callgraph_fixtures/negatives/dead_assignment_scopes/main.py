"""Assignments to the same name in other scopes (a function's local, a class attribute) do not leak
into the module's name or into each other."""


def good():
    return "good"


def bad():
    return "bad"


def worse():
    return "worse"


handler = good


def setup():
    handler = bad
    return handler is None


def fire():
    return handler()


def shadow():
    handler = worse
    return handler()


class Holder:
    handler = bad

    def method(self):
        return handler()


setup()
fire()
shadow()
Holder().method()

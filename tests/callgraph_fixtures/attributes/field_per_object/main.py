"""The same attribute name on instances of two classes holds different functions: they must not mix."""


def f():
    return "f"


def g():
    return "g"


class A:
    def __init__(self):
        self.cb = f

    def go(self):
        return self.cb()


class B:
    def __init__(self):
        self.cb = g

    def go(self):
        return self.cb()


A().go()
B().go()

"""Instantiating a class with no `__init__` of its own or from a code-base base class is no edge; an
inherited code-base `__init__` is; one inherited from a builtin type is not."""


class Plain:
    def method(self):
        return 1


class Derived(Plain):
    pass


class WithInit:
    def __init__(self):
        self.ready = True


class Inherits(WithInit):
    pass


class Mapping(dict):
    pass


Plain()
Derived().method()
Inherits()
Mapping()

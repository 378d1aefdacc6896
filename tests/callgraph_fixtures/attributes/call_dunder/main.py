"""Calling an instance calls its class's `__call__`, also through a parameter and on a call's result."""


class Handler:
    def __call__(self, value):
        return value


class Factory:
    def __init__(self):
        self.made = 0

    def __call__(self):
        return Handler()


def apply(cb):
    return cb(1)


handler = Handler()
handler(2)
apply(handler)
Factory()()

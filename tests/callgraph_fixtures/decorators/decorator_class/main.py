"""A class used as a decorator: applying it instantiates it (`__init__`), calling the decorated name
calls the instance (`__call__`)."""


class Memo:
    def __init__(self, fn):
        self.fn = fn
        self.cache = {}

    def __call__(self, x):
        if x not in self.cache:
            self.cache[x] = self.fn(x)
        return self.cache[x]


@Memo
def square(x):
    return x * x


square(3)

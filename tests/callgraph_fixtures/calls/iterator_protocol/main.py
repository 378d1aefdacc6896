"""A `for` loop over an instance of a code-base iterator calls its `__iter__` and `__next__` (from
the scope that holds the loop); what `__next__` returns is the loop target."""


def f():
    return "f"


def g():
    return "g"


class Pipeline:
    def __init__(self, *steps):
        self.steps = steps
        self.index = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.index >= len(self.steps):
            raise StopIteration()
        step = self.steps[self.index]
        self.index += 1
        return step


def run():
    for step in Pipeline(f, g):
        step()


run()

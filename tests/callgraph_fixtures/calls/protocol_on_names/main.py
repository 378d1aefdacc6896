"""The calls a `with` or `for` statement makes on a name or an attribute (no call site there) belong to
the scope that holds the statement: a loop at module level is the module's, a comprehension's loop
the function's that holds the comprehension."""


class Countdown:
    def __init__(self, start):
        self.current = start

    def __iter__(self):
        return self

    def __next__(self):
        if self.current <= 0:
            raise StopIteration()
        self.current -= 1
        return self.current


class Guard:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


class Holder:
    def __init__(self):
        self.guard = Guard()


def collect(counter):
    return [n for n in counter]


holder = Holder()
with holder.guard:
    collect(Countdown(2))
countdown = Countdown(1)
for value in countdown:
    pass

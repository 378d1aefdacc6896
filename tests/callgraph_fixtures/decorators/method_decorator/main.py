"""A decorator on a method is applied (called) from the class body; the method name then holds the
wrapper."""


def traced(fn):
    def wrapper(self, *args):
        return fn(self, *args)

    return wrapper


class Service:
    @traced
    def handle(self, x):
        return x

    def run(self):
        return self.handle(1)


Service().run()

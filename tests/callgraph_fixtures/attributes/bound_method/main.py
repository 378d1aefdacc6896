"""A bound method is a value: assigned, passed as an argument, or taken from the class unbound."""


class Greeter:
    def hello(self):
        return "hello"

    def bye(self):
        return "bye"


def invoke(cb):
    return cb()


greeter = Greeter()
method = greeter.hello
method()
invoke(greeter.bye)
unbound = Greeter.hello
unbound(greeter)

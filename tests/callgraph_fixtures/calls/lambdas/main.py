"""Lambdas, numbered from 1 in order of appearance within their enclosing definition: a default
value's lambda belongs to the scope that evaluates it; a lambda in a class body to the class."""


def f():
    return "f"


def g():
    return "g"


square = lambda x: x * x  # main.<lambda1>
pair = [lambda: f(), lambda: g()]  # main.<lambda2>, main.<lambda3>


def run(cb=lambda: f()):  # main.<lambda4>
    inner = lambda: cb()  # main.run.<lambda1>
    return inner()


class Shape:
    scale = lambda self: 2  # main.Shape.<lambda1>


nested = lambda: (lambda: g())  # main.<lambda5>, main.<lambda5>.<lambda1>

square(3)
pair[0]()
pair[1]()
run()
nested()()
Shape().scale()

"""List, dict, set comprehensions and a generator expression holding functions; lambdas made in a
comprehension belong to the enclosing function (`run_lambdas.<lambda1>`), their default value is
evaluated in the comprehension."""


def f():
    return "f"


def g():
    return "g"


def run_list():
    fns = [fn for fn in (f, g)]
    for fn in fns:
        fn()


def run_dict():
    table = {fn.__name__: fn for fn in [f]}
    return table["f"]()


def run_set():
    for fn in {fn for fn in (g,)}:
        fn()


def run_generator():
    for fn in (fn for fn in (f,)):
        fn()


def run_lambdas():
    callbacks = [lambda fn=fn: fn() for fn in (f, g)]
    for cb in callbacks:
        cb()


run_list()
run_dict()
run_set()
run_generator()
run_lambdas()

"""Functions passed to `map` and `filter` are called by them: edges from the scope that passes them."""


def double(x):
    return x * 2


def positive(x):
    return x > 0


def run():
    doubled = list(map(double, [1, -2]))
    return list(filter(positive, doubled))


run()

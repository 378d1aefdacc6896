"""Direct calls of builtins; `int` is only referenced, not called."""


def run():
    values = [3, 1, 2]
    total = sum(values)
    size = len(values)
    ordered = sorted(values)
    flag = isinstance(total, int)
    text = str(size)
    return abs(-total), ordered, flag, text, list(range(2))


run()

"""Keyword arguments flow by name, whatever their order; a returned argument is not called."""


def on_start():
    return "start"


def on_stop():
    return "stop"


def run(*, before, after):
    before()
    return after


def run_either(first, second):
    return second()


run(after=on_stop, before=on_start)
run_either(second=on_stop, first=on_start)

"""A parameter no caller passes a function to is called: no edge."""


def target():
    return "target"


def run(cb=None):
    if cb is not None:
        return cb()
    return None


def never_called(cb):
    return cb()


run()

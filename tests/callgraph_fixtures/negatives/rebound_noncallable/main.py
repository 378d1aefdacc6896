"""A name rebound to a non-callable before the call: the earlier function is never called."""


def target():
    return "target"


def fire():
    handler = target
    handler = None
    if handler is not None:
        handler()


action = target
action = "not callable"
if callable(action):
    action()
fire()

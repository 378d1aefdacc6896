"""`**kwargs` packs the extra keyword arguments into a dict keyed by their names."""


def go():
    return "go"


def stop():
    return "stop"


def dispatch(**handlers):
    return handlers["go"]()


def dispatch_all(**handlers):
    for name in handlers:
        handlers[name]()


dispatch(go=go, stop=stop)
dispatch_all(first=stop)

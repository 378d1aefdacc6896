"""An exception carries a function in an attribute set by its `__init__`; the handler calls it."""


def recover():
    return "recovered"


class Retry(Exception):
    def __init__(self, action):
        self.action = action


def attempt():
    raise Retry(recover)


def run():
    try:
        attempt()
    except Retry as signal:
        return signal.action()
    return None


run()

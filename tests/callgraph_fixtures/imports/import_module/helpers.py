def _setup():
    return {}


def greet():
    return "hi"


STATE = _setup()

"""`with ... as` targets hold what `__enter__` returns; the `with` statement calls `__enter__` and
`__exit__` from the scope that holds it."""


class Opened:
    def __init__(self, action):
        self.action = action

    def __enter__(self):
        return self.action

    def __exit__(self, *exc_info):
        return False


class Session:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def query(self):
        return []


def work():
    return "done"


def run():
    with Opened(work) as fn:
        return fn()


def use_session():
    with Session() as session:
        return session.query()


run()
use_session()

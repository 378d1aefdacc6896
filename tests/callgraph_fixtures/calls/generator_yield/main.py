"""Functions yielded by a generator are what iterating it (or `next`) produces; `yield from` relays."""


def f():
    return "f"


def g():
    return "g"


def h():
    return "h"


def producers():
    yield f
    yield g


def relay():
    yield from producers()


def single():
    yield h


def consume():
    for producer in producers():
        producer()


def consume_relay():
    for producer in relay():
        producer()


def take_one():
    return next(single())()


consume()
consume_relay()
take_one()

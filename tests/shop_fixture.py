"""A small hand-checked code base (a shop package over three modules) that exercises every
resolution rule; its expected edges are stated in test_resolution.py and test_docs_queries.py."""

from __future__ import annotations

FIXTURE: dict[str, str] = {
    "shop/__init__.py": "from .money import to_cents\n",
    "shop/money.py": '''import math

RATE = 100


def to_cents(amount):
    return math.floor(amount * RATE)


def identity(fn):
    return fn
''',
    "shop/base.py": '''class Model:
    def __init__(self, name):
        self.name = name

    def save(self):
        return self.validate()

    def validate(self):
        return True


class Timestamped(Model):
    def touch(self):
        return self.save()
''',
    "shop/items.py": '''import os.path
import functools
from shop import to_cents
from shop.base import Timestamped
from .money import identity as same
from . import money


class Item(Timestamped):
    count = 0
    names = [count for _ in range(2)]

    def price(self):
        return to_cents(self.amount)

    @classmethod
    def make(cls, name):
        return cls(name)

    @staticmethod
    def label(x):
        return str(x)


@same
def build(name):
    item = Item(name)
    item.touch()
    item.price()
    return os.path.join("items", name)


@functools.lru_cache
def cached(x):
    return money.to_cents(x)


@unknown_decorator
def wrapped():
    return len([])


TOTAL = 0


def bump():
    global TOTAL
    TOTAL = TOTAL + 1
    return TOTAL


def outer():
    seen = []

    def inner(value):
        seen.append(value)
        return sorted(seen)

    return inner


def shadow(len):
    return len
''',
}

"""A small program whose call graph, imports, classes and values are worked out by hand from Python's
semantics (tests/test_questions.py and tests/test_exports.py state what follows from it).

Calls, by definition (line of the call):
    app.core.parse       -> json.loads (6)
    app.core.normalize   -> app.core.clean (10, in a dict comprehension)
    app.core.clean       -> <builtin>.isinstance (14); value.strip() (14) is <**PyStr**>.strip: describe
                            passes clean a str(...)
    app.core.load        -> app.core.parse, app.core.normalize (18)
    app.core.countdown   -> app.core.countdown (22)
    app.core.unused_helper -> collections.OrderedDict (26)
    app.shapes.Shape.describe -> <builtin>.str, app.core.clean (9), self.area() (9): self is an
                            instance made in the program whose class finds describe; the only class
                            ever instantiated is Cube (in make), whose area is Square.area
    app.shapes.Cube.volume -> self.area() (25): a Cube's area is Square.area
    app.shapes.make      -> app.shapes.Cube (29), and the __init__ it runs: app.shapes.Square.__init__
    app.main.report      -> <builtin>.len, app.core.load, app.shapes.make (6), shape.describe (7):
                            shape holds a Cube, whose describe is Shape.describe
    app.main.main        -> <builtin>.print, app.main.report (11)
    app.main (module)    -> app.main.main (15)
    app.__main__.run     -> app.main.report (5)
"""

from __future__ import annotations

FIXTURE: dict[str, str] = {
    "app/__init__.py": "",
    "app/core.py": '''import json
from collections import OrderedDict


def parse(text):
    return json.loads(text)


def normalize(data):
    return {key: clean(value) for key, value in data.items()}


def clean(value):
    return value.strip() if isinstance(value, str) else value


def load(text):
    return normalize(parse(text))


def countdown(n):
    return countdown(n - 1) if n else 0


def unused_helper():
    return OrderedDict()


FIRST = lambda pair: pair[0]  # noqa: E731
''',
    "app/shapes.py": '''from app.core import clean


class Shape:
    def area(self):
        return 0

    def describe(self):
        return clean(str(self.area()))

    def __repr__(self):
        return "Shape"


class Square(Shape):
    def __init__(self, side):
        self.side = side

    def area(self):
        return self.side * self.side


class Cube(Square):
    def volume(self):
        return self.area() * self.side


def make(side):
    return Cube(side)


handler = make


class Tesseract(Cube):
    pass
''',
    "app/main.py": '''from app import core
from app.shapes import make


def report(text):
    shape = make(len(core.load(text)))
    return shape.describe()


def main():
    print(report("{}"))


if __name__ == "__main__":
    main()
''',
    "app/__main__.py": '''from app.main import report


def run():
    return report("{}")
''',
    # a name XML must escape
    "app/r&d.py": '''def probe():
    return "<&>"
''',
}

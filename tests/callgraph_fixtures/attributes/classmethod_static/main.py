"""`cls(...)` in an inherited classmethod instantiates the class it is called on; applying
`classmethod` and `staticmethod` are calls from the class body."""


class Shape:
    def __init__(self, sides):
        self.sides = sides

    @classmethod
    def square(cls):
        return cls(4)

    @staticmethod
    def unit():
        return 1


class Tile(Shape):
    def __init__(self, sides):
        self.sides = sides * 2


Shape.square()
Tile.square()
Tile.unit()
Shape(3).unit()

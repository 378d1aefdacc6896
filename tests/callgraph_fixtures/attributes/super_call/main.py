"""`super()` reaches the base class's `__init__` and method."""


class Base:
    def __init__(self, name):
        self.name = name

    def greet(self):
        return "hi " + self.name


class Child(Base):
    def __init__(self, name):
        super().__init__(name)

    def greet(self):
        return super().greet() + "!"


Child("x").greet()

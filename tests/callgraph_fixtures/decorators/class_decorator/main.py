"""Class decorators: one returns the class, one replaces it with an instance."""


def tagged(cls):
    cls.tag = "x"
    return cls


def singleton(cls):
    return cls()


@tagged
class Widget:
    def __init__(self):
        self.ready = True

    def show(self):
        return self.ready


@singleton
class Config:
    def __init__(self):
        self.values = {}

    def get(self):
        return self.values


Widget().show()
Config.get()

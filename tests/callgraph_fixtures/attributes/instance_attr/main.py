"""An instance attribute stored in one method (`__init__` or any other) and called in another."""


def f():
    return "f"


def g():
    return "g"


class Button:
    def __init__(self, on_click):
        self.on_click = on_click

    def click(self):
        return self.on_click()


class Toggle:
    def setup(self, cb):
        self.cb = cb

    def fire(self):
        return self.cb()


button = Button(f)
button.click()
toggle = Toggle()
toggle.setup(g)
toggle.fire()

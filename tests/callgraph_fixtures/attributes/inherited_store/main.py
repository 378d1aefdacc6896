"""An attribute stored by an inherited method and loaded by the subclass's own method."""


def f():
    return "f"


class Base:
    def configure(self, cb):
        self.cb = cb


class Child(Base):
    def run(self):
        return self.cb()


child = Child()
child.configure(f)
child.run()

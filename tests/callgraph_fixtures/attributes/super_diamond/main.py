"""Cooperative `super()` in a diamond: only Both instances exist, so Left's `super()` is Right (the
next class after Left in Both's MRO), never Root."""


class Root:
    def setup(self):
        return ["root"]


class Left(Root):
    def setup(self):
        return ["left", *super().setup()]


class Right(Root):
    def setup(self):
        return ["right", *super().setup()]


class Both(Left, Right):
    def setup(self):
        return ["both", *super().setup()]


Both().setup()

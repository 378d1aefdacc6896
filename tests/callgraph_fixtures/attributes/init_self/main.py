"""Instantiation calls `__init__` (inherited ones too) with `self` bound to the new instance, so a
method called on `self` there is looked up on the instance's own class."""


class Counter:
    def __init__(self, step):
        self.step = step
        self.reset()

    def reset(self):
        self.value = 0


class Loud(Counter):
    def reset(self):
        self.value = -1


Counter(1)
Loud(2)

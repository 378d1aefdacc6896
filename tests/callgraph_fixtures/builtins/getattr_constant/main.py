"""`getattr` with a constant name is an attribute load: the method it finds is called."""


class Robot:
    def walk(self):
        return "walk"

    def talk(self):
        return "talk"


def run():
    robot = Robot()
    return getattr(robot, "walk")()


run()

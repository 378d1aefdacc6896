"""`getattr` with a name computed at run time: no edge to any method (the run does call walk)."""


class Robot:
    def walk(self):
        return "walk"

    def talk(self):
        return "talk"


def run(suffix):
    robot = Robot()
    name = "wa" + suffix
    return getattr(robot, name)()


run("lk")

"""An instance attribute set from outside the class, directly or through a parameter."""


def f():
    return "f"


def g():
    return "g"


class Job:
    def run(self):
        return self.task()


def set_task(obj, cb):
    obj.task = cb


job = Job()
job.task = f
job.run()
other = Job()
set_task(other, g)
other.run()

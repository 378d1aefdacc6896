"""`except E as err` binds an instance of E: its methods are callable on the name. E has no
code-base `__init__`, so raising it is no edge."""


class AppError(Exception):
    def describe(self):
        return "bad"


def fail():
    raise AppError("x")


def run():
    try:
        fail()
    except AppError as err:
        return err.describe()
    return None


run()

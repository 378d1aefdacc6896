def greet():
    return "hi"


def part():
    return "part"

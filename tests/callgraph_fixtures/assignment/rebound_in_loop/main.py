"""A name rebound later in a loop's body holds, in the next pass, what that rebinding bound: a call
in the loop (its body, or a `while` test) can reach both functions."""


def first():
    return "first"


def second():
    return "second"


def run():
    handler = first
    for _ in range(2):
        handler()
        handler = second


def poll():
    step = first
    while step() == "first":
        step = second


run()
poll()

"""Direct calls by name, a nested function, recursion, and a function nobody calls (its own calls
are still edges: the graph is static)."""


def helper():
    return 1


def nested_user():
    def local():
        return helper()

    return local()


def caller():
    return helper() + nested_user()


def recursive(n):
    return 0 if n == 0 else recursive(n - 1)


def never_called():
    return helper()


caller()
recursive(2)

def default():
    return "default"


hook = default


def fire():
    return hook()

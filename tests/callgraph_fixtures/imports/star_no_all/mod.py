def visible():
    return "visible"


def _hidden():
    return "mod._hidden"

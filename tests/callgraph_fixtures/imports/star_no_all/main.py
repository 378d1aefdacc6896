"""Without `__all__`, a star import brings the public names only: `_hidden` stays main's own."""


def _hidden():
    return "main._hidden"


from mod import *

visible()
_hidden()

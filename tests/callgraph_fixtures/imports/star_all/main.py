"""`from m import *` honours `__all__`: `other` is not in it, so the module's own `other` stays."""


def other():
    return "main.other"


from mod import *

public()
other()

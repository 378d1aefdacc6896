"""`f(**mapping)` passes each key's value to the parameter of that name."""


def f():
    return "f"


def g():
    return "g"


def call_cb(cb, other=None):
    return cb()


def call_other(cb, other=None):
    return other()


options = {"cb": f, "other": g}
call_cb(**options)
call_other(f, **{"other": g})

"""Dict values by constant key, from the literal and from a later store; a key only known at run
time loads every value."""


def save():
    return "save"


def load():
    return "load"


def delete():
    return "delete"


handlers = {"save": save, "load": load}
handlers["delete"] = delete


def on_load():
    return handlers["load"]()


def on_delete():
    return handlers["delete"]()


def on_any(key):
    return handlers[key]()


on_load()
on_delete()
for key in ("save", "load", "delete"):
    on_any(key)

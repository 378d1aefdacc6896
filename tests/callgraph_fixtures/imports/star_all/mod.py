__all__ = ["public"]


def public():
    return "public"


def other():
    return "mod.other"


def _private():
    return "private"

from pkg.tools import run


def helper():
    return "helper"


def _secret():
    return "secret"

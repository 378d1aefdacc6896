"""Containers in containers: a list and a dict inside a dict."""


def f():
    return "f"


def g():
    return "g"


def h():
    return "h"


config = {"steps": [f, g], "final": {"cb": h}}


def run_steps():
    for step in config["steps"]:
        step()


def run_final():
    return config["final"]["cb"]()


run_steps()
run_final()

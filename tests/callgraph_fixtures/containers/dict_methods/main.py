"""Values reached through dict methods: `get` by constant key, `values`, `items`, and `update`."""


def f():
    return "f"


def g():
    return "g"


registry = {"a": f}
registry.update({"b": g})


def run_get():
    return registry.get("a")()


def run_values():
    for fn in registry.values():
        fn()


def run_items():
    for _name, fn in registry.items():
        fn()


run_get()
run_values()
run_items()

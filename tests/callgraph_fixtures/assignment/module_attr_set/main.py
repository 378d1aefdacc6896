"""A module attribute set from another module (`registry.hook = custom`) is what the module's own
code reads."""
import registry


def custom():
    return "custom"


registry.fire()
registry.hook = custom
registry.fire()

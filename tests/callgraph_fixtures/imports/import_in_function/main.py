"""Imports inside a function bind local names."""


def run():
    import helpers
    from helpers import part as piece

    helpers.greet()
    return piece()


run()

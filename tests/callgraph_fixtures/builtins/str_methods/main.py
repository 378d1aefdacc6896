"""Methods of str, on literals and on values that are strings because a str method returned them."""


def run():
    parts = "a b c".split()
    joined = ", ".join(parts)
    shout = joined.upper()
    name = "{}!".format(shout)
    return name.strip()


run()

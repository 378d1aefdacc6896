"""A key function given only to `list.sort` is called by it (from the scope of the call)."""


def by_last(s):
    return s[-1]


def run():
    words = ["bb", "a"]
    words.sort(key=by_last)
    return words


run()

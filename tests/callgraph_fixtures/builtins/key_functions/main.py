"""Key functions passed to `sorted`, `max`, `min` and `list.sort` are called by them."""


def by_length(s):
    return len(s)


def by_last(s):
    return s[-1]


def run():
    words = ["bb", "a", "ccc"]
    longest_first = sorted(words, key=by_length)
    biggest = max(words, key=by_last)
    smallest = min(words, key=lambda w: w[0])
    words.sort(key=by_length)
    return longest_first, biggest, smallest


run()

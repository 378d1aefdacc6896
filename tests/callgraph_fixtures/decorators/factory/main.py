"""A decorator factory `@retry(2)`: the factory and the decorator it returns are both called from
the module."""


def retry(times):
    def decorate(fn):
        def attempt():
            result = None
            for _ in range(times):
                result = fn()
            return result

        return attempt

    return decorate


@retry(2)
def fetch():
    return 1


fetch()

"""A handler for a base class catches the subclass instance that was raised: the method called is
the subclass's override, since no BaseError instance is ever raised."""


class BaseError(Exception):
    def handle(self):
        return "base"


class DiskError(BaseError):
    def handle(self):
        return "disk"


def write():
    raise DiskError()


def run():
    try:
        write()
    except BaseError as err:
        return err.handle()
    return None


run()

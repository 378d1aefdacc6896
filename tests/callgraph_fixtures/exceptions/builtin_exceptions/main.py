"""Raising a builtin exception calls the builtin class; a call in `finally` is an ordinary call; a
call after the raise is still a call site of the function."""


def cleanup():
    return "clean"


def parse(text):
    if not text:
        raise ValueError("empty")
    return int(text)


def run():
    try:
        parse("")
    except ValueError as err:
        return str(err)
    finally:
        cleanup()


run()

"""Default values flow to their parameter when the caller leaves it out."""


def fallback():
    return "fallback"


def custom():
    return "custom"


def run(cb=fallback):
    return cb()


def run_keyword_only(*, cb=custom):
    return cb()


run()
run(custom)
run_keyword_only()

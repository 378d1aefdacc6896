def run():
    return "run"


def stop():
    return "stop"

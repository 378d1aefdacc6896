"""Code run by eval/exec is not known statically: only the builtins are called."""


def target():
    return "target"


def other():
    return "other"


def run():
    eval("target()")
    exec("other()")
    code = compile("target()", "<fixture>", "eval")
    return eval(code)


run()

def base():
    return "base"

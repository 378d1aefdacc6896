def run():
    return "alpha"

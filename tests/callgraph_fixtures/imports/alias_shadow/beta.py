def run():
    return "beta"
